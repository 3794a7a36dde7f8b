DROP FUNCTION hold_fits_in_turn(bigint, int4[]);

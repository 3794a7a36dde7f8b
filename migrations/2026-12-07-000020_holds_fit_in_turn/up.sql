-- A batch of holds on one ticket type gives each run in turn its units while
-- they last (`hold_batch::hold_many`): one that does not fit takes nothing,
-- and a later, smaller one may still fit. That walk was a recursive query
-- that joined its last row with the batch's requests at every turn, so a
-- batch of 256 runs read 256 × 256 rows (about 10 ms), all of it with the
-- ticket type's row locked. Here it is one pass over the requests' units, in
-- their order: whether each fits.
CREATE FUNCTION hold_fits_in_turn(free bigint, wishes int4[]) RETURNS bool[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    fits bool[] := array_fill(false, ARRAY[cardinality(wishes)]);
BEGIN
    FOR i IN 1 .. cardinality(wishes) LOOP
        IF wishes[i] <= free THEN
            free := free - wishes[i];
            fits[i] := true;
        END IF;
    END LOOP;
    RETURN fits;
END
$$;

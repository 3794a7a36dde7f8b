ALTER TABLE coupons DROP COLUMN version;
ALTER TABLE ticket_types DROP COLUMN version;

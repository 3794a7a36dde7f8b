DROP TABLE IF EXISTS coupon_ticket_types;
DROP TABLE IF EXISTS coupons;
DROP TABLE IF EXISTS ticket_types;
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS venues;
DROP FUNCTION IF EXISTS is_iana_timezone(text);

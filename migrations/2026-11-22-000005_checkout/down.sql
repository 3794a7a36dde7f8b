DROP TABLE notifications;
DROP TABLE tickets;
DROP TABLE bookings;
DROP TABLE coupon_reservations;
DROP TABLE holds;

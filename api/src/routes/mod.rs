//! One module per resource; each exposes `router()` with its routes.

pub mod admin;
pub mod auth;
pub mod bookings;
pub mod checkouts;
pub mod coupons;
pub mod events;
pub mod health;
pub mod me;
pub mod ops;
pub mod organizer;
pub mod ticket_types;
pub mod tickets;
pub mod unsubscribe;
pub mod venues;
pub mod waitlist;
pub mod webhooks;
pub mod workflows;

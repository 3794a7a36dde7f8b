//! Demo data for `boxoffice up`, created once: an admin, an organizer and a
//! participant with generated passwords (kept in the data folder), and a
//! published demo event.

mod catalog;
mod users;

pub use users::{DemoCredential, demo, ensure_user};

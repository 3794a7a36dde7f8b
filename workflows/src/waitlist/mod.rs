//! The waitlist's pure rules: who is offered units, and when.

pub mod policy;

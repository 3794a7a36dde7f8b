//! Waitlists: freed units go to the waitlist first, offers in serving order
//! under the documented policy, accepting (a checkout that adopts the offer's
//! units), declining, leaving, deadlines, capacity raised, bad input.

mod accept_decline;
mod bad_input;
mod capacity_raised;
mod dispatch_lock;
mod event_cancelled;
mod fairness;
mod lapsed_and_paid;
mod mixed_quantities;
pub mod support;

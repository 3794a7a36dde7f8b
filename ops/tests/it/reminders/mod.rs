//! Reminders before events and organizers' messages to ticket holders: the
//! mailing runs, with workers in this process and a real SMTP sink.

mod messages;
mod rules;
pub(crate) mod support;

//! The `.ics` file (RFC 5545) attached to ticket emails, built with the
//! `icalendar` crate. Times are written in UTC (`…Z`), which every calendar
//! shows in its owner's zone without a VTIMEZONE block. The UID is the
//! event's, so the confirmation and each reminder update one calendar entry
//! rather than adding another.

use icalendar::{Calendar, Component, Event, EventLike};

use super::facts::EventFacts;

/// The calendar file of `event`; `uid_domain` makes its UID globally unique
/// (the sender's domain).
pub fn ics(event: &EventFacts, uid_domain: &str) -> String {
    let mut entry = Event::new();
    entry
        .uid(&format!("event-{}@{uid_domain}", event.id))
        .summary(&event.title)
        .starts(event.starts_at)
        .ends(event.ends_at);
    match &event.venue {
        Some(venue) => {
            entry.location(&format!("{}, {}", venue.name, venue.full_address()));
        }
        None => {
            entry.location("Online");
        }
    }
    let mut calendar = Calendar::new();
    calendar.name(&event.title).push(entry.done());
    calendar.done().to_string()
}

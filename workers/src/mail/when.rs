//! An event's date and time as a participant reads them: in the venue's time
//! zone (`venues.timezone`), named, so nobody has to convert. Online events
//! have no venue and are shown in UTC, and say so.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::facts::EventFacts;

/// The local date and time of an event, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalTimes {
    /// `Saturday 5 December 2026`.
    pub date: String,
    /// `20:00 – 23:00`, or with the end's date when it ends another day.
    pub time: String,
    /// `CET (Europe/Paris)`, `UTC`.
    pub zone: String,
}

impl LocalTimes {
    /// `Saturday 5 December 2026, 20:00 – 23:00 CET (Europe/Paris)`.
    pub fn one_line(&self) -> String {
        format!("{}, {} {}", self.date, self.time, self.zone)
    }
}

pub fn local_times(event: &EventFacts) -> LocalTimes {
    let starts = event.starts_at.with_timezone(&event.zone);
    let ends = event.ends_at.with_timezone(&event.zone);
    let time = if starts.date_naive() == ends.date_naive() {
        format!("{} – {}", starts.format("%H:%M"), ends.format("%H:%M"))
    } else {
        format!(
            "{} – {}",
            starts.format("%H:%M"),
            ends.format("%A %-d %B %Y, %H:%M")
        )
    };
    LocalTimes {
        date: starts.format("%A %-d %B %Y").to_string(),
        time,
        zone: zone_label(event.zone, event.starts_at),
    }
}

/// A moment (an offer's deadline) in the event's zone: `Friday 4 December
/// 2026, 18:30 CET (Europe/Paris)`.
pub fn moment(at: DateTime<Utc>, zone: Tz) -> String {
    format!(
        "{} {}",
        at.with_timezone(&zone).format("%A %-d %B %Y, %H:%M"),
        zone_label(zone, at)
    )
}

/// The zone's abbreviation at `at` (CET or CEST) and its name; just `UTC`
/// for UTC.
fn zone_label(zone: Tz, at: DateTime<Utc>) -> String {
    if zone == Tz::UTC {
        return "UTC".to_owned();
    }
    format!("{} ({})", at.with_timezone(&zone).format("%Z"), zone.name())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    fn event(zone: Tz, starts: (u32, u32), ends: (u32, u32)) -> EventFacts {
        EventFacts {
            id: Uuid::nil(),
            title: "Jazz night".into(),
            starts_at: Utc
                .with_ymd_and_hms(2026, 12, 5, starts.0, starts.1, 0)
                .unwrap(),
            ends_at: Utc
                .with_ymd_and_hms(2026, 12, 5, ends.0, ends.1, 0)
                .unwrap(),
            zone,
            venue: None,
        }
    }

    #[test]
    fn times_are_shown_in_the_venues_zone_with_its_name() {
        let paris = local_times(&event(chrono_tz::Europe::Paris, (19, 0), (22, 0)));
        assert_eq!(
            paris.one_line(),
            "Saturday 5 December 2026, 20:00 – 23:00 CET (Europe/Paris)"
        );
        // 23:00 UTC is the next morning in Tokyo; ending at 02:00 UTC there
        // is still the same local day.
        let tokyo = local_times(&event(chrono_tz::Asia::Tokyo, (0, 30), (2, 0)));
        assert_eq!(tokyo.date, "Saturday 5 December 2026");
        assert_eq!(tokyo.time, "09:30 – 11:00");
        assert_eq!(tokyo.zone, "JST (Asia/Tokyo)");
        let online = local_times(&event(Tz::UTC, (19, 0), (20, 0)));
        assert_eq!(
            online.one_line(),
            "Saturday 5 December 2026, 19:00 – 20:00 UTC"
        );
    }

    #[test]
    fn an_event_that_ends_another_day_says_which() {
        let late = local_times(&event(chrono_tz::America::New_York, (23, 0), (23, 59)));
        // 18:00 to 18:59 in New York: same day there.
        assert_eq!(late.time, "18:00 – 18:59");
        let overnight = local_times(&event(chrono_tz::Europe::Paris, (22, 0), (23, 30)));
        assert_eq!(overnight.time, "23:00 – Sunday 6 December 2026, 00:30");
    }
}

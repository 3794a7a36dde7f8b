//! Who of a ticket type's waitlist is offered units now: the serving policy.
//!
//! Entries are served in order (vip before standard, each tier by join time,
//! then id) and are offered while they fit in the free units
//! (`capacity - sold - held`). The first entry that does not fit is the
//! *blocker*:
//!
//! - while it has been blocked for less than the head-wait window, it blocks
//!   the queue: freed units accumulate for it and nobody behind it is offered,
//!   so a large entry gets every unit freed during its window;
//! - once the window has passed, the entries behind it that fit are offered
//!   from the units it could not use (backfill), and its clock restarts, so it
//!   blocks again for the next window. Units never sit idle for more than one
//!   window while smaller entries wait.
//!
//! Its clock (`blocked_since`) starts when it first fails to fit. Any other
//! entry's clock is cleared: only the blocker's counts.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// A waiting entry, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub id: Uuid,
    pub quantity: i32,
    pub blocked_since: Option<DateTime<Utc>>,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The entries to offer, in serving order.
    pub offers: Vec<Uuid>,
    /// New `blocked_since` values (only entries whose value changes).
    pub blocked_since: Vec<(Uuid, Option<DateTime<Utc>>)>,
}

impl Plan {
    /// Units the offers take.
    pub fn offered_units(&self, waiting: &[Waiting]) -> i32 {
        waiting
            .iter()
            .filter(|w| self.offers.contains(&w.id))
            .map(|w| w.quantity)
            .sum()
    }
}

/// The plan for one ticket type: `free` units (`capacity - sold - held`),
/// `waiting` in serving order, at `now`, with the head-wait window.
pub fn plan(free: i32, waiting: &[Waiting], now: DateTime<Utc>, head_wait: Duration) -> Plan {
    let mut free = free.max(0);
    let mut plan = Plan::default();
    let mut blocker: Option<usize> = None;
    let mut backfill = false;
    for (index, entry) in waiting.iter().enumerate() {
        if blocker.is_some() && !backfill {
            // Behind a blocker still in its window: nobody is offered, and
            // only the blocker's clock counts.
            clear_clock(&mut plan, entry);
            continue;
        }
        if entry.quantity <= free {
            free -= entry.quantity;
            plan.offers.push(entry.id);
            continue;
        }
        if blocker.is_some() {
            clear_clock(&mut plan, entry);
            continue;
        }
        blocker = Some(index);
        match entry.blocked_since {
            None => plan.blocked_since.push((entry.id, Some(now))),
            Some(since) if now - since < head_wait => {}
            Some(_) => {
                // Its window passed: the ones behind it may take what it
                // cannot use, and its next window starts now.
                plan.blocked_since.push((entry.id, Some(now)));
                backfill = true;
            }
        }
    }
    plan
}

fn clear_clock(plan: &mut Plan, entry: &Waiting) {
    if entry.blocked_since.is_some() {
        plan.blocked_since.push((entry.id, None));
    }
}

#[cfg(test)]
mod tests;

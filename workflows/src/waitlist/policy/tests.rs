//! The serving policy: fixed cases, and a random walk over joins, leaves,
//! frees, accepts and expiries against a model of a ticket type's counters.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn window() -> Duration {
    Duration::minutes(30)
}

fn entry(n: u128, quantity: i32, blocked_since: Option<DateTime<Utc>>) -> Waiting {
    Waiting {
        id: Uuid::from_u128(n),
        quantity,
        blocked_since,
    }
}

fn ids(ns: &[u128]) -> Vec<Uuid> {
    ns.iter().map(|n| Uuid::from_u128(*n)).collect()
}

#[test]
fn offers_in_order_while_entries_fit() {
    let queue = [entry(1, 2, None), entry(2, 1, None), entry(3, 1, None)];
    let plan = plan(3, &queue, t0(), window());
    assert_eq!(plan.offers, ids(&[1, 2]));
    // The third fits no more: its clock starts.
    assert_eq!(plan.blocked_since, vec![(Uuid::from_u128(3), Some(t0()))]);
}

#[test]
fn nothing_free_offers_nothing_and_starts_the_head_clock() {
    let queue = [entry(1, 1, None), entry(2, 1, None)];
    let plan = plan(0, &queue, t0(), window());
    assert!(plan.offers.is_empty());
    assert_eq!(plan.blocked_since, vec![(Uuid::from_u128(1), Some(t0()))]);
}

#[test]
fn a_blocker_inside_its_window_keeps_the_units_for_itself() {
    let since = t0() - Duration::minutes(10);
    let queue = [
        entry(1, 4, Some(since)),
        entry(2, 1, None),
        entry(3, 2, None),
    ];
    let plan = plan(3, &queue, t0(), window());
    assert!(plan.offers.is_empty(), "{plan:?}");
    assert!(plan.blocked_since.is_empty(), "its clock runs on: {plan:?}");
}

#[test]
fn a_blocker_gets_the_units_once_enough_came_back_within_its_window() {
    let since = t0() - Duration::minutes(29);
    let queue = [entry(1, 4, Some(since)), entry(2, 1, None)];
    let plan = plan(4, &queue, t0(), window());
    assert_eq!(plan.offers, ids(&[1]));
    // The one behind it is next in line and starts its own clock.
    assert_eq!(plan.blocked_since, vec![(Uuid::from_u128(2), Some(t0()))]);
}

#[test]
fn after_the_window_the_entries_behind_are_backfilled_and_the_clock_restarts() {
    let since = t0() - Duration::minutes(30);
    let queue = [
        entry(1, 5, Some(since)),
        entry(2, 2, None),
        entry(3, 3, None),
        entry(4, 1, None),
    ];
    let plan = plan(3, &queue, t0(), window());
    assert_eq!(
        plan.offers,
        ids(&[2, 4]),
        "2 fits, 3 does not, 4 takes the last unit"
    );
    assert_eq!(plan.blocked_since, vec![(Uuid::from_u128(1), Some(t0()))]);
}

#[test]
fn only_the_blockers_clock_counts() {
    // A vip joined ahead of an entry that was blocking: the old clock is cleared.
    let queue = [
        entry(9, 3, None),
        entry(1, 2, Some(t0() - Duration::minutes(50))),
    ];
    let plan = plan(1, &queue, t0(), window());
    assert!(plan.offers.is_empty());
    assert_eq!(
        plan.blocked_since,
        vec![(Uuid::from_u128(9), Some(t0())), (Uuid::from_u128(1), None)]
    );
}

#[test]
fn everyone_fits_and_the_rest_stays_free() {
    let queue = [entry(1, 1, Some(t0())), entry(2, 2, None)];
    let plan = plan(10, &queue, t0(), window());
    assert_eq!(plan.offers, ids(&[1, 2]));
    assert_eq!(plan.offered_units(&queue), 3);
}

#[test]
fn negative_free_units_offer_nothing() {
    let plan = plan(-3, &[entry(1, 1, None)], t0(), window());
    assert!(plan.offers.is_empty());
}

/// The random walk: one ticket type, its counters as the database keeps them
/// (`sold`, `held`, `waiting_units`, the holds), the public buying with the
/// guard of rule 1, and the waitlist served by [`plan`].
mod walk {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Status {
        Waiting,
        Offered,
        Accepted,
        Paid,
        Ended,
    }

    #[derive(Debug, Clone)]
    struct Entry {
        id: Uuid,
        quantity: i32,
        vip: bool,
        joined: u32,
        status: Status,
        blocked_since: Option<DateTime<Utc>>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Join { quantity: i32, vip: bool },
        Leave { pick: usize },
        PublicBuy { quantity: i32 },
        PublicHold { quantity: i32 },
        PublicHoldLapses { pick: usize },
        Refund { quantity: i32 },
        RaiseCapacity { by: i32 },
        Dispatch { minutes: i64 },
        Accept { pick: usize },
        Pay { pick: usize },
        CheckoutLapses { pick: usize },
        OfferEnds { pick: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..5i32, any::<bool>()).prop_map(|(quantity, vip)| Op::Join { quantity, vip }),
            (0..8usize).prop_map(|pick| Op::Leave { pick }),
            (1..4i32).prop_map(|quantity| Op::PublicBuy { quantity }),
            (1..4i32).prop_map(|quantity| Op::PublicHold { quantity }),
            (0..4usize).prop_map(|pick| Op::PublicHoldLapses { pick }),
            (1..4i32).prop_map(|quantity| Op::Refund { quantity }),
            (1..4i32).prop_map(|by| Op::RaiseCapacity { by }),
            (0..45i64).prop_map(|minutes| Op::Dispatch { minutes }),
            (0..8usize).prop_map(|pick| Op::Accept { pick }),
            (0..8usize).prop_map(|pick| Op::Pay { pick }),
            (0..8usize).prop_map(|pick| Op::CheckoutLapses { pick }),
            (0..8usize).prop_map(|pick| Op::OfferEnds { pick }),
        ]
    }

    struct World {
        capacity: i32,
        sold: i32,
        held: i32,
        waiting_units: i32,
        entries: Vec<Entry>,
        public_holds: Vec<i32>,
        /// Entry → units held for it (its offer, then its checkout).
        entry_holds: BTreeMap<Uuid, i32>,
        now: DateTime<Utc>,
        joins: u32,
    }

    impl World {
        fn new(capacity: i32) -> Self {
            World {
                capacity,
                sold: capacity,
                held: 0,
                waiting_units: 0,
                entries: Vec::new(),
                public_holds: Vec::new(),
                entry_holds: BTreeMap::new(),
                now: t0(),
                joins: 0,
            }
        }

        fn free(&self) -> i32 {
            self.capacity - self.sold - self.held
        }

        fn public_available(&self) -> i32 {
            self.free() - self.waiting_units
        }

        fn in_status(&self, status: Status) -> Vec<usize> {
            (0..self.entries.len())
                .filter(|i| self.entries[*i].status == status)
                .collect()
        }

        fn pick(&self, status: Status, pick: usize) -> Option<usize> {
            let found = self.in_status(status);
            (!found.is_empty()).then(|| found[pick % found.len()])
        }

        fn serving_order(&self) -> Vec<usize> {
            let mut waiting = self.in_status(Status::Waiting);
            waiting.sort_by_key(|i| {
                let e = &self.entries[*i];
                (!e.vip, e.joined, e.id)
            });
            waiting
        }

        fn release_entry_hold(&mut self, index: usize) {
            let id = self.entries[index].id;
            let q = self.entry_holds.remove(&id).expect("an entry hold");
            self.held -= q;
        }

        /// Returns an error when the policy broke a rule of the model.
        fn step(&mut self, op: Op) -> Result<(), String> {
            match op {
                Op::Join { quantity, vip } => {
                    // Joining is for when the public cannot buy that many.
                    if self.public_available() < quantity {
                        self.joins += 1;
                        self.entries.push(Entry {
                            id: Uuid::from_u128(u128::from(self.joins)),
                            quantity,
                            vip,
                            joined: self.joins,
                            status: Status::Waiting,
                            blocked_since: None,
                        });
                        self.waiting_units += quantity;
                    }
                }
                Op::Leave { pick } => {
                    if pick % 2 == 0 {
                        if let Some(i) = self.pick(Status::Waiting, pick) {
                            self.entries[i].status = Status::Ended;
                            self.waiting_units -= self.entries[i].quantity;
                        }
                    } else if let Some(i) = self.pick(Status::Offered, pick) {
                        self.entries[i].status = Status::Ended;
                        self.release_entry_hold(i);
                    }
                }
                Op::PublicBuy { quantity } => {
                    if self.public_available() >= quantity {
                        self.sold += quantity;
                    }
                }
                Op::PublicHold { quantity } => {
                    if self.public_available() >= quantity {
                        self.held += quantity;
                        self.public_holds.push(quantity);
                    }
                }
                Op::PublicHoldLapses { pick } => {
                    if !self.public_holds.is_empty() {
                        let q = self.public_holds.remove(pick % self.public_holds.len());
                        self.held -= q;
                    }
                }
                Op::Refund { quantity } => self.sold -= quantity.min(self.sold),
                Op::RaiseCapacity { by } => self.capacity += by,
                Op::Dispatch { minutes } => {
                    self.now += Duration::minutes(minutes);
                    self.dispatch()?;
                }
                Op::Accept { pick } => {
                    if let Some(i) = self.pick(Status::Offered, pick) {
                        // The checkout adopts the offer's hold: no new units.
                        self.entries[i].status = Status::Accepted;
                    }
                }
                Op::Pay { pick } => {
                    if let Some(i) = self.pick(Status::Accepted, pick) {
                        let q = self.entry_holds.remove(&self.entries[i].id).expect("held");
                        self.held -= q;
                        self.sold += q;
                        self.entries[i].status = Status::Paid;
                    }
                }
                Op::CheckoutLapses { pick } => {
                    if let Some(i) = self.pick(Status::Accepted, pick) {
                        self.release_entry_hold(i);
                        self.entries[i].status = Status::Ended;
                    }
                }
                Op::OfferEnds { pick } => {
                    if let Some(i) = self.pick(Status::Offered, pick) {
                        self.release_entry_hold(i);
                        self.entries[i].status = Status::Ended;
                    }
                }
            }
            self.check()
        }

        fn dispatch(&mut self) -> Result<(), String> {
            let order = self.serving_order();
            let queue: Vec<Waiting> = order
                .iter()
                .map(|i| Waiting {
                    id: self.entries[*i].id,
                    quantity: self.entries[*i].quantity,
                    blocked_since: self.entries[*i].blocked_since,
                })
                .collect();
            let head_window_passed = queue.first().is_some_and(|w| {
                w.quantity > self.free()
                    && w.blocked_since
                        .is_some_and(|since| self.now - since >= window())
            });
            let plan = plan(self.free(), &queue, self.now, window());
            if plan.offered_units(&queue) > self.free() {
                return Err(format!("offered more than is free: {plan:?}"));
            }
            for (id, since) in &plan.blocked_since {
                let e = self
                    .entries
                    .iter_mut()
                    .find(|e| e.id == *id)
                    .ok_or("unknown")?;
                e.blocked_since = *since;
            }
            for id in &plan.offers {
                let i = self
                    .entries
                    .iter()
                    .position(|e| e.id == *id)
                    .ok_or("unknown entry offered")?;
                if self.entries[i].status != Status::Waiting {
                    return Err(format!("offered an entry that does not wait: {id}"));
                }
                if self.entry_holds.contains_key(id) {
                    return Err(format!("offered twice: {id}"));
                }
                let q = self.entries[i].quantity;
                self.entries[i].status = Status::Offered;
                self.held += q;
                self.waiting_units -= q;
                self.entry_holds.insert(*id, q);
            }
            // Nobody first in line is left waiting with enough units free.
            let waiting = self.serving_order();
            if let Some(head) = waiting.first()
                && self.entries[*head].quantity <= self.free()
            {
                return Err(format!("the head fits and was not offered: {plan:?}"));
            }
            // Once the head's window has passed, no waiting entry fits.
            if head_window_passed
                && let Some(i) = waiting
                    .iter()
                    .find(|i| self.entries[**i].quantity <= self.free())
            {
                return Err(format!(
                    "units idle past the window: {:?}",
                    self.entries[*i]
                ));
            }
            Ok(())
        }

        fn check(&self) -> Result<(), String> {
            let holds: i32 =
                self.public_holds.iter().sum::<i32>() + self.entry_holds.values().sum::<i32>();
            let waiting: i32 = self
                .in_status(Status::Waiting)
                .iter()
                .map(|i| self.entries[*i].quantity)
                .sum();
            if self.sold < 0 || self.held < 0 || self.sold + self.held > self.capacity {
                return Err(format!(
                    "sold {} + held {} over capacity {}",
                    self.sold, self.held, self.capacity
                ));
            }
            if self.held != holds {
                return Err(format!("held {} but holds sum to {holds}", self.held));
            }
            if self.waiting_units != waiting {
                return Err(format!(
                    "waiting_units {} but waiting entries want {waiting}",
                    self.waiting_units
                ));
            }
            // Every entry holding units is offered or accepted, and holds its own.
            for e in &self.entries {
                let holding = matches!(e.status, Status::Offered | Status::Accepted);
                if holding != self.entry_holds.contains_key(&e.id) {
                    return Err(format!("entry {e:?} and its hold disagree"));
                }
                if let Some(q) = self.entry_holds.get(&e.id)
                    && *q != e.quantity
                {
                    return Err(format!("entry {e:?} holds {q}"));
                }
            }
            // No freed unit stays reserved while nobody waits.
            if waiting == 0 && self.public_available() != self.free() {
                return Err("units reserved with nobody waiting".into());
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn no_unit_is_offered_twice_or_left_reserved(
            capacity in 1..12i32,
            ops in proptest::collection::vec(op(), 1..80),
        ) {
            let mut world = World::new(capacity);
            for op in ops {
                if let Err(broken) = world.step(op) {
                    return Err(TestCaseError::fail(format!("after {op:?}: {broken}")));
                }
            }
            // Everyone leaves: every reserved unit is public again.
            let waiting = world.in_status(Status::Waiting);
            for i in waiting {
                world.entries[i].status = Status::Ended;
                world.waiting_units -= world.entries[i].quantity;
            }
            prop_assert_eq!(world.public_available(), world.free());
        }
    }
}

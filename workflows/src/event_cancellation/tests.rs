//! Every transition of the event cancellation, and random walks of its
//! children's ends against a model of the bookings table.

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::engine::ChildEnd;
use crate::refund::{Phase as RefundPhase, RequestedBy};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

const POLL_SECS: i64 = 90;

fn event() -> Uuid {
    Uuid::from_u128(2)
}

std::thread_local! {
    /// What each test booking has left to refund: the child reserves it in
    /// its own first step, so the cancellation itself never sees it.
    static PAID: std::cell::RefCell<std::collections::HashMap<Uuid, i64>> = Default::default();
}

/// Booking `i`: its id orders it, `amount` left to refund (nothing for a free one).
fn booking(i: u128, amount: i64) -> BookingToRefund {
    let booking_id = Uuid::from_u128(1000 + i);
    PAID.with(|p| p.borrow_mut().insert(booking_id, amount));
    BookingToRefund {
        booking_id,
        buyer_id: Uuid::from_u128(5000 + i),
    }
}

/// What the booking's refund reserved in its first step.
fn amount_of(b: &BookingToRefund) -> Money {
    Money::new(PAID.with(|p| p.borrow()[&b.booking_id]), "EUR")
}

fn bookings(range: std::ops::Range<u128>) -> Vec<BookingToRefund> {
    range.map(|i| booking(i, 1000 * (i as i64 + 1))).collect()
}

fn fresh(max_in_flight: u32) -> CancellationState {
    CancellationState::new(event(), max_in_flight, POLL_SECS)
}

fn step(state: &CancellationState, input: Input) -> Decision {
    let d = EventCancellation::decide(state, &input, t0());
    assert!(d.accepted, "{input:?} rejected in {:?}", state.phase);
    assert_eq!(d.step, d.state.phase.step());
    d
}

fn assert_ignored(state: &CancellationState, input: Input) {
    let d = EventCancellation::decide(state, &input, t0());
    assert!(!d.accepted, "{input:?} taken in {:?}", state.phase);
    assert_eq!(&d.state, state);
    assert_eq!(d.command, None);
    assert!(d.children.is_empty());
}

fn stopped(count: u32, bookings_total: u32) -> Input {
    Input::Local(LocalOutcome::CheckoutsStopped {
        count,
        bookings_total,
    })
}

fn batch(bookings: Vec<BookingToRefund>, exhausted: bool) -> Input {
    Input::Local(LocalOutcome::Batch {
        bookings,
        exhausted,
    })
}

fn next_batch(after: Option<Uuid>, limit: u32) -> Option<Command> {
    Some(Command::Local(LocalCommand::NextBatch {
        event_id: event(),
        after,
        limit,
    }))
}

/// The refund a booking's child starts from: it reserves the booking's
/// tickets and what is left of its payment in its own first step.
fn child_state(b: &BookingToRefund) -> RefundState {
    RefundState::for_cancellation(b.booking_id, event(), b.buyer_id, POLL_SECS)
}

/// The child after its first step reserved the booking's amount.
fn reserved_child(b: &BookingToRefund) -> RefundState {
    let mut s = child_state(b);
    s.amount = amount_of(b);
    s.reserved = true;
    s
}

/// A child's end as the engine reports it: its status and its view then.
fn ended(child_state: &RefundState, status: RunStatus) -> Input {
    let mut s = child_state.clone();
    s.phase = match status {
        RunStatus::Completed => RefundPhase::Completed,
        RunStatus::Cancelled => RefundPhase::Cancelled,
        _ => RefundPhase::Failed,
    };
    Input::ChildEnded(ChildEnd {
        key: child_key(s.booking_id),
        run_id: Uuid::from_u128(70_000 + s.booking_id.as_u128()),
        kind: "refund".into(),
        status,
        view: serde_json::to_value(Refund::view(&s)).unwrap(),
    })
}

fn end_of(b: &BookingToRefund, status: RunStatus) -> Input {
    ended(&reserved_child(b), status)
}

/// A cancellation refunding, past the stop of its checkouts.
fn refunding(max_in_flight: u32, total: u32) -> CancellationState {
    let d = step(&fresh(max_in_flight), Input::Start);
    step(&d.state, stopped(1, total)).state
}

#[test]
fn start_stops_the_events_checkouts_first() {
    let d = step(&fresh(3), Input::Start);
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "stopping_checkouts");
    assert_eq!(
        d.command,
        Some(Command::Local(LocalCommand::StopCheckouts {
            event_id: event()
        }))
    );
    assert!(d.children.is_empty());
    assert_eq!(EventCancellation::initial_step(), "start");
}

#[test]
fn once_checkouts_are_stopped_the_first_batch_is_as_large_as_the_cap() {
    let d = step(&step(&fresh(3), Input::Start).state, stopped(2, 5));
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.step, "refunding");
    assert_eq!(d.command, next_batch(None, 3));
    assert_eq!(d.state.bookings_total, Some(5));
    assert_eq!(d.state.checkouts_stopped, 2);
    let view = EventCancellation::view(&d.state);
    assert_eq!(view.bookings_total, Some(5));
    assert_eq!(view.not_started, Some(5));
    assert_eq!(view.pending, 0);
    assert_eq!(view.checkouts_stopped, 2);
}

#[test]
fn a_batch_starts_one_child_refund_per_booking() {
    let batch_of = bookings(0..3);
    let d = step(&refunding(3, 5), batch(batch_of.clone(), false));
    assert_eq!(d.children.len(), 3);
    for (child, b) in d.children.iter().zip(&batch_of) {
        assert_eq!(child.kind, "refund");
        assert_eq!(child.key, format!("booking:{}", b.booking_id));
        assert_eq!(child.step, "start");
        assert_eq!(child.owner_id, Some(b.buyer_id));
        let state: RefundState = serde_json::from_value(child.state.clone()).unwrap();
        assert_eq!(state, child_state(b));
        assert_eq!(state.requested_by, RequestedBy::EventCancellation);
        assert!(!state.reserved, "the child reserves in its own first step");
        assert_eq!(child.view["state"], "requested");
    }
    // The cap is reached: wait for a child to end.
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.command, None);
    assert_eq!(d.state.cursor, Some(batch_of[2].booking_id));
    assert_eq!((d.state.started, d.state.in_flight), (3, 3));
    assert!(!d.state.exhausted);
    let view = EventCancellation::view(&d.state);
    assert_eq!((view.pending, view.not_started), (3, Some(2)));
}

#[test]
fn a_short_batch_is_followed_by_another_up_to_the_cap() {
    let d = step(&refunding(3, 5), batch(bookings(0..2), false));
    assert_eq!(d.children.len(), 2);
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(
        d.command,
        next_batch(Some(booking(1, 0).booking_id), 1),
        "only the room left"
    );
}

#[test]
fn a_child_that_ended_is_counted_and_its_place_refilled() {
    let full = step(&refunding(3, 5), batch(bookings(0..3), false)).state;
    let d = step(&full, end_of(&bookings(0..1)[0], RunStatus::Completed));
    assert!(d.children.is_empty());
    assert_eq!(d.status, RunStatus::Running);
    assert_eq!(d.command, next_batch(Some(booking(2, 0).booking_id), 1));
    assert_eq!((d.state.in_flight, d.state.refunded), (2, 1));
    assert_eq!(d.state.refunded_amount, Some(Money::new(1000, "EUR")));
    // The next child refills the place.
    let d = step(&d.state, batch(bookings(3..4), false));
    assert_eq!(d.children.len(), 1);
    assert_eq!(d.children[0].key, child_key(booking(3, 0).booking_id));
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!((d.state.in_flight, d.state.started), (3, 4));
    // Another completed child adds its amount.
    let d = step(&d.state, end_of(&bookings(1..2)[0], RunStatus::Completed));
    assert_eq!(d.state.refunded_amount, Some(Money::new(3000, "EUR")));
}

#[test]
fn a_child_that_ended_without_a_refund_is_counted_apart() {
    let full = step(&refunding(2, 2), batch(bookings(0..2), true)).state;
    let d = step(&full, end_of(&bookings(0..1)[0], RunStatus::Cancelled));
    assert_eq!((d.state.refunded, d.state.not_refunded), (0, 1));
    assert_eq!(d.state.refunded_amount, None);
    assert_eq!(d.status, RunStatus::Waiting);
    let d = step(&d.state, end_of(&bookings(1..2)[0], RunStatus::Compensated));
    assert_eq!((d.state.refunded, d.state.not_refunded), (0, 2));
    assert_eq!(d.status, RunStatus::Completed);
    let view = EventCancellation::view(&d.state);
    assert_eq!((view.refunded, view.failed, view.pending), (0, 2, 0));
}

#[test]
fn the_run_completes_only_once_every_child_has_ended() {
    let d = step(&refunding(5, 2), batch(bookings(0..2), true));
    assert_eq!(
        d.status,
        RunStatus::Waiting,
        "every booking started, two in flight"
    );
    assert_eq!(d.command, None);
    assert!(d.state.exhausted);
    let d = step(&d.state, end_of(&bookings(0..1)[0], RunStatus::Completed));
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.command, None, "nothing more to take");
    let d = step(&d.state, end_of(&bookings(1..2)[0], RunStatus::Completed));
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.step, "completed");
    assert_eq!(d.command, None);
    let view = EventCancellation::view(&d.state);
    assert_eq!(view.refunded, 2);
    assert_eq!(view.pending, 0);
    assert_eq!(view.not_started, Some(0));
    assert_eq!(view.refunded_amount, Some(Money::new(3000, "EUR")));
    // Nothing moves a completed cancellation.
    assert_ignored(&d.state, end_of(&bookings(0..1)[0], RunStatus::Completed));
    assert_ignored(&d.state, Input::Timer);
}

#[test]
fn an_event_with_nothing_left_to_refund_completes_at_once() {
    let d = step(&refunding(4, 0), batch(Vec::new(), true));
    assert_eq!(d.status, RunStatus::Completed);
    assert!(d.children.is_empty());
    assert_eq!(d.command, None);
    assert_eq!(d.state.started, 0);
}

/// An empty batch that does not say it was the last would have the run ask
/// again from the same cursor, find nothing again, and loop for ever inside
/// one transition: nothing after an empty batch is taken as the end.
#[test]
fn an_empty_batch_is_the_end_of_the_bookings_whatever_it_says() {
    let d = step(&refunding(4, 0), batch(Vec::new(), false));
    assert_eq!(d.status, RunStatus::Completed);
    assert_eq!(d.command, None);
    // With children in flight: wait for them, ask for nothing more.
    let d = step(&refunding(4, 3), batch(bookings(0..2), false));
    assert_eq!(d.command, next_batch(Some(booking(1, 0).booking_id), 2));
    let d = step(&d.state, batch(Vec::new(), false));
    assert_eq!(d.status, RunStatus::Waiting);
    assert_eq!(d.command, None);
    assert!(d.state.exhausted);
}

#[test]
fn a_cap_of_zero_is_one() {
    let d = step(&step(&fresh(0), Input::Start).state, stopped(0, 3));
    assert_eq!(d.command, next_batch(None, 1));
}

#[test]
fn inputs_that_mean_nothing_in_a_phase_are_dropped() {
    let start = fresh(2);
    let stopping = step(&start, Input::Start).state;
    let waiting = step(&refunding(2, 3), batch(bookings(0..2), false)).state;
    let signal = Input::Signal {
        name: "refund_updated".into(),
        payload: json!({"refund_id": "re_1", "status": "succeeded"}),
    };
    for (state, input) in [
        (&start, Input::Timer),
        (&start, Input::Cancel),
        (&start, stopped(0, 0)),
        (&start, end_of(&bookings(0..1)[0], RunStatus::Completed)),
        (&stopping, Input::Start),
        (&stopping, batch(bookings(0..1), true)),
        (&stopping, end_of(&bookings(0..1)[0], RunStatus::Completed)),
        (&waiting, Input::Start),
        (&waiting, stopped(0, 3)),
        (&waiting, Input::Timer),
        // An event cancelled stays cancelled.
        (&waiting, Input::Cancel),
        (&waiting, Input::Retry),
        (&waiting, signal),
        (
            &waiting,
            Input::RemoteFailed {
                key: "x".into(),
                error: "e".into(),
            },
        ),
    ] {
        assert_ignored(state, input);
    }
}

#[test]
fn the_view_shows_progress_and_the_run_holds_no_money_itself() {
    let d = step(&refunding(2, 4), batch(bookings(0..2), false));
    let d = step(&d.state, end_of(&bookings(0..1)[0], RunStatus::Completed));
    let d = step(&d.state, batch(bookings(2..3), false));
    let d = step(&d.state, end_of(&bookings(1..2)[0], RunStatus::Cancelled));
    let json = serde_json::to_value(EventCancellation::view(&d.state)).unwrap();
    assert_eq!(
        json,
        json!({
            "event_id": event(),
            "bookings_total": 4,
            "refunded": 1,
            "failed": 1,
            "pending": 1,
            "not_started": 1,
            "refunded_amount": {"amount_minor": 1000, "currency": "EUR"},
            "checkouts_stopped": 1,
        })
    );
    // The money is the children's: each refund owes its own.
    assert_eq!(EventCancellation::money_at_stake(&d.state), None);
}

mod walk {
    //! Random walks: children end in any order and with any status, bookings
    //! disappear before their batch (their buyer refunded them), and the
    //! bookings table answers batches eagerly, lazily or one at a time.

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    /// How the bookings table says a batch was the last.
    #[derive(Debug, Clone, Copy)]
    pub enum Batches {
        /// Nothing is left after it.
        Eager,
        /// It was shorter than asked for.
        Lazy,
        /// One booking at a time; the last is the empty one.
        OneAtATime,
        /// Never says so: only an empty batch tells.
        Never,
    }

    #[derive(Debug, Clone)]
    pub struct Setup {
        pub max_in_flight: u32,
        pub amounts: Vec<i64>,
        pub batches: Batches,
        pub checkouts: u32,
    }

    #[derive(Debug, Clone)]
    pub enum Act {
        /// A child in flight ends.
        ChildEnd { pick: usize, status: RunStatus },
        /// A booking not taken yet leaves the confirmed ones.
        Vanish { pick: usize },
        /// An input that means nothing to a cancellation.
        Stray { pick: usize },
    }

    fn act() -> impl Strategy<Value = Act> {
        let status = prop_oneof![
            6 => Just(RunStatus::Completed),
            2 => Just(RunStatus::Cancelled),
            1 => Just(RunStatus::Compensated),
        ];
        prop_oneof![
            10 => (any::<usize>(), status).prop_map(|(pick, status)| Act::ChildEnd { pick, status }),
            1 => any::<usize>().prop_map(|pick| Act::Vanish { pick }),
            1 => any::<usize>().prop_map(|pick| Act::Stray { pick }),
        ]
    }

    fn setup() -> impl Strategy<Value = Setup> {
        (
            1..6u32,
            prop::collection::vec(prop_oneof![1 => Just(0i64), 6 => 1..50_000i64], 0..25),
            prop_oneof![
                Just(Batches::Eager),
                Just(Batches::Lazy),
                Just(Batches::OneAtATime),
                Just(Batches::Never),
            ],
            0..4u32,
        )
            .prop_map(|(max_in_flight, amounts, batches, checkouts)| Setup {
                max_in_flight,
                amounts,
                batches,
                checkouts,
            })
    }

    pub fn walks() -> impl Strategy<Value = (Setup, Vec<Act>)> {
        (setup(), prop::collection::vec(act(), 0..80))
    }

    #[derive(Debug, Default)]
    pub struct Reached {
        pub walks: u32,
        pub children: u32,
        pub completed_at_once: u32,
        pub cap_reached: u32,
        pub refills_after_an_end: u32,
        pub batches_in_a_row: u32,
        pub short_batches: u32,
        pub waited_on_the_last: u32,
        pub ended_completed: u32,
        pub ended_cancelled: u32,
        pub ended_compensated: u32,
        pub vanished: u32,
        pub strays: u32,
        pub completed: u32,
    }

    struct Sim<'a> {
        setup: Setup,
        state: CancellationState,
        status: RunStatus,
        /// Confirmed bookings not taken by a batch yet, by id.
        table: BTreeMap<Uuid, BookingToRefund>,
        /// Children started and not ended, with the booking each refunds.
        in_flight: Vec<BookingToRefund>,
        keys: BTreeSet<String>,
        started: u32,
        refunded: u32,
        refunded_amount: i64,
        not_refunded: u32,
        stop_issued: bool,
        last_started: Option<Uuid>,
        vanished: u32,
        reached: &'a mut Reached,
    }

    impl Sim<'_> {
        /// The bookings table answers a batch.
        fn take(&mut self, after: Option<Uuid>, limit: u32) -> (Vec<BookingToRefund>, bool) {
            let room = match self.setup.batches {
                Batches::OneAtATime => 1,
                _ => limit as usize,
            };
            let taken: Vec<BookingToRefund> = self
                .table
                .values()
                .filter(|b| after.is_none_or(|a| b.booking_id > a))
                .take(room)
                .cloned()
                .collect();
            for b in &taken {
                self.table.remove(&b.booking_id);
            }
            let exhausted = match self.setup.batches {
                Batches::Eager => self.table.is_empty(),
                Batches::Lazy => taken.len() < limit as usize,
                Batches::OneAtATime => taken.is_empty(),
                Batches::Never => false,
            };
            if taken.len() < limit as usize {
                self.reached.short_batches += 1;
            }
            (taken, exhausted)
        }

        fn feed(&mut self, input: Input) -> bool {
            let mut input = input;
            // One transition applies its local commands in a loop: it must end.
            for _ in 0..1_000 {
                let before = self.state.clone();
                let d = EventCancellation::decide(&self.state, &input, t0());
                if !d.accepted {
                    assert!(!matches!(input, Input::Local(_)), "a local outcome dropped");
                    assert_eq!(d.state, before);
                    assert_eq!(d.command, None);
                    assert!(d.children.is_empty());
                    return false;
                }
                assert_eq!(d.step, d.state.phase.step());
                // Every booking of a batch gets exactly one child, in order.
                let batch: &[BookingToRefund] = match &input {
                    Input::Local(LocalOutcome::Batch { bookings, .. }) => bookings,
                    _ => &[],
                };
                assert_eq!(
                    d.children.len(),
                    batch.len(),
                    "children are started by batches only"
                );
                for (child, b) in d.children.iter().zip(batch) {
                    assert!(
                        self.keys.insert(child.key.clone()),
                        "a second child under {}",
                        child.key
                    );
                    assert_eq!(child.key, child_key(b.booking_id));
                    assert_eq!(child.kind, "refund");
                    assert_eq!(child.step, "start");
                    assert_eq!(child.owner_id, Some(b.buyer_id));
                    let state: RefundState = serde_json::from_value(child.state.clone()).unwrap();
                    assert_eq!(state, child_state(b));
                    self.in_flight.push(b.clone());
                    self.started += 1;
                    self.last_started = Some(b.booking_id);
                    self.reached.children += 1;
                }
                self.state = d.state.clone();
                self.status = d.status;
                let next = match &d.command {
                    None => None,
                    Some(Command::Local(LocalCommand::StopCheckouts { event_id })) => {
                        assert_eq!(*event_id, event());
                        assert!(!self.stop_issued, "checkouts stopped twice");
                        self.stop_issued = true;
                        Some(LocalOutcome::CheckoutsStopped {
                            count: self.setup.checkouts,
                            bookings_total: self.table.len() as u32,
                        })
                    }
                    Some(Command::Local(LocalCommand::NextBatch {
                        event_id,
                        after,
                        limit,
                    })) => {
                        assert_eq!(*event_id, event());
                        assert!(self.stop_issued, "a batch before checkouts were stopped");
                        assert_eq!(
                            *after, self.last_started,
                            "a batch from elsewhere than the cursor"
                        );
                        assert!(*limit >= 1);
                        assert_eq!(
                            *limit as usize,
                            self.setup.max_in_flight as usize - self.in_flight.len(),
                            "a batch of other than the room left"
                        );
                        match &input {
                            Input::ChildEnded(_) => self.reached.refills_after_an_end += 1,
                            Input::Local(LocalOutcome::Batch { .. }) => {
                                self.reached.batches_in_a_row += 1
                            }
                            _ => {}
                        }
                        let (bookings, exhausted) = self.take(*after, *limit);
                        Some(LocalOutcome::Batch {
                            bookings,
                            exhausted,
                        })
                    }
                    Some(other) => panic!("a cancellation issued {other:?}"),
                };
                self.check(&d);
                match next {
                    Some(outcome) => input = Input::Local(outcome),
                    None => return true,
                }
            }
            panic!("one input set off local commands without end");
        }

        /// What must hold in every state of every walk.
        fn check(&mut self, d: &Decision) {
            let s = self.state.clone();
            assert!(
                s.in_flight <= s.max_in_flight,
                "{} in flight over a cap of {}",
                s.in_flight,
                s.max_in_flight
            );
            assert_eq!(s.max_in_flight, self.setup.max_in_flight);
            assert_eq!(s.in_flight as usize, self.in_flight.len());
            assert_eq!(s.started, self.started);
            assert_eq!(s.refunded, self.refunded);
            assert_eq!(s.not_refunded, self.not_refunded);
            assert_eq!(s.refunded + s.not_refunded + s.in_flight, s.started);
            assert_eq!(
                s.refunded_amount.as_ref().map_or(0, |m| m.amount_minor),
                self.refunded_amount
            );
            assert_eq!(s.cursor, self.last_started);
            let view = EventCancellation::view(&s);
            assert_eq!(
                (view.refunded, view.failed, view.pending),
                (s.refunded, s.not_refunded, s.in_flight)
            );
            assert_eq!(EventCancellation::money_at_stake(&s), None);
            match d.status {
                RunStatus::Completed => {
                    assert_eq!(s.phase, Phase::Completed);
                    assert!(
                        self.in_flight.is_empty(),
                        "completed with children in flight"
                    );
                    assert!(
                        self.table.is_empty(),
                        "completed with bookings left unrefunded"
                    );
                    assert_eq!(d.command, None);
                    self.reached.completed += 1;
                }
                RunStatus::Waiting => {
                    assert_eq!(s.phase, Phase::Refunding);
                    assert_eq!(d.command, None);
                    assert!(!self.in_flight.is_empty(), "waiting on nothing");
                    if s.exhausted {
                        self.reached.waited_on_the_last += 1;
                    } else {
                        assert_eq!(s.in_flight, s.max_in_flight, "waiting with room left");
                        self.reached.cap_reached += 1;
                    }
                }
                RunStatus::Running => assert!(d.command.is_some(), "running with nothing to do"),
                other => panic!("a cancellation went {other:?}"),
            }
        }

        fn act(&mut self, act: &Act) {
            match *act {
                Act::ChildEnd { pick, status } => {
                    if self.in_flight.is_empty() {
                        return;
                    }
                    let b = self.in_flight.remove(pick % self.in_flight.len());
                    match status {
                        RunStatus::Completed => {
                            self.refunded += 1;
                            self.refunded_amount += amount_of(&b).amount_minor;
                            self.reached.ended_completed += 1;
                        }
                        RunStatus::Cancelled => {
                            self.not_refunded += 1;
                            self.reached.ended_cancelled += 1;
                        }
                        _ => {
                            self.not_refunded += 1;
                            self.reached.ended_compensated += 1;
                        }
                    }
                    assert!(self.feed(end_of(&b, status)), "a child's end dropped");
                }
                Act::Vanish { pick } => {
                    if let Some(id) = self
                        .table
                        .keys()
                        .nth(pick % self.table.len().max(1))
                        .copied()
                    {
                        self.table.remove(&id);
                        self.vanished += 1;
                        self.reached.vanished += 1;
                    }
                }
                Act::Stray { pick } => {
                    let input = match pick % 5 {
                        0 => Input::Start,
                        1 => Input::Timer,
                        2 => Input::Cancel,
                        3 => Input::Retry,
                        _ => Input::Signal {
                            name: "refund_updated".into(),
                            payload: json!({}),
                        },
                    };
                    assert!(!self.feed(input), "a stray input was taken");
                    self.reached.strays += 1;
                }
            }
        }
    }

    /// Walks one cancellation; panics when anything that must hold does not.
    pub fn walk(setup: &Setup, acts: &[Act], reached: &mut Reached) {
        let table = setup
            .amounts
            .iter()
            .enumerate()
            .map(|(i, &amount)| {
                let b = booking(i as u128, amount);
                (b.booking_id, b)
            })
            .collect();
        reached.walks += 1;
        let mut sim = Sim {
            setup: setup.clone(),
            state: fresh(setup.max_in_flight),
            status: RunStatus::Running,
            table,
            in_flight: Vec::new(),
            keys: BTreeSet::new(),
            started: 0,
            refunded: 0,
            refunded_amount: 0,
            not_refunded: 0,
            stop_issued: false,
            last_started: None,
            vanished: 0,
            reached,
        };
        assert!(sim.feed(Input::Start));
        if sim.status == RunStatus::Completed {
            sim.reached.completed_at_once += 1;
            assert_eq!(sim.started, 0, "completed at once with bookings to refund");
        }
        for act in acts {
            sim.act(act);
        }
        // Every child ends: the cancellation must complete, every booking started.
        for _ in 0..setup.amounts.len() + 1 {
            sim.act(&Act::ChildEnd {
                pick: 0,
                status: RunStatus::Completed,
            });
        }
        assert_eq!(sim.status, RunStatus::Completed, "{:?}", sim.state);
        // Every booking got exactly one child, but those gone before their batch.
        assert_eq!(sim.keys.len(), sim.started as usize);
        assert_eq!(sim.started + sim.vanished, setup.amounts.len() as u32);
        assert!(sim.table.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Every booking of the batches gets exactly one child, `in_flight`
        /// never exceeds the cap, and the run completes only when every
        /// started child has ended and no booking is left.
        #[test]
        fn random_walks_refund_every_booking_once_within_the_cap((setup, acts) in walks()) {
            walk(&setup, &acts, &mut Reached::default());
        }
    }

    /// The same walks, drawn from the same strategy with a fixed seed, reach
    /// every branch that matters many times.
    #[test]
    fn random_walks_reach_every_branch() {
        let mut runner = TestRunner::deterministic();
        let strategy = walks();
        let mut reached = Reached::default();
        for _ in 0..2_000 {
            let (setup, acts) = strategy.new_tree(&mut runner).unwrap().current();
            walk(&setup, &acts, &mut reached);
        }
        println!("{reached:?}");
        for (name, n) in [
            ("completed_at_once", reached.completed_at_once),
            ("cap_reached", reached.cap_reached),
            ("refills_after_an_end", reached.refills_after_an_end),
            ("batches_in_a_row", reached.batches_in_a_row),
            ("short_batches", reached.short_batches),
            ("waited_on_the_last", reached.waited_on_the_last),
            ("ended_completed", reached.ended_completed),
            ("ended_cancelled", reached.ended_cancelled),
            ("ended_compensated", reached.ended_compensated),
            ("vanished", reached.vanished),
            ("strays", reached.strays),
        ] {
            assert!(
                n >= 30,
                "{name} reached only {n} times in {} walks",
                reached.walks
            );
        }
        assert_eq!(
            reached.completed, reached.walks,
            "every walk ends completed"
        );
    }
}

//! The mixed load: each buyer is a task that, until told to stop, picks its
//! next move from its own seeded generator and makes it through the API:
//! browsing, checkouts paid, declined, abandoned or with a coupon, refunds
//! of its own bookings, joining the waitlist and answering its offers, and
//! having its tickets scanned at the door. The organizer cancels the doomed
//! events at times drawn from the seed.
//!
//! Errors are part of the soak (a 503 while Postgres restarts, a 409 for a
//! seat sold out): each operation's outcome is counted, and a buyer goes on.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::Api;
use super::purchase::{Booking, Payment, is_finished};
use super::seed::{SaleEvent, World};
use super::tally::Tally;

pub struct Load {
    pub api: Arc<Api>,
    pub world: Arc<World>,
    pub tally: Arc<Tally>,
    pub stop: CancellationToken,
}

impl Load {
    /// Runs buyer `index` until the stop.
    pub async fn buyer(self: Arc<Self>, index: usize, seed: u64) {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let bearer = self.world.buyers[index].clone();
        let mut bookings: Vec<Booking> = Vec::new();
        while !self.stop.is_cancelled() {
            let roll = rng.random_range(0..100);
            match roll {
                0..20 => self.browse(&mut rng, &bearer).await,
                20..60 => {
                    let payment = match rng.random_range(0..10) {
                        0..8 => Payment::Pay,
                        8 => Payment::Decline,
                        _ => Payment::Abandon,
                    };
                    let event = self.pick_event(&mut rng).clone();
                    let coupon = event.coupon.clone().filter(|_| rng.random_bool(0.3));
                    let quantity = rng.random_range(1..=2);
                    let tt = event.ticket_types[rng.random_range(0..event.ticket_types.len())];
                    let body = json!({ "event_id": event.id,
                                       "items": [{ "ticket_type_id": tt, "quantity": quantity }],
                                       "coupon_code": coupon });
                    let op = if coupon.is_some() {
                        "checkout with coupon"
                    } else {
                        "checkout"
                    };
                    if let Some(b) = self.checkout(op, &bearer, &body, payment, event.id).await {
                        bookings.push(b);
                    }
                }
                60..72 => self.refund(&mut rng, &bearer, &mut bookings).await,
                72..82 => self.join_waitlist(&bearer).await,
                82..92 => {
                    if let Some(b) = self.answer_offers(&mut rng, &bearer).await {
                        bookings.push(b);
                    }
                }
                _ => self.check_in(&mut rng, &bearer, &bookings).await,
            }
            let pause = rng.random_range(50..400);
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
            }
        }
    }

    fn pick_event(&self, rng: &mut StdRng) -> &SaleEvent {
        let world = &self.world;
        match rng.random_range(0..10) {
            0..7 => &world.regular[rng.random_range(0..world.regular.len())],
            7..9 => &world.scarce,
            _ => &world.doomed[rng.random_range(0..world.doomed.len())],
        }
    }

    async fn browse(&self, rng: &mut StdRng, bearer: &str) {
        let outcome = match self
            .api
            .call(Method::GET, "/events?limit=20", bearer, None, None)
            .await
        {
            Some(a) if a.is_success() => {
                let items = a.body["items"].as_array().cloned().unwrap_or_default();
                match items.get(rng.random_range(0..items.len().max(1))) {
                    Some(e) => {
                        let id = e["id"].as_str().unwrap_or_default();
                        outcome_of(
                            self.api
                                .call(Method::GET, &format!("/events/{id}"), bearer, None, None)
                                .await,
                        )
                    }
                    None => "no events listed".into(),
                }
            }
            other => outcome_of(other),
        };
        self.tally.add("browse", &outcome);
    }

    /// Refunds one of the buyer's bookings: all of it, or one ticket.
    async fn refund(&self, rng: &mut StdRng, bearer: &str, bookings: &mut Vec<Booking>) {
        if bookings.is_empty() {
            self.tally.add("refund", "nothing to refund");
            return;
        }
        let booking = bookings.swap_remove(rng.random_range(0..bookings.len()));
        let body = if booking.tickets.len() > 1 && rng.random_bool(0.5) {
            json!({ "ticket_ids": [booking.tickets[0]], "reason": "cannot come" })
        } else {
            json!({ "reason": "cannot come" })
        };
        let key = Uuid::new_v4().to_string();
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/bookings/{}/refunds", booking.id),
                bearer,
                Some(&key),
                Some(&body),
            )
            .await;
        let outcome = match &answer {
            Some(a) if a.status == 202 => {
                let run = a.body["run_id"].as_str().unwrap_or_default();
                match self.wait(bearer, run, is_finished).await {
                    Some(done) => done["status"].as_str().unwrap_or_default().to_owned(),
                    None => "left before its end".into(),
                }
            }
            other => outcome_of(other.clone()),
        };
        self.tally.add("refund", &outcome);
    }

    async fn join_waitlist(&self, bearer: &str) {
        let scarce = &self.world.scarce;
        let body = json!({ "ticket_type_id": scarce.ticket_types[0], "quantity": 1 });
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/events/{}/waitlist", scarce.id),
                bearer,
                None,
                Some(&body),
            )
            .await;
        self.tally.add("waitlist join", &outcome_of(answer));
    }

    /// Answers the buyer's open offers: most are accepted and paid, some
    /// declined.
    async fn answer_offers(&self, rng: &mut StdRng, bearer: &str) -> Option<Booking> {
        let offered = open_offers(&self.api, bearer).await?;
        let Some(entry) = offered.first() else {
            self.tally.add("waitlist offer", "none open");
            return None;
        };
        if rng.random_bool(0.25) {
            let answer = self
                .api
                .call(
                    Method::POST,
                    &format!("/waitlist/{entry}/decline"),
                    bearer,
                    None,
                    None,
                )
                .await;
            self.tally.add(
                "waitlist offer",
                &format!("declined ({})", outcome_of(answer)),
            );
            return None;
        }
        let key = Uuid::new_v4().to_string();
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/waitlist/{entry}/accept"),
                bearer,
                Some(&key),
                None,
            )
            .await;
        match answer {
            Some(a) if a.status == 202 => {
                let run = a.body["run_id"].as_str().unwrap_or_default().to_owned();
                let scarce = self.world.scarce.id;
                self.follow(
                    "waitlist offer accepted",
                    bearer,
                    &run,
                    Payment::Pay,
                    scarce,
                )
                .await
            }
            other => {
                self.tally
                    .add("waitlist offer", &format!("accept: {}", outcome_of(other)));
                None
            }
        }
    }

    /// The organizer's door staff scans one of the buyer's tickets.
    async fn check_in(&self, rng: &mut StdRng, bearer: &str, bookings: &[Booking]) {
        if bookings.is_empty() {
            self.tally.add("check-in", "no ticket to show");
            return;
        }
        let booking = &bookings[rng.random_range(0..bookings.len())];
        let Some(tickets) = self
            .api
            .call(
                Method::GET,
                &format!("/bookings/{}/tickets", booking.id),
                bearer,
                None,
                None,
            )
            .await
            .filter(|a| a.is_success())
        else {
            self.tally.add("check-in", "tickets not shown");
            return;
        };
        let items = tickets.body.as_array().cloned().unwrap_or_default();
        let Some(qr) = items
            .get(rng.random_range(0..items.len().max(1)))
            .and_then(|t| t["qr_payload"].as_str())
        else {
            self.tally.add("check-in", "no ticket listed");
            return;
        };
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("/events/{}/check-in", booking.event_id),
                &self.world.organizer,
                None,
                Some(&json!({ "qr_payload": qr })),
            )
            .await;
        self.tally.add("check-in", &outcome_of(answer));
    }

    /// The organizer cancels each doomed event at its time (offsets from the
    /// soak's start), retrying while the API is away.
    pub async fn organizer(self: Arc<Self>, cancel_at: Vec<Duration>) {
        let start = Instant::now();
        for (event, at) in self.world.doomed.iter().zip(cancel_at) {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep_until(start + at) => {}
            }
            loop {
                let answer = self
                    .api
                    .call(
                        Method::POST,
                        &format!("/events/{}/cancel", event.id),
                        &self.world.organizer,
                        None,
                        None,
                    )
                    .await;
                // 409 `event_not_published`: an earlier try went through.
                let accepted = matches!(&answer, Some(a) if a.is_success() || a.code() == "event_not_published");
                self.tally.add("event cancellation", &outcome_of(answer));
                if accepted || self.stop.is_cancelled() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// `"202"`, `"409 sold_out"`, `"503"`, `"no API answered"`.
pub fn outcome_of(answer: Option<super::client::Answer>) -> String {
    match answer {
        Some(a) if a.code().is_empty() => a.status.to_string(),
        Some(a) => format!("{} {}", a.status, a.code()),
        None => "no API answered".into(),
    }
}

/// The ids of the buyer's waitlist entries with an open offer; `None` when
/// no API answered.
pub async fn open_offers(api: &Api, bearer: &str) -> Option<Vec<String>> {
    let mine = api
        .call(Method::GET, "/me/waitlist", bearer, None, None)
        .await?;
    Some(
        mine.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["status"] == "offered")
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect(),
    )
}

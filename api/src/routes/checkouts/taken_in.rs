//! A checkout start counted from the moment the API takes it in: in flight
//! until its answer, and on its way to the writer of starts until it is
//! queued there.
//!
//! Between being taken in and reaching the writer a request verifies its
//! token, reads its session (a sale's buyers come with sessions the process
//! has not read yet), reads its body and the sale's terms. Both counts start
//! here, before those:
//!
//! - in flight (`crate::starts_in_flight`) is what the first steps' payment
//!   intents wait on in a flood, so that every buyer's decision comes first.
//!   Counted only once with the writer, it left out the buyers still being
//!   taken in behind a flood's first batches.
//! - on its way is what a batch about to be written waits for, a moment
//!   (`gathered::ON_THEIR_WAY`): a wave of buyers that comes at once is then
//!   written in one batch, instead of a first batch of the few that reached
//!   the writer first and a second, after its commit, with the rest.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::gathered::GatheredStarts;
use crate::starts_in_flight::Entered;
use crate::state::AppState;

/// Extracted before the request's other extractors (its session first), and
/// held until its answer: the start is counted in flight all that time, and
/// on its way to the writer until it is handed over ([`Self::handed_over`])
/// or refused. Counts nothing where the process writes no starts of its own
/// (its first steps are the workers').
pub struct TakenIn {
    _in_flight: Option<Entered>,
    on_its_way: Option<Entered>,
}

impl TakenIn {
    /// The count of the start on its way to the writer, for the writer to
    /// let go of once the start is queued (`GatheredStarts::write`).
    pub fn handed_over(&mut self) -> Option<Entered> {
        self.on_its_way.take()
    }
}

impl FromRequestParts<AppState> for TakenIn {
    type Rejection = Infallible;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let (in_flight, on_its_way) = state
            .gathered_starts()
            .map(GatheredStarts::taken_in)
            .unzip();
        Ok(TakenIn {
            _in_flight: in_flight,
            on_its_way,
        })
    }
}

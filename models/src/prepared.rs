//! Statements kept prepared on their connection although Diesel would not
//! cache them.
//!
//! Diesel prepares a statement once per connection only when it can vouch
//! that its SQL never changes: every `UPDATE`, every `ON CONFLICT`, every
//! `sql_query`, every insert of several rows and, on PostgreSQL, every insert
//! of a derived `Insertable` (any field might be written `DEFAULT`) is sent
//! as an unnamed statement instead. diesel-async then pays a round trip to
//! prepare it (the server parses and plans it) before the round trip that
//! runs it, every time. A checkout's start and each of its steps are made of
//! such statements: the run's insert, its transition, its history, its
//! outbox messages, the open-checkout lookup, the batch of holds.
//!
//! The statements wrapped here have SQL that depends only on the code (and,
//! for an insert of several rows, on how many there are: a handful of texts),
//! so keeping them prepared is safe: the statement cache keys them by their
//! SQL text and bind types, and another text is another entry. Their inserts
//! bind `None` as NULL (`treat_none_as_default_value = false`) rather than
//! writing `DEFAULT`, which would make a text per combination of missing
//! fields. What Diesel guards against, a text built from values (an `IN`
//! list of binds), must not be wrapped: each variant would stay prepared on
//! every connection.
//!
//! Overriding `is_safe_to_cache_prepared` is what Diesel's
//! `i-implement-a-third-party-backend-and-opt-into-breaking-changes` feature
//! is for; the workspace enables it for this wrapper, the only override.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A statement the connection keeps prepared (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(Q);

/// `.keep_prepared()` on any statement: prepare it once per connection.
pub trait KeepPrepared: Sized {
    /// Only for a statement whose SQL text depends on nothing but the code
    /// (and a row count): every distinct text stays prepared.
    fn keep_prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Q> KeepPrepared for Q {}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache keys the statement by its SQL text and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

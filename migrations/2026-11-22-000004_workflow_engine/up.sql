-- The durable workflow engine. Postgres is the truth about every run; Redis only
-- carries "look at run R" messages, relayed from the outbox after commit.

CREATE TABLE workflow_runs (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('checkout', 'refund', 'waitlist_offer', 'reminder')),
    status          text NOT NULL CHECK (status IN ('running', 'waiting', 'compensating', 'completed', 'compensated', 'failed', 'cancelled')),
    step            text NOT NULL,
    -- The workflow's typed state, serialised by the workflow's own code.
    state           jsonb NOT NULL,
    -- Bumped by every transition: a message naming an older version is stale.
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- When a waiting run's deadline falls.
    wake_at         timestamptz,
    -- The remote command the run is waiting on, if any: what the stalled-run
    -- sweep re-sends when its message was lost.
    pending_effect  jsonb,
    -- Failed attempts of the current step.
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      jsonb,
    correlation_id  text,
    owner_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    -- The client's Idempotency-Key (scoped to the owner) and a hash of the request
    -- it came with: same key and body → same run; same key, other body → 422.
    idempotency_key text,
    request_hash    bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
);
CREATE UNIQUE INDEX workflow_runs_idempotency_key
    ON workflow_runs (kind, owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflow_runs_waiting_wake_at_idx ON workflow_runs (wake_at) WHERE status = 'waiting';
CREATE INDEX workflow_runs_active_updated_idx ON workflow_runs (updated_at) WHERE status IN ('running', 'compensating');
CREATE INDEX workflow_runs_owner_idx ON workflow_runs (owner_id, created_at DESC);
CREATE INDEX workflow_runs_status_kind_idx ON workflow_runs (status, kind);

-- Every transition and every step attempt: the audit trail of a run.
CREATE TABLE workflow_steps (
    id          bigserial PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    step        text NOT NULL,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    -- What moved the run: start, step_result, signal, timer, operator.
    input       text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('advanced', 'retrying', 'failed', 'compensating', 'ignored')),
    error       text,
    version     integer NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_steps_run_idx ON workflow_steps (run_id, id);

-- Outside events for a run (payment webhooks, user actions), stored before they
-- are delivered. A signal that arrives before the run waits for it is kept and
-- consumed when the run gets there. The dedupe key makes a repeat a no-op.
CREATE TABLE workflow_signals (
    id          bigserial PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    dedupe_key  text NOT NULL UNIQUE,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    consumed_at timestamptz
);
CREATE INDEX workflow_signals_pending_idx ON workflow_signals (run_id, id) WHERE consumed_at IS NULL;

-- Messages to Redis, written in the same transaction as the change they announce
-- and relayed after commit. Postgres holds any backlog; Redis queues stay shallow.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    queue        text NOT NULL,
    payload      jsonb NOT NULL,
    -- Not relayed before this time (delayed messages: timers, retry backoff).
    available_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_available_idx ON outbox (available_at, id);

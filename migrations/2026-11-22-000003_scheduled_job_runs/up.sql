-- One row per execution of a scheduled maintenance job: when its tick was due,
-- which worker ran it and what it did. Operators read it to see that schedules
-- fire (once per tick, even with several worker processes).
CREATE TABLE scheduled_job_runs (
    id            bigserial PRIMARY KEY,
    job           text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    worker        text NOT NULL,
    affected_rows bigint NOT NULL CHECK (affected_rows >= 0),
    finished_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduled_job_runs_job_idx ON scheduled_job_runs (job, scheduled_for DESC);

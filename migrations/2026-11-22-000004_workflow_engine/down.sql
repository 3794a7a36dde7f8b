DROP TABLE outbox;
DROP TABLE workflow_signals;
DROP TABLE workflow_steps;
DROP TABLE workflow_runs;

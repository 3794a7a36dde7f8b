DROP TABLE scheduled_job_runs;

-- depends: 0002.bookings-and-followups
-- Operations: one row per run of the reconciler (hibachi.worker.reconcile), written by the run
-- itself with one statement that also prunes rows older than 30 days. Read by /health/details
-- ("the reconciler's last run") and by `python -m ops reconcile`.

CREATE TABLE IF NOT EXISTS reconciler_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_at      timestamptz NOT NULL DEFAULT now(),
    elapsed_ms  double precision NOT NULL DEFAULT 0 CHECK (elapsed_ms >= 0),
    -- {job_type: jobs re-enqueued}; 0 everywhere in a healthy system
    re_enqueued jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(re_enqueued) = 'object'),
    total       integer NOT NULL DEFAULT 0 CHECK (total >= 0),
    -- {job_type: exception class name} of the reconcilers that failed in this run
    errors      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(errors) = 'object'),
    -- the Lambda request id of the run: the key to its log lines
    request_id  text CHECK (char_length(request_id) <= 128)
);

CREATE INDEX IF NOT EXISTS reconciler_runs_ran_at ON reconciler_runs (ran_at DESC);

-- "follow-ups sent today" in /health/details without reading every follow-up ever sent
CREATE INDEX IF NOT EXISTS followups_sent_at ON followups (sent_at) WHERE status = 'sent';

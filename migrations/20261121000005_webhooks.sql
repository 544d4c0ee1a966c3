-- Webhooks: when a job with a callback_url ends, its outcome is POSTed there.
-- The delivery state lives on the job (set in the transaction that ends it, so
-- no ending is ever missed); every attempt is recorded.
ALTER TABLE jobs
    ADD COLUMN webhook_status      text CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN webhook_attempts    integer NOT NULL DEFAULT 0,
    ADD COLUMN webhook_last_status integer,
    ADD COLUMN webhook_last_error  text,
    ADD COLUMN webhook_next_at     timestamptz;
CREATE INDEX jobs_webhook_due_idx ON jobs (webhook_next_at) WHERE webhook_status = 'pending';

CREATE TABLE webhook_attempts (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    http_status integer,
    error       text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- Retries with backoff: a job that failed transiently goes back to `queued`
-- with the time of its next attempt (no claim before it) and the error that
-- made it wait, so clients can see why and until when.
ALTER TABLE jobs
    ADD COLUMN retry_at   timestamptz,
    ADD COLUMN last_error text;

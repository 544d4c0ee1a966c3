-- Idempotent submission: a client's Idempotency-Key names the job it created
-- (for 24 hours; older keys are released when reused).
ALTER TABLE jobs ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Job listing, newest first: ids are UUIDv7, so id order is creation order.
CREATE INDEX jobs_status_id_idx ON jobs (status, id);

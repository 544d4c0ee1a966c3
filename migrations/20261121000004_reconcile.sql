-- Redis is disposable: the reconciler re-sends messages for jobs that waited
-- too long since they were last enqueued, or whose worker's lease ran out.
ALTER TABLE jobs ADD COLUMN enqueued_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX jobs_queued_enqueued_idx ON jobs (enqueued_at) WHERE status = 'queued';
CREATE INDEX jobs_processing_lease_idx ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

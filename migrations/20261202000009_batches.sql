-- Archive batches (POST /v1/batches): one row per uploaded archive, one item
-- per archive entry. An item's image waits in batch_item_inputs until the
-- feeder turns it into an ordinary register job (then the bytes move to
-- job_inputs), so a batch of any size is accepted without filling the queue.
CREATE TABLE batches (
    id                  uuid PRIMARY KEY,
    collection          text NOT NULL,
    status              text NOT NULL CHECK (status IN ('running', 'completed', 'canceled')),
    total               integer NOT NULL,
    consent_ref         text,
    callback_url        text,
    request_id          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    webhook_status      text CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
    webhook_attempts    integer NOT NULL DEFAULT 0,
    webhook_next_at     timestamptz,
    webhook_last_status integer,
    webhook_last_error  text,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX batches_running_idx ON batches (created_at) WHERE status = 'running';
-- Deleting a subject or collection cancels its pending items; finished batches age out.
CREATE INDEX batches_collection_idx ON batches (collection);
CREATE INDEX batches_finished_idx ON batches (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX batches_webhook_due_idx ON batches (webhook_next_at) WHERE webhook_status = 'pending';

-- state: pending (waiting to be fed), submitted (job_id names its job),
-- skipped / failed (decided when the archive was read), canceled.
CREATE TABLE batch_items (
    batch_id      uuid NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    path          text NOT NULL,
    subject       text NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'submitted', 'skipped', 'failed', 'canceled')),
    -- No foreign key: job retention deletes jobs, the item keeps the id.
    job_id        uuid,
    error_code    text,
    error_message text,
    PRIMARY KEY (batch_id, seq),
    CHECK ((state = 'submitted') = (job_id IS NOT NULL)),
    CHECK ((state IN ('skipped', 'failed')) = (error_code IS NOT NULL))
);
CREATE INDEX batch_items_pending_idx ON batch_items (batch_id, seq) WHERE state = 'pending';

CREATE TABLE batch_item_inputs (
    batch_id     uuid NOT NULL,
    seq          integer NOT NULL,
    content_type text NOT NULL,
    bytes        bytea NOT NULL,
    PRIMARY KEY (batch_id, seq),
    FOREIGN KEY (batch_id, seq) REFERENCES batch_items (batch_id, seq) ON DELETE CASCADE
);

ALTER TABLE jobs ADD COLUMN batch_id uuid;
-- What the batch loop asks all the time: does this batch still have work in flight?
CREATE INDEX jobs_batch_active_idx ON jobs (batch_id) WHERE batch_id IS NOT NULL AND status IN ('queued', 'processing');

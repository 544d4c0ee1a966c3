-- API keys (issue 13). A key is stored only as HMAC-SHA256(pepper, key): keys
-- are 256 random bits, so a fast keyed hash is as safe as a slow one, and the
-- pepper (never in the database) makes a stolen table useless on its own.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,
    -- The key's first characters, to tell keys apart in listings.
    key_prefix  text NOT NULL,
    actions     text[] NOT NULL,
    collections text[] NOT NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The key that created a job or batch. No foreign key: the record outlives the key.
ALTER TABLE jobs ADD COLUMN api_key_id uuid;
ALTER TABLE batches ADD COLUMN api_key_id uuid;

-- An idempotency key belongs to the API key that sent it: two tenants that
-- happen to pick the same Idempotency-Key never see each other's job.
DROP INDEX jobs_idempotency_key_idx;
CREATE UNIQUE INDEX jobs_idempotency_key_idx
    ON jobs (coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), idempotency_key)
    WHERE idempotency_key IS NOT NULL;

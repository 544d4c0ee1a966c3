-- facerec schema v1: jobs (the source of truth for work), their inputs,
-- and the gallery (subjects and their face embeddings).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('register', 'recognize')),
    status           text NOT NULL CHECK (status IN ('queued', 'processing', 'succeeded', 'failed', 'canceled')),
    params           jsonb NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    result           jsonb,
    error_code       text,
    error_message    text,
    request_id       text,
    callback_url     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    -- Set while processing: the claim token of the worker that holds the job and
    -- when its lease runs out (after which another worker may take it over).
    claim_token      uuid,
    lease_expires_at timestamptz,
    CHECK ((status IN ('succeeded', 'failed', 'canceled')) = (finished_at IS NOT NULL)),
    CHECK ((status = 'failed') = (error_code IS NOT NULL))
);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at);

-- Uploaded bytes, kept apart so job rows stay small; deleted when the job ends.
CREATE TABLE job_inputs (
    job_id       uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    content_type text NOT NULL,
    bytes        bytea NOT NULL
);

CREATE TABLE subjects (
    id         uuid PRIMARY KEY,
    collection text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection, name)
);

CREATE TABLE faces (
    id              uuid PRIMARY KEY,
    subject_id      uuid NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    collection      text NOT NULL,
    -- detector+embedder pair; vectors from different embedders are never compared.
    model           text NOT NULL,
    embedding       vector(128) NOT NULL,
    bbox            jsonb NOT NULL,
    detection_score real NOT NULL,
    source_job_id   uuid UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX faces_subject_idx ON faces (subject_id);
CREATE INDEX faces_collection_model_idx ON faces (collection, model);
CREATE INDEX faces_embedding_hnsw_idx ON faces USING hnsw (embedding vector_cosine_ops);

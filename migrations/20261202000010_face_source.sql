-- The sha256 of the image a face was registered from: registering the same
-- image for the same subject again returns that face instead of storing a
-- second copy (a re-uploaded batch, or a re-run after job retention has
-- forgotten its idempotency keys, adds nothing). Faces registered before this
-- migration have none and are never matched.
ALTER TABLE faces ADD COLUMN source_sha256 bytea;
CREATE UNIQUE INDEX faces_subject_source_idx ON faces (subject_id, source_sha256) WHERE source_sha256 IS NOT NULL;

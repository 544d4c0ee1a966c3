-- Embed jobs; faces record their detector and embedder separately (recognition
-- compares vectors of one embedder, whichever detector found the face) and the
-- quality measured when they were registered.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('register', 'recognize', 'embed'));

ALTER TABLE faces ADD COLUMN detector text, ADD COLUMN embedder text, ADD COLUMN quality jsonb;
UPDATE faces SET detector = split_part(model, '+', 1), embedder = split_part(model, '+', 2);
ALTER TABLE faces ALTER COLUMN detector SET NOT NULL, ALTER COLUMN embedder SET NOT NULL;
DROP INDEX faces_collection_model_idx;
ALTER TABLE faces DROP COLUMN model;
CREATE INDEX faces_collection_embedder_idx ON faces (collection, embedder);

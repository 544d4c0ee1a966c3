-- The gallery as a product: collections with their own settings and counts,
-- consent recorded on subjects, landmarks kept with faces, verify jobs (which
-- may carry a second photo), and an audit log of deletions.

CREATE TABLE collections (
    name            text PRIMARY KEY,
    description     text,
    -- Default recognize/verify threshold in this collection (NULL: the server's).
    threshold       real CHECK (threshold BETWEEN -1 AND 1),
    -- Bound by the first face: vectors of different embedders are never mixed.
    embedder        text,
    require_consent boolean NOT NULL DEFAULT false,
    -- Kept by the triggers below, so reading them never counts a large table.
    subject_count   bigint NOT NULL DEFAULT 0,
    face_count      bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

INSERT INTO collections (name, embedder, subject_count, face_count, created_at)
SELECT s.collection,
       (SELECT min(f.embedder) FROM faces f WHERE f.collection = s.collection),
       count(*),
       (SELECT count(*) FROM faces f WHERE f.collection = s.collection),
       min(s.created_at)
FROM subjects s GROUP BY s.collection;

ALTER TABLE subjects
    ADD CONSTRAINT subjects_collection_fkey FOREIGN KEY (collection) REFERENCES collections (name) ON DELETE CASCADE,
    -- A reference to the person's consent (a signed form's id, a ticket URL) and when it was given.
    ADD COLUMN consent_ref text,
    ADD COLUMN consent_at  timestamptz;

-- Subjects are listed (and searched by prefix) in byte order, the same on
-- every install; faces of a collection are paged by id.
CREATE INDEX subjects_collection_name_c_idx ON subjects (collection, name COLLATE "C");
CREATE INDEX collections_name_c_idx ON collections (name COLLATE "C");
CREATE INDEX faces_collection_id_idx ON faces (collection, id);

ALTER TABLE faces ADD COLUMN landmarks jsonb;
UPDATE faces f SET landmarks = j.result -> 'landmarks'
FROM jobs j WHERE j.id = f.source_job_id AND j.result ? 'landmarks';

CREATE FUNCTION collections_count_faces() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE collections c SET face_count = c.face_count + n.count
        FROM (SELECT collection, count(*) FROM added GROUP BY collection) n WHERE c.name = n.collection;
    ELSE
        UPDATE collections c SET face_count = c.face_count - n.count
        FROM (SELECT collection, count(*) FROM removed GROUP BY collection) n WHERE c.name = n.collection;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER faces_counted_in AFTER INSERT ON faces REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION collections_count_faces();
CREATE TRIGGER faces_counted_out AFTER DELETE ON faces REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION collections_count_faces();

CREATE FUNCTION collections_count_subjects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE collections c SET subject_count = c.subject_count + n.count
        FROM (SELECT collection, count(*) FROM added GROUP BY collection) n WHERE c.name = n.collection;
    ELSE
        UPDATE collections c SET subject_count = c.subject_count - n.count
        FROM (SELECT collection, count(*) FROM removed GROUP BY collection) n WHERE c.name = n.collection;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER subjects_counted_in AFTER INSERT ON subjects REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION collections_count_subjects();
CREATE TRIGGER subjects_counted_out AFTER DELETE ON subjects REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION collections_count_subjects();

-- Verify jobs: a photo compared with a second photo, a subject or a face.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('register', 'recognize', 'embed', 'verify'));
ALTER TABLE job_inputs ADD COLUMN second_content_type text, ADD COLUMN second_bytes bytea;

-- Every deletion from the gallery: what, when, how much. No biometric data.
CREATE TABLE audit_log (
    id               uuid PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    action           text NOT NULL CHECK (action IN ('collection_deleted', 'subject_deleted', 'face_deleted')),
    collection       text NOT NULL,
    subject          text,
    face_id          uuid,
    subjects_deleted bigint NOT NULL,
    faces_deleted    bigint NOT NULL,
    jobs_canceled    bigint NOT NULL,
    -- The consent reference of a deleted subject: withdrawal is on record.
    consent_ref      text,
    request_id       text
);

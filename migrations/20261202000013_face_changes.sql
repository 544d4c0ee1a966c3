-- Recognize's in-memory face indexes (crates/face-index, kept by
-- crates/store/src/face_indexes.rs) follow each collection's faces through
-- this log: every statement that adds or removes faces bumps the
-- collection's face_version and records which faces, in the trigger that
-- already updates face_count. That update locks the collection's row until
-- commit, so versions of one collection commit in order and a reader that
-- sees version v sees every change up to v.

ALTER TABLE collections ADD COLUMN face_version bigint NOT NULL DEFAULT 0;

CREATE TABLE face_changes (
    collection text NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
    version    bigint NOT NULL,
    added      uuid[] NOT NULL DEFAULT '{}',
    removed    uuid[] NOT NULL DEFAULT '{}',
    -- Old entries are pruned (an index further behind reloads its collection).
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, version)
);

CREATE OR REPLACE FUNCTION collections_count_faces() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A collection being deleted is gone already: its row updates nothing
    -- and logs nothing (its log goes with it).
    IF TG_OP = 'INSERT' THEN
        WITH n AS (SELECT collection, count(*) AS count, array_agg(id) AS ids FROM added GROUP BY collection),
        bumped AS (
            UPDATE collections c SET face_count = c.face_count + n.count, face_version = c.face_version + 1
            FROM n WHERE c.name = n.collection RETURNING c.name, c.face_version
        )
        INSERT INTO face_changes (collection, version, added)
        SELECT bumped.name, bumped.face_version, n.ids FROM bumped JOIN n ON n.collection = bumped.name;
    ELSE
        WITH n AS (SELECT collection, count(*) AS count, array_agg(id) AS ids FROM removed GROUP BY collection),
        bumped AS (
            UPDATE collections c SET face_count = c.face_count - n.count, face_version = c.face_version + 1
            FROM n WHERE c.name = n.collection RETURNING c.name, c.face_version
        )
        INSERT INTO face_changes (collection, version, removed)
        SELECT bumped.name, bumped.face_version, n.ids FROM bumped JOIN n ON n.collection = bumped.name;
    END IF;
    RETURN NULL;
END $$;

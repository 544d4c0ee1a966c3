-- A batch item's image stays in batch_item_inputs when the item becomes a
-- job, instead of being copied into job_inputs.
--
-- Feeding copied every image once more while the batch ran: PostgreSQL wrote
-- the archive's bytes a second time (and their WAL), and deleted them twice.
-- For a 2,000-image (89 MiB) archive that was ~0.35 s of PostgreSQL's CPU on
-- the cores it shares with the api, and a first feeding round of 11 MiB
-- written just after the archive's own commit: its first job waited ~0.35 s
-- to be claimed (scripts/bench_ingest.py).
--
-- Now a batch job names its item (jobs.batch_id, jobs.batch_seq); a claim
-- reads the job's input from job_inputs, or else from its item
-- (crates/store/src/jobs.rs). When the job ends, however it ends (its
-- worker, a cancel, a deletion), the trigger below deletes the image, as
-- facerec_finish_job and the cancels delete job_inputs rows: an upload is
-- never kept after its job ends. A job deleted before it ended takes its
-- image with it too. Items fed before this migration keep their job_inputs
-- rows and are read from there.
--
-- Rolling upgrades: a worker older than this migration reads inputs from
-- job_inputs only, and fails a batch job fed from now on with "job input is
-- missing". Stop the old workers before a batch runs on the new version.
ALTER TABLE jobs ADD COLUMN batch_seq integer;

CREATE FUNCTION facerec_drop_batch_input() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM batch_item_inputs WHERE batch_id = OLD.batch_id AND seq = OLD.batch_seq;
    ELSE
        DELETE FROM batch_item_inputs WHERE batch_id = NEW.batch_id AND seq = NEW.batch_seq;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_drop_batch_input_at_end AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.batch_seq IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'canceled')
          AND OLD.status NOT IN ('succeeded', 'failed', 'canceled'))
    EXECUTE FUNCTION facerec_drop_batch_input();

CREATE TRIGGER jobs_drop_batch_input_on_delete AFTER DELETE ON jobs
    FOR EACH ROW
    WHEN (OLD.batch_seq IS NOT NULL AND OLD.status NOT IN ('succeeded', 'failed', 'canceled'))
    EXECUTE FUNCTION facerec_drop_batch_input();

-- Migration 18's function, feeding items without moving their bytes.
CREATE OR REPLACE FUNCTION facerec_feed_batches(p_window bigint, p_batches integer, p_ids uuid[],
                                                OUT fed uuid[], OUT running integer, OUT drained integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_room bigint;
    v_batch record;
    v_seqs integer[];
    v_subjects text[];
    v_ids uuid[];
BEGIN
    fed := '{}';
    PERFORM pg_advisory_xact_lock(1717921124); -- 0x66656564, "feed"
    SELECT least(p_window - count(*), coalesce(cardinality(p_ids), 0)) INTO v_room
    FROM (SELECT 1 FROM jobs WHERE batch_id IS NOT NULL AND status = 'queued'
          LIMIT greatest(p_window, 0)) q;
    FOR v_batch IN
        SELECT b.id, b.collection, b.consent_ref, b.api_key_id FROM batches b
        WHERE v_room > 0 AND b.status = 'running'
          AND EXISTS (SELECT 1 FROM batch_items i WHERE i.batch_id = b.id AND i.state = 'pending')
        ORDER BY b.created_at LIMIT p_batches
    LOOP
        EXIT WHEN v_room <= 0;
        SELECT array_agg(t.seq ORDER BY t.seq), array_agg(t.subject ORDER BY t.seq) INTO v_seqs, v_subjects
        FROM (SELECT seq, subject FROM batch_items WHERE batch_id = v_batch.id AND state = 'pending'
              ORDER BY seq LIMIT v_room FOR UPDATE SKIP LOCKED) t;
        CONTINUE WHEN v_seqs IS NULL;
        v_ids := p_ids[cardinality(fed) + 1 : cardinality(fed) + cardinality(v_seqs)];
        -- The params are JobParams::Register as serde writes it (crates/core/src/params.rs;
        -- tests/batches.rs compares the two).
        INSERT INTO jobs (id, kind, status, params, batch_id, batch_seq, api_key_id)
        SELECT t.id, 'register', 'queued',
               jsonb_strip_nulls(jsonb_build_object('kind', 'register', 'subject', t.subject,
                   'collection', v_batch.collection, 'consent', v_batch.consent_ref)),
               v_batch.id, t.seq, v_batch.api_key_id
        FROM unnest(v_ids, v_subjects, v_seqs) AS t(id, subject, seq);
        UPDATE batch_items i SET state = 'submitted', job_id = t.id
        FROM unnest(v_ids, v_seqs) AS t(id, seq) WHERE i.batch_id = v_batch.id AND i.seq = t.seq;
        fed := fed || v_ids;
        v_room := v_room - cardinality(v_seqs);
    END LOOP;
    SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM batch_items i WHERE i.batch_id = b.id AND i.state = 'pending'))
    INTO running, drained
    FROM batches b WHERE b.status = 'running';
END $$;

-- Feeding archive batches in one round trip.
--
-- facerec_feed_batches: what every worker's batch loop runs five times a
-- second while a batch runs (crates/store/src/batch_feed.rs). It was a
-- transaction of about ten statements, each a wake-up of a worker process
-- that shares its core with inference. Under the feeder lock (one feeder at a
-- time, so the room it counts is not filled twice), queued batch jobs are
-- topped up to p_window: pending items of the oldest running batches (up to
-- p_batches of them) become queued register jobs, named in order by p_ids
-- (UUIDv7, made by the worker; at most cardinality(p_ids) per call, so a
-- larger window fills over several calls), their
-- bytes move from batch_item_inputs to job_inputs, and the items are marked
-- submitted. Items are taken with SKIP LOCKED, as a cancel locks them.
--
-- Returns the new jobs (to be enqueued), and how many batches are running and
-- how many of those have nothing left to feed: only these may have ended,
-- so the loop looks for ended batches only when there are some.
CREATE FUNCTION facerec_feed_batches(p_window bigint, p_batches integer, p_ids uuid[],
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
        INSERT INTO jobs (id, kind, status, params, batch_id, api_key_id)
        SELECT t.id, 'register', 'queued',
               jsonb_strip_nulls(jsonb_build_object('kind', 'register', 'subject', t.subject,
                   'collection', v_batch.collection, 'consent', v_batch.consent_ref)),
               v_batch.id, v_batch.api_key_id
        FROM unnest(v_ids, v_subjects) AS t(id, subject);
        INSERT INTO job_inputs (job_id, content_type, bytes)
        SELECT t.id, x.content_type, x.bytes FROM unnest(v_ids, v_seqs) AS t(id, seq)
        JOIN batch_item_inputs x ON x.batch_id = v_batch.id AND x.seq = t.seq;
        UPDATE batch_items i SET state = 'submitted', job_id = t.id
        FROM unnest(v_ids, v_seqs) AS t(id, seq) WHERE i.batch_id = v_batch.id AND i.seq = t.seq;
        DELETE FROM batch_item_inputs WHERE batch_id = v_batch.id AND seq = ANY (v_seqs);
        fed := fed || v_ids;
        v_room := v_room - cardinality(v_seqs);
    END LOOP;
    SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM batch_items i WHERE i.batch_id = b.id AND i.state = 'pending'))
    INTO running, drained
    FROM batches b WHERE b.status = 'running';
END $$;

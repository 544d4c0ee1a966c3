-- Every job keeps the trace context of the request that created it.
--
-- jobs.traceparent: the W3C `traceparent` of the submission, or of the batch
-- upload the job was fed from, so the worker's spans join that request's
-- trace however the job's message is sent: by the api, by the reconciler
-- after a lost message or a dead worker, for a retry, or by batch feeding.
-- It was carried by the api's message alone, so every other message lost it.
-- batches.traceparent: the batch upload's, copied to each job fed from it.
-- NULL where the request had no trace context (and for rows older than this).
ALTER TABLE jobs ADD COLUMN traceparent text;
ALTER TABLE batches ADD COLUMN traceparent text;

-- facerec_feed_batches: THE LATEST DEFINITION (it replaces migration 19's,
-- which replaced migration 18's; read those for the history). What every
-- worker's batch loop runs five times a second while a batch runs
-- (crates/store/src/batch_feed.rs), in one round trip. Under the feeder lock
-- (one feeder at a time, so the room it counts is not filled twice), queued
-- batch jobs are topped up to p_window: pending items of the oldest running
-- batches (up to p_batches of them) become queued register jobs, named in
-- order by p_ids (UUIDv7, made by the worker; at most cardinality(p_ids) per
-- call, so a larger window fills over several calls), and the items are
-- marked submitted. Each job names its item (batch_id, batch_seq) and reads
-- its image from there when claimed (migration 19); each carries its batch's
-- traceparent. Items are taken with SKIP LOCKED, as a cancel locks them.
--
-- Returns the new jobs (to be enqueued) with their trace contexts
-- (traceparents[i] is fed[i]'s), and how many batches are running and how
-- many of those have nothing left to feed: only these may have ended, so the
-- loop looks for ended batches only when there are some.
--
-- The new OUT column changes the function's type, so it is dropped and
-- created again, in this migration's transaction. A worker older than this
-- migration selects `fed, running, drained` by name and still works; the
-- jobs it feeds carry their trace context, though its messages do not.
DROP FUNCTION facerec_feed_batches(bigint, integer, uuid[]);

CREATE FUNCTION facerec_feed_batches(p_window bigint, p_batches integer, p_ids uuid[],
                                     OUT fed uuid[], OUT traceparents text[],
                                     OUT running integer, OUT drained integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_room bigint;
    v_batch record;
    v_seqs integer[];
    v_subjects text[];
    v_ids uuid[];
BEGIN
    fed := '{}';
    traceparents := '{}';
    PERFORM pg_advisory_xact_lock(1717921124); -- 0x66656564, "feed"
    SELECT least(p_window - count(*), coalesce(cardinality(p_ids), 0)) INTO v_room
    FROM (SELECT 1 FROM jobs WHERE batch_id IS NOT NULL AND status = 'queued'
          LIMIT greatest(p_window, 0)) q;
    FOR v_batch IN
        SELECT b.id, b.collection, b.consent_ref, b.api_key_id, b.traceparent FROM batches b
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
        -- the feeding tests compare the two).
        INSERT INTO jobs (id, kind, status, params, batch_id, batch_seq, api_key_id, traceparent)
        SELECT t.id, 'register', 'queued',
               jsonb_strip_nulls(jsonb_build_object('kind', 'register', 'subject', t.subject,
                   'collection', v_batch.collection, 'consent', v_batch.consent_ref)),
               v_batch.id, t.seq, v_batch.api_key_id, v_batch.traceparent
        FROM unnest(v_ids, v_subjects, v_seqs) AS t(id, subject, seq);
        UPDATE batch_items i SET state = 'submitted', job_id = t.id
        FROM unnest(v_ids, v_seqs) AS t(id, seq) WHERE i.batch_id = v_batch.id AND i.seq = t.seq;
        fed := fed || v_ids;
        traceparents := traceparents || array_fill(v_batch.traceparent::text, ARRAY[cardinality(v_ids)]);
        v_room := v_room - cardinality(v_seqs);
    END LOOP;
    SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM batch_items i WHERE i.batch_id = b.id AND i.state = 'pending'))
    INTO running, drained
    FROM batches b WHERE b.status = 'running';
END $$;

-- A job's end, and a register job's whole end, each in one round trip.
--
-- facerec_finish_job: a held job (status processing, this claim token) moves
-- to its terminal state and its input is dropped, together; false, writing
-- nothing, when the claim was lost. Every job's end goes through it
-- (crates/store/src/jobs.rs).
--
-- facerec_complete_register: the job's end first (a deletion that cancels
-- the job takes the job row first too), then the collection's embedder
-- (bound by the first face), the subject (created if new; a consent
-- reference is stored, the latest wins) and the face. From the worker this
-- was six round trips, each a wake-up of a process that shares its core
-- with inference. Outcomes: 'stored'; 'already_stored' (the subject holds a
-- face of the same image, which the job's result now names); 'claim_lost'
-- (nothing written). A collection bound to another embedder raises FR001
-- with that embedder as the message, and a subject deleted as fast as it is
-- created raises FR002: the whole statement, the job's end included, is
-- rolled back. Each statement inside sees what others committed before it,
-- as the separate statements did.

CREATE FUNCTION facerec_finish_job(p_job uuid, p_token uuid, p_status text, p_result jsonb,
                                   p_error_code text, p_error_message text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET status = p_status, result = p_result, error_code = p_error_code,
        error_message = p_error_message, finished_at = now(), claim_token = NULL, lease_expires_at = NULL,
        webhook_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
        webhook_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END
    WHERE id = p_job AND claim_token = p_token AND status = 'processing';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM job_inputs WHERE job_id = p_job;
    RETURN true;
END $$;

CREATE FUNCTION facerec_complete_register(
    p_job uuid, p_token uuid, p_result jsonb, p_new_subject uuid,
    p_collection text, p_subject text, p_consent_ref text, p_consent_at timestamptz,
    p_face uuid, p_detector text, p_embedder text, p_embedding vector, p_bbox jsonb,
    p_detection_score real, p_landmarks jsonb, p_quality jsonb, p_source_sha256 bytea,
    OUT outcome text, OUT face uuid)
LANGUAGE plpgsql AS $$
DECLARE
    v_bound text;
    v_subject uuid;
BEGIN
    IF NOT facerec_finish_job(p_job, p_token, 'succeeded', p_result, NULL, NULL) THEN
        outcome := 'claim_lost';
        RETURN;
    END IF;
    -- Read first: once bound (the usual case) the collection row is not
    -- locked until the face count changes, at the end of the transaction.
    SELECT embedder INTO v_bound FROM collections WHERE name = p_collection;
    IF v_bound IS NULL THEN
        INSERT INTO collections (name, embedder) VALUES (p_collection, p_embedder)
        ON CONFLICT (name) DO UPDATE SET embedder = coalesce(collections.embedder, EXCLUDED.embedder)
        RETURNING embedder INTO v_bound;
    END IF;
    IF v_bound <> p_embedder THEN
        RAISE EXCEPTION USING ERRCODE = 'FR001', MESSAGE = v_bound;
    END IF;
    IF p_consent_ref IS NOT NULL THEN
        INSERT INTO subjects (id, collection, name, consent_ref, consent_at)
        VALUES (p_new_subject, p_collection, p_subject, p_consent_ref, p_consent_at)
        ON CONFLICT (collection, name) DO UPDATE SET
            consent_ref = EXCLUDED.consent_ref, consent_at = EXCLUDED.consent_at
        RETURNING id INTO v_subject;
    ELSE
        -- The usual case: the subject exists, and its row is neither
        -- rewritten nor locked, so registers for one subject do not queue.
        -- A concurrent register may insert it first (DO NOTHING), and a
        -- concurrent deletion may remove it in between, hence the loop.
        FOR attempt IN 1..3 LOOP
            SELECT id INTO v_subject FROM subjects WHERE collection = p_collection AND name = p_subject;
            EXIT WHEN v_subject IS NOT NULL;
            INSERT INTO subjects (id, collection, name) VALUES (p_new_subject, p_collection, p_subject)
            ON CONFLICT (collection, name) DO NOTHING RETURNING id INTO v_subject;
            EXIT WHEN v_subject IS NOT NULL;
        END LOOP;
        IF v_subject IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'FR002', MESSAGE = 'subject created and deleted concurrently';
        END IF;
    END IF;
    INSERT INTO faces (id, subject_id, collection, detector, embedder, embedding, bbox, detection_score,
                       landmarks, quality, source_job_id, source_sha256)
    VALUES (p_face, v_subject, p_collection, p_detector, p_embedder, p_embedding, p_bbox, p_detection_score,
            p_landmarks, p_quality, p_job, p_source_sha256)
    ON CONFLICT (subject_id, source_sha256) WHERE source_sha256 IS NOT NULL DO NOTHING
    RETURNING id INTO face;
    IF face IS NOT NULL THEN
        outcome := 'stored';
        RETURN;
    END IF;
    -- STRICT: had that face been deleted meanwhile, fail (the job is retried)
    -- rather than end the job naming no face.
    SELECT f.id INTO STRICT face FROM faces f WHERE f.subject_id = v_subject AND f.source_sha256 = p_source_sha256;
    UPDATE jobs SET result = jsonb_set(result, '{face_id}', to_jsonb(face::text)) || '{"already_registered": true}'::jsonb
    WHERE id = p_job;
    outcome := 'already_stored';
END $$;

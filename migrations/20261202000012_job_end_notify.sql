-- A job's end is announced on channel facerec_job_end (payload: the job id),
-- whatever ends it (a worker, a cancel, a deletion cancelling queued work), so
-- that GET /v1/jobs/{id}?wait_ms= answers the moment the job ends instead of
-- clients polling. Jobs are always inserted queued, so updates are enough.
-- NOTIFY is sent at commit, never for a rolled-back end.
CREATE FUNCTION facerec_notify_job_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('facerec_job_end', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_end AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'canceled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION facerec_notify_job_end();

-- A batch is announced on channel facerec_batches (payload: its id) when it
-- is recorded: batches are inserted running, in the transaction that records
-- their items, and NOTIFY is sent at its commit. Workers' feeders sleep on
-- this channel while no batch runs, instead of polling five times a second.
CREATE FUNCTION facerec_notify_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('facerec_batches', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER batches_notify_start AFTER INSERT ON batches
    FOR EACH ROW EXECUTE FUNCTION facerec_notify_batch();

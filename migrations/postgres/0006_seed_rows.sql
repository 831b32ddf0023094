-- Rows written the original product's way run: its model inserts tasks with only
-- identifier, action, status 10, priority as text, meta, and optionally start_at,
-- max_attempts and started_by. Times stay UNIX milliseconds.
--
-- A BEFORE INSERT trigger fills what such a row leaves out (PostgreSQL checks NOT NULL after
-- BEFORE triggers): the times (now, in ms), run_at from start_at, priority_rank from priority,
-- the message. sTask's own inserts set all of it, so the WHEN clause keeps them from calling
-- the function. The AFTER INSERT trigger `s_tasks_due` then notifies the hosts as for any
-- new pending task.
CREATE FUNCTION s_tasks_fill_seed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_ms BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
BEGIN
    NEW.created_at := COALESCE(NEW.created_at, now_ms);
    NEW.updated_at := COALESCE(NEW.updated_at, NEW.created_at);
    NEW.run_at := COALESCE(NEW.run_at, GREATEST(COALESCE(NEW.start_at, NEW.created_at), 0));
    NEW.priority_rank := CASE NEW.priority WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END;
    IF NEW.message = '' THEN
        NEW.message := CASE
            WHEN NEW.start_at > NEW.created_at THEN 'Scheduled for '
                || to_char(to_timestamp(NEW.start_at / 1000.0) AT TIME ZONE 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            ELSE 'Waiting to run'
        END;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER s_tasks_seed BEFORE INSERT ON s_tasks
    FOR EACH ROW
    WHEN (NEW.run_at IS NULL OR NEW.created_at IS NULL OR NEW.updated_at IS NULL
          OR NEW.message = ''
          OR NEW.priority_rank IS DISTINCT FROM
             (CASE NEW.priority WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END))
    EXECUTE FUNCTION s_tasks_fill_seed();

-- STASK_TABLE_PREFIX: the notification channels carry the table prefix too, so that two
-- installations in one schema only wake their own hosts. `left('s_', -2)` is the prefix:
-- the drivers send this file with every word starting with `s_` prefixed, so the literal
-- reads 'evo_s_' for the prefix evo_ (and the channel `stask_due_evo_<schema>`), and stays
-- 's_' without one (the channel keeps its earlier name, `stask_due_<schema>`).
CREATE OR REPLACE FUNCTION s_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stask_due_' || left('s_', -2) || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION s_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stask_changed_' || left('s_', -2) || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

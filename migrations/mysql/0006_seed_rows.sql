-- Rows inserted with only the original product's columns (the CMS's PHP model writes
-- identifier, action, status 10, priority as text, meta JSON, optionally start_at,
-- max_attempts and started_by, and its own created_at/updated_at) are runnable at once: this
-- trigger fills what sTask adds. run_at is start_at, or now (UTC) when there is none;
-- priority_rank always follows priority (one source of truth, for our rows too); message is
-- the one the daemon gives a new task; meta defaults to an empty object.
-- DATETIME values are read as UTC, as the daemon writes them (the CMS's connection must use
-- time_zone '+00:00', as Laravel's default does).
--
-- The columns a foreign insert may leave out need defaults of their own: MySQL checks "no
-- default value" before BEFORE INSERT triggers for INSERT ... SELECT and multi-row inserts
-- (a single-row VALUES would reach the trigger). run_at becomes NULL by default, meaning "not
-- given" (the trigger always fills it: no stored row has it NULL); an empty message is
-- "not given" too (the daemon never writes one).
ALTER TABLE s_tasks
    MODIFY run_at BIGINT NULL DEFAULT NULL,
    MODIFY message TEXT COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT (''),
    MODIFY meta JSON NOT NULL DEFAULT ('{}');

CREATE TRIGGER s_tasks_seed BEFORE INSERT ON s_tasks FOR EACH ROW
BEGIN
    SET NEW.priority_rank = CASE NEW.priority WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END;
    IF NEW.run_at IS NULL THEN
        SET NEW.run_at = TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00',
                                       COALESCE(NEW.start_at, UTC_TIMESTAMP(3))) DIV 1000;
    END IF;
    IF NEW.message IS NULL OR NEW.message = '' THEN
        SET NEW.message = CASE
            WHEN NEW.start_at > UTC_TIMESTAMP(3) THEN
                CONCAT('Scheduled for ', DATE_FORMAT(NEW.start_at, '%Y-%m-%dT%H:%i:%s.'),
                       LPAD(MICROSECOND(NEW.start_at) DIV 1000, 3, '0'), 'Z')
            ELSE 'Waiting to run'
        END;
    END IF;
    IF NEW.meta IS NULL THEN
        SET NEW.meta = '{}';
    END IF;
END;

-- Rows written the original product's way run: its model inserts tasks with only
-- identifier, action, status 10, priority as text, meta, and optionally start_at,
-- max_attempts and started_by. Times stay UNIX milliseconds.
--
-- SQLite cannot change a column's default with ALTER TABLE, and run_at, created_at and
-- updated_at were NOT NULL without one, so the table is rebuilt once (the documented
-- "make other kinds of table schema changes" procedure: new table, copy, drop, rename,
-- indexes again; s_tasks has no foreign keys, triggers or views pointing at it). A rebuild
-- rather than only a trigger because an AFTER INSERT trigger runs after the NOT NULL checks:
-- without a default the row is refused before any trigger could fill it in.
--
-- Defaults fill the times (now, in ms; julianday() rather than unixepoch('subsec') so that a
-- CMS's older SQLite library can evaluate them too). The trigger below then derives what a
-- default cannot: run_at from start_at, priority_rank from priority, the message. Both run in
-- the inserting statement, so no claim ever sees a half-filled row; the claim order
-- (priority_rank, run_at, id) always reads the derived values.
CREATE TABLE s_tasks_rebuilt (
    id               INTEGER PRIMARY KEY,
    identifier       TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    status           INTEGER NOT NULL DEFAULT 10 CHECK (status IN (10, 15, 20, 30, 40, 50)),
    message          TEXT    NOT NULL DEFAULT '',
    started_by       INTEGER,
    meta             TEXT    NOT NULL DEFAULT '{}',
    result           TEXT,
    result_file      TEXT,
    start_at         INTEGER,
    run_at           INTEGER NOT NULL
                     DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)),
    finished_at      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    priority         TEXT    NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high')),
    priority_rank    INTEGER NOT NULL DEFAULT 1,
    progress         INTEGER NOT NULL DEFAULT 0,
    processed        INTEGER,
    total            INTEGER,
    eta_seconds      INTEGER,
    created_at       INTEGER NOT NULL
                     DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)),
    updated_at       INTEGER NOT NULL
                     DEFAULT (CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)),
    started_at       INTEGER,
    lease_owner      TEXT,
    lease_token      INTEGER,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_version   TEXT,
    last_error       TEXT,
    duration_ms      INTEGER,
    cpu_ms           INTEGER,
    memory_bytes     INTEGER
);

INSERT INTO s_tasks_rebuilt (id, identifier, action, status, message, started_by, meta, result,
        result_file, start_at, run_at, finished_at, attempts, max_attempts, priority,
        priority_rank, progress, processed, total, eta_seconds, created_at, updated_at,
        started_at, lease_owner, lease_token, lease_expires_at, cancel_requested,
        worker_version, last_error, duration_ms, cpu_ms, memory_bytes)
SELECT id, identifier, action, status, message, started_by, meta, result,
        result_file, start_at, run_at, finished_at, attempts, max_attempts, priority,
        priority_rank, progress, processed, total, eta_seconds, created_at, updated_at,
        started_at, lease_owner, lease_token, lease_expires_at, cancel_requested,
        worker_version, last_error, duration_ms, cpu_ms, memory_bytes
  FROM s_tasks;

DROP TABLE s_tasks;
ALTER TABLE s_tasks_rebuilt RENAME TO s_tasks;

-- The indexes of 0001 and 0003, with the same text (the claim and lease guards must match
-- the partial indexes' predicates literally).
CREATE INDEX s_tasks_claim ON s_tasks (priority_rank, run_at, id) WHERE status = 10;
CREATE INDEX s_tasks_lease ON s_tasks (lease_expires_at) WHERE status IN (15, 20);
CREATE INDEX s_tasks_status ON s_tasks (status, id);
CREATE INDEX s_tasks_identifier ON s_tasks (identifier, id);
CREATE INDEX s_tasks_finished ON s_tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX s_tasks_created ON s_tasks (created_at);

-- What the defaults cannot derive. sTask's own inserts set all of it consistently, so the
-- WHEN clause is false for them and the trigger costs them one comparison.
CREATE TRIGGER s_tasks_seed AFTER INSERT ON s_tasks
    WHEN NEW.message = ''
      OR NEW.priority_rank IS NOT (CASE NEW.priority WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END)
      OR (NEW.start_at IS NOT NULL AND NEW.run_at IS NOT MAX(NEW.start_at, 0))
BEGIN
    UPDATE s_tasks
       SET priority_rank = CASE priority WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END,
           run_at = CASE WHEN start_at IS NULL THEN run_at ELSE MAX(start_at, 0) END,
           message = CASE
               WHEN message <> '' THEN message
               WHEN start_at > created_at
                   THEN 'Scheduled for ' || strftime('%Y-%m-%dT%H:%M:%fZ', start_at / 1000.0, 'unixepoch')
               ELSE 'Waiting to run'
           END
     WHERE id = NEW.id;
END;

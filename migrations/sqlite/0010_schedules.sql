-- Recurring schedules: each creates a task per due slot of its cron expression, read in its
-- time zone. `source` is where it was written from ('config': stask.toml, 'api').
CREATE TABLE s_schedules (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    identifier    TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    cron          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL,
    data          TEXT    NOT NULL DEFAULT '{}',
    priority      TEXT    NOT NULL DEFAULT 'normal',
    max_attempts  INTEGER NOT NULL DEFAULT 3,
    unique_key    TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1,
    catch_up      INTEGER NOT NULL DEFAULT 1,
    source        TEXT    NOT NULL DEFAULT 'api',
    fire_after    INTEGER NOT NULL,   -- no slot at or before it fires (created, re-enabled)
    last_run_at   INTEGER,            -- the latest slot taken
    last_task_id  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- The slots taken: the primary key makes each slot fire once, whichever host takes it (the
-- row is inserted in the transaction that creates the slot's task).
CREATE TABLE s_schedule_slots (
    schedule_id  INTEGER NOT NULL,
    slot_at      INTEGER NOT NULL,
    task_id      INTEGER,
    taken_at     INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, slot_at)
);

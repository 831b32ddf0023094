-- Recurring schedules: each creates a task per due slot of its cron expression, read in its
-- time zone. `source` is where it was written from ('config': stask.toml, 'api').
CREATE TABLE s_schedules (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    identifier    TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    cron          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL,
    data          TEXT    NOT NULL DEFAULT '{}',
    priority      TEXT    NOT NULL DEFAULT 'normal',
    max_attempts  BIGINT  NOT NULL DEFAULT 3,
    unique_key    TEXT,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    catch_up      BOOLEAN NOT NULL DEFAULT TRUE,
    source        TEXT    NOT NULL DEFAULT 'api',
    fire_after    BIGINT  NOT NULL,   -- no slot at or before it fires (created, re-enabled)
    last_run_at   BIGINT,             -- the latest slot taken
    last_task_id  BIGINT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- The slots taken: the primary key makes each slot fire once, whichever host takes it (the
-- row is inserted in the transaction that creates the slot's task).
CREATE TABLE s_schedule_slots (
    schedule_id  BIGINT NOT NULL,
    slot_at      BIGINT NOT NULL,
    task_id      BIGINT,
    taken_at     BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, slot_at)
);

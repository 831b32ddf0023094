-- Recurring schedules: each creates a task per due slot of its cron expression, read in its
-- time zone. `source` is where it was written from ('config': stask.toml, 'api').
CREATE TABLE s_schedules (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name          VARCHAR(191) NOT NULL,
    identifier    VARCHAR(191) NOT NULL,
    action        VARCHAR(191) NOT NULL,
    cron          VARCHAR(255) NOT NULL,
    timezone      VARCHAR(64)  NOT NULL,
    data          LONGTEXT     NOT NULL,
    priority      VARCHAR(16)  NOT NULL DEFAULT 'normal',
    max_attempts  BIGINT       NOT NULL DEFAULT 3,
    unique_key    VARCHAR(255),
    enabled       BOOLEAN      NOT NULL DEFAULT TRUE,
    catch_up      BOOLEAN      NOT NULL DEFAULT TRUE,
    source        VARCHAR(16)  NOT NULL DEFAULT 'api',
    fire_after    BIGINT       NOT NULL,   -- no slot at or before it fires (created, re-enabled)
    last_run_at   BIGINT,                  -- the latest slot taken
    last_task_id  BIGINT,
    created_at    BIGINT       NOT NULL,
    updated_at    BIGINT       NOT NULL,
    UNIQUE KEY s_schedules_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The slots taken: the primary key makes each slot fire once, whichever host takes it (the
-- row is inserted in the transaction that creates the slot's task).
CREATE TABLE s_schedule_slots (
    schedule_id  BIGINT NOT NULL,
    slot_at      BIGINT NOT NULL,
    task_id      BIGINT,
    taken_at     BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, slot_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

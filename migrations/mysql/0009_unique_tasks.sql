-- Unique tasks: a create with a `unique_key` that a task still holds creates nothing and
-- answers that task. The key's holder is one row here, keyed by the key itself, so the
-- database refuses a second holder (a PRIMARY KEY, not a read then a write); see
-- host/store/src/unique.rs for when a row stops holding. `held_until` (UNIX ms) is set by
-- `unique_for`: held until then whatever the task's status; NULL: held while the task is
-- pending, claimed or running. Keys are at most 191 characters (an index key of utf8mb4).
ALTER TABLE s_tasks ADD COLUMN unique_key VARCHAR(191) COLLATE utf8mb4_bin NULL;
CREATE TABLE s_unique_keys (
    unique_key VARCHAR(191) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    task_id    BIGINT NOT NULL,
    held_until BIGINT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

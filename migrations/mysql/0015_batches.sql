-- Batches: tasks created together in one transaction (`POST /stask/batches`), read and
-- cancelled as one. `total` is the number of tasks created in it; `on_complete_task_id` the
-- task that depends on all of them (`on_parent_failure = run`) and receives the batch's
-- counts in its data when it is released. Times are UNIX ms. See host/store/src/batches.rs.
CREATE TABLE s_batches (
    id                  BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name                TEXT NULL,
    created_at          BIGINT NOT NULL,
    created_by          BIGINT NULL,
    total               BIGINT NOT NULL DEFAULT 0,
    on_complete_task_id BIGINT NULL,
    cancelled_at        BIGINT NULL
) ENGINE = InnoDB;
-- Is a released dependant a batch's on_complete task (one indexed read per release).
CREATE INDEX s_batches_on_complete ON s_batches (on_complete_task_id);
ALTER TABLE s_tasks ADD COLUMN batch_id BIGINT NULL;
-- A batch's tasks (counts, ?batch_id=, cancel, the on_complete's links; MySQL has no
-- partial indexes).
CREATE INDEX s_tasks_batch ON s_tasks (batch_id, id);

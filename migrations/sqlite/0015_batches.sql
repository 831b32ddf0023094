-- Batches: tasks created together in one transaction (`POST /stask/batches`), read and
-- cancelled as one. `total` is the number of tasks created in it; `on_complete_task_id` the
-- task that depends on all of them (`on_parent_failure = run`) and receives the batch's
-- counts in its data when it is released. Times are UNIX ms. See host/store/src/batches.rs.
CREATE TABLE s_batches (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT,
    created_at          INTEGER NOT NULL,
    created_by          INTEGER,
    total               INTEGER NOT NULL DEFAULT 0,
    on_complete_task_id INTEGER,
    cancelled_at        INTEGER
);
-- Is a released dependant a batch's on_complete task (one indexed read per release).
CREATE INDEX s_batches_on_complete ON s_batches (on_complete_task_id)
    WHERE on_complete_task_id IS NOT NULL;
ALTER TABLE s_tasks ADD COLUMN batch_id INTEGER;
-- A batch's tasks (counts, ?batch_id=, cancel, the on_complete's links); partial, so tasks
-- outside batches cost no index write.
CREATE INDEX s_tasks_batch ON s_tasks (batch_id, id) WHERE batch_id IS NOT NULL;

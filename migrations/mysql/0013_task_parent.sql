-- The task that created this one as a follow-up (`Context::create_task`), set by the host
-- from the running task; NULL for tasks created over the API, the CLI or a schedule.
ALTER TABLE s_tasks ADD COLUMN parent_id BIGINT NULL;
-- A task's follow-ups (`?parent_id=`, the task view's children), oldest first (MySQL has no
-- partial indexes).
CREATE INDEX s_tasks_parent ON s_tasks (parent_id, id);

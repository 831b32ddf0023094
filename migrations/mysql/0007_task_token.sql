-- Who created a task, as two things: `started_by` is the CMS user the task was started for
-- (given by the client, optional), `token_id` the API token that created it (set by the
-- server). No MySQL installation ever stored token ids in `started_by`, so nothing moves.
ALTER TABLE s_tasks ADD COLUMN token_id BIGINT NULL;
-- The list filter `started_by = ?` newest first (MySQL has no partial indexes).
CREATE INDEX s_tasks_started_by ON s_tasks (started_by, id);

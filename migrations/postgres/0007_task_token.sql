-- Who created a task, as two things: `started_by` is the CMS user the task was started for
-- (given by the client, optional), `token_id` the API token that created it (set by the
-- server). Until now `started_by` held the token id, so old rows move it to `token_id` and
-- have no user.
ALTER TABLE s_tasks ADD COLUMN token_id BIGINT;
UPDATE s_tasks SET token_id = started_by, started_by = NULL WHERE started_by IS NOT NULL;
-- The list filter `started_by = $n` newest first; partial, so tasks without a user (system
-- and CLI tasks, most of a queue) cost no index write.
CREATE INDEX s_tasks_started_by ON s_tasks (started_by, id) WHERE started_by IS NOT NULL;

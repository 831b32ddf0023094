-- Analytics windows select tasks by creation time.
CREATE INDEX s_tasks_created ON s_tasks (created_at);

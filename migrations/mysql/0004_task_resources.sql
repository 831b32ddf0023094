-- What the latest attempt of a task cost the host, beside its wall time (`duration_ms`):
-- cpu_ms: CPU time of the pool thread that ran it (user + system).
-- memory_bytes: peak growth of the heap in use while it ran, measured only when it ran alone
-- (NULL otherwise; see ARCHITECTURE.md, "What a run costs").
ALTER TABLE s_tasks ADD COLUMN cpu_ms BIGINT, ADD COLUMN memory_bytes BIGINT;

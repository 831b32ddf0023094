-- Task dependencies: a task created with `depends_on` waits (pending) until every task it
-- depends on finished. One row per edge; `resolved` turns 1 exactly once, when the parent's
-- end was passed to the child (guarded by `resolved = 0`, so a repeat does nothing).
-- `waiting_parents` on the child counts its unresolved edges; while it is above 0 the child's
-- `run_at` is the sentinel 253402300799999 (9999-12-31T23:59:59.999Z,
-- stask_store::dependencies::WAITING_RUN_AT), so the claim's range `run_at <= now` never
-- reaches it. `on_parent_failure`: 0 cancel the child when a parent fails or is cancelled,
-- 1 run it anyway once every parent finished. See host/store/src/dependencies.rs.
CREATE TABLE s_task_dependencies (
    task_id    INTEGER NOT NULL,
    depends_on INTEGER NOT NULL,
    resolved   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, depends_on)
);
-- A parent's unresolved edges (its end being passed on), and the sweep's range `resolved = 0`.
CREATE INDEX s_task_dependencies_parent ON s_task_dependencies (resolved, depends_on);
-- A parent's dependants, resolved or not (the task view).
CREATE INDEX s_task_dependencies_dependants ON s_task_dependencies (depends_on, task_id);
ALTER TABLE s_tasks ADD COLUMN waiting_parents INTEGER NOT NULL DEFAULT 0;
ALTER TABLE s_tasks ADD COLUMN on_parent_failure INTEGER NOT NULL DEFAULT 0;

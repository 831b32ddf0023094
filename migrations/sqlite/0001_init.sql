-- sTask schema, SQLite flavour. Times are UNIX milliseconds (INTEGER).
-- Applied in order by the host at start and by `stask migrate`; each file runs once.

-- Workers registered from plugins.d/ (seed columns first, then what a plugin host needs).
CREATE TABLE s_workers (
    id               INTEGER PRIMARY KEY,
    uuid             TEXT    NOT NULL UNIQUE,
    identifier       TEXT    NOT NULL UNIQUE,
    scope            TEXT    NOT NULL DEFAULT 'default',
    class            TEXT    NOT NULL DEFAULT '',
    active           INTEGER NOT NULL DEFAULT 1,
    position         INTEGER NOT NULL DEFAULT 0,
    settings         TEXT    NOT NULL DEFAULT '{}',
    hidden           INTEGER NOT NULL DEFAULT 0,
    title            TEXT    NOT NULL DEFAULT '',
    description      TEXT    NOT NULL DEFAULT '',
    actions          TEXT    NOT NULL DEFAULT '[]',
    default_settings TEXT    NOT NULL DEFAULT '{}',
    state            TEXT    NOT NULL DEFAULT 'loaded' CHECK (state IN ('loaded', 'orphaned', 'error')),
    load_error       TEXT,
    file             TEXT,
    file_sha256      TEXT,
    version          TEXT,
    generation       INTEGER NOT NULL DEFAULT 0,
    loaded_at        INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Tasks. status: 10 pending, 15 preparing (claimed, not yet reported running), 20 running,
-- 30 completed, 40 failed, 50 cancelled.
CREATE TABLE s_tasks (
    id               INTEGER PRIMARY KEY,
    identifier       TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    status           INTEGER NOT NULL DEFAULT 10 CHECK (status IN (10, 15, 20, 30, 40, 50)),
    message          TEXT    NOT NULL DEFAULT '',
    started_by       INTEGER,
    meta             TEXT    NOT NULL DEFAULT '{}',
    result           TEXT,
    result_file      TEXT,
    start_at         INTEGER,            -- scheduled start as requested; NULL = at once
    run_at           INTEGER NOT NULL,   -- when the task is due: start_at, creation or retry time
    finished_at      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    priority         TEXT    NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high')),
    priority_rank    INTEGER NOT NULL DEFAULT 1,   -- high 2, normal 1, low 0
    progress         INTEGER NOT NULL DEFAULT 0,
    processed        INTEGER,
    total            INTEGER,
    eta_seconds      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,            -- real start of the latest attempt
    lease_owner      TEXT,
    lease_token      INTEGER,            -- fences completions: a stale run cannot overwrite a newer one
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_version   TEXT,
    last_error       TEXT,
    duration_ms      INTEGER
);

-- The claim path: only pending rows, ranked as claims read them. The predicate is a literal so
-- SQLite can use the partial index; each priority is read as its own range up to run_at <= now,
-- so scheduled tasks never slow a claim.
CREATE INDEX s_tasks_claim ON s_tasks (priority_rank, run_at, id) WHERE status = 10;
-- Lease recovery and heartbeats.
CREATE INDEX s_tasks_lease ON s_tasks (lease_expires_at) WHERE status IN (15, 20);
-- Dashboard and list queries.
CREATE INDEX s_tasks_status ON s_tasks (status, id);
CREATE INDEX s_tasks_identifier ON s_tasks (identifier, id);
CREATE INDEX s_tasks_finished ON s_tasks (finished_at) WHERE finished_at IS NOT NULL;

-- Log lines written by workers (and by the host about a task).
CREATE TABLE s_task_logs (
    id       INTEGER PRIMARY KEY,
    task_id  INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    level    INTEGER NOT NULL,   -- 0 info, 1 warning, 2 error
    at       INTEGER NOT NULL,
    line     TEXT    NOT NULL
);
CREATE INDEX s_task_logs_task ON s_task_logs (task_id, id);

-- Every library file seen in plugins.d/ and how its last load went.
CREATE TABLE s_plugin_files (
    file         TEXT PRIMARY KEY,
    file_sha256  TEXT,
    state        TEXT NOT NULL CHECK (state IN ('loaded', 'error', 'removed')),
    identifier   TEXT,
    error        TEXT,
    error_detail TEXT,
    updated_at   INTEGER NOT NULL
);

-- API tokens (the `stask` permission). Only a SHA-256 of the token is stored.
CREATE TABLE s_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX s_tokens_live_name ON s_tokens (name) WHERE revoked_at IS NULL;
CREATE INDEX s_tokens_prefix ON s_tokens (prefix);

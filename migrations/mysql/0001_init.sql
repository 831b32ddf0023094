-- sTask schema, MySQL/MariaDB flavour: the same tables and columns as migrations/postgres/0001.
-- The CMS's own models read and write s_workers and s_tasks, so their seed columns have the
-- original product's MySQL types: ids BIGINT UNSIGNED AUTO_INCREMENT, uuid CHAR(36), JSON
-- documents as JSON, the seed's times (start_at, finished_at, created_at, updated_at) as
-- DATETIME(3) in UTC, status/progress/attempts INT, active BOOLEAN. The driver converts those
-- times to and from the model's UNIX milliseconds in SQL; our own time columns (run_at,
-- lease_expires_at, started_at, ...) stay BIGINT milliseconds. InnoDB, utf8mb4. Names that
-- code compares (identifiers, actions, owners, versions) are utf8mb4_bin: compared byte for
-- byte as in SQLite and PostgreSQL (a case-insensitive collation would make 'Mailer' and
-- 'mailer' one worker, and ignores NUL); free text (messages, titles) is utf8mb4_unicode_ci.
-- Applied in order by the host at start and by `stask migrate`; each file runs once (MySQL
-- DDL commits on its own: the driver serialises migrations with GET_LOCK).

-- Workers registered from plugins.d/ (seed columns first, then what a plugin host needs).
CREATE TABLE s_workers (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uuid             CHAR(36) COLLATE utf8mb4_bin     NOT NULL,
    identifier       VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    scope            VARCHAR(191) COLLATE utf8mb4_bin NOT NULL DEFAULT 'default',
    class            VARCHAR(255) NOT NULL DEFAULT '',
    active           BOOLEAN      NOT NULL DEFAULT TRUE,
    position         BIGINT       NOT NULL DEFAULT 0,
    settings         JSON         NOT NULL,
    hidden           BIGINT       NOT NULL DEFAULT 0,
    title            TEXT         NOT NULL,
    description      TEXT         NOT NULL,
    actions          JSON         NOT NULL,
    default_settings JSON         NOT NULL,
    state            VARCHAR(16) COLLATE utf8mb4_bin  NOT NULL DEFAULT 'loaded' CHECK (state IN ('loaded', 'orphaned', 'error')),
    load_error       TEXT,
    file             VARCHAR(255) COLLATE utf8mb4_bin,
    file_sha256      VARCHAR(64) COLLATE utf8mb4_bin,
    version          VARCHAR(64) COLLATE utf8mb4_bin,
    generation       BIGINT       NOT NULL DEFAULT 0,
    loaded_at        BIGINT,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    UNIQUE KEY s_workers_uuid (uuid),
    UNIQUE KEY s_workers_identifier (identifier)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Tasks. status: 10 pending, 15 preparing (claimed, not yet reported running), 20 running,
-- 30 completed, 40 failed, 50 cancelled.
CREATE TABLE s_tasks (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    identifier       VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    action           VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    status           INT          NOT NULL DEFAULT 10 CHECK (status IN (10, 15, 20, 30, 40, 50)),
    message          TEXT         NOT NULL,
    started_by       BIGINT,
    meta             JSON         NOT NULL,
    result           LONGTEXT,
    result_file      VARCHAR(1024),
    start_at         DATETIME(3),           -- scheduled start as requested; NULL = at once
    run_at           BIGINT       NOT NULL, -- when the task is due (ms): start_at, creation or retry time
    finished_at      DATETIME(3),
    attempts         INT          NOT NULL DEFAULT 0,
    max_attempts     INT          NOT NULL DEFAULT 3,
    priority         VARCHAR(16) COLLATE utf8mb4_bin  NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high')),
    priority_rank    INT          NOT NULL DEFAULT 1,   -- high 2, normal 1, low 0
    progress         INT          NOT NULL DEFAULT 0,
    processed        BIGINT,
    total            BIGINT,
    eta_seconds      BIGINT,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    started_at       BIGINT,                -- real start of the latest attempt (ms)
    lease_owner      VARCHAR(255) COLLATE utf8mb4_bin,
    lease_token      BIGINT,                -- fences completions: a stale run cannot overwrite a newer one
    lease_expires_at BIGINT,
    cancel_requested BOOLEAN      NOT NULL DEFAULT FALSE,
    worker_version   VARCHAR(64) COLLATE utf8mb4_bin,
    last_error       TEXT,
    duration_ms      BIGINT,
    -- The claim path. MySQL has no partial indexes: the status leads instead, so a claim
    -- (`status = 10 AND priority_rank = r AND run_at <= now`) reads one range per priority.
    KEY s_tasks_claim (status, priority_rank, run_at, id),
    -- Lease recovery and heartbeats.
    KEY s_tasks_lease (status, lease_expires_at),
    KEY s_tasks_owner (lease_owner),
    -- Dashboard and list queries.
    KEY s_tasks_status (status, id),
    KEY s_tasks_identifier (identifier, id),
    KEY s_tasks_finished (finished_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Log lines written by workers (and by the host about a task).
CREATE TABLE s_task_logs (
    id       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    task_id  BIGINT   NOT NULL,
    attempt  BIGINT   NOT NULL,
    level    BIGINT   NOT NULL,   -- 0 info, 1 warning, 2 error
    at       BIGINT   NOT NULL,
    line     LONGTEXT NOT NULL,
    KEY s_task_logs_task (task_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every library file seen in plugins.d/ and how its last load went.
CREATE TABLE s_plugin_files (
    file         VARCHAR(191) NOT NULL PRIMARY KEY,
    file_sha256  VARCHAR(64),
    state        VARCHAR(16)  NOT NULL CHECK (state IN ('loaded', 'error', 'removed')),
    identifier   VARCHAR(191),
    error        TEXT,
    error_detail TEXT,
    updated_at   BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- API tokens (the `stask` permission). Only a SHA-256 of the token is stored. A live name is
-- unique: MySQL has no partial unique index, so `live_name` (the name while not revoked, NULL
-- after) carries the unique key (NULLs never collide).
CREATE TABLE s_tokens (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name         VARCHAR(191) NOT NULL,
    token_hash   VARCHAR(128) NOT NULL,
    prefix       VARCHAR(64)  NOT NULL,
    created_at   BIGINT       NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    live_name    VARCHAR(191) AS (CASE WHEN revoked_at IS NULL THEN name END) STORED,
    UNIQUE KEY s_tokens_hash (token_hash),
    UNIQUE KEY s_tokens_live_name (live_name),
    KEY s_tokens_prefix (prefix)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Wake-ups without LISTEN/NOTIFY (MySQL has none): each host polls one cheap read every few
-- milliseconds (see host/store/src/mysql/wake.rs). New tasks need no signal: the poll reads
-- MAX(id) of s_tasks (the end of the primary key), which moves for every insert, ours or the
-- CMS's, without any shared row to update. Rarer changes bump a counter row instead:
-- 'due' when an existing task becomes pending again (retry, release, re-queue), 'changed' on
-- a cancel request or any worker change. The triggers fire only on those transitions, so
-- claims and finishes (the hot path) never touch the counters.
CREATE TABLE s_signals (
    kind VARCHAR(16) NOT NULL PRIMARY KEY,
    n    BIGINT      NOT NULL DEFAULT 0
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO s_signals (kind, n) VALUES ('due', 0), ('changed', 0);

CREATE TRIGGER s_tasks_signal AFTER UPDATE ON s_tasks FOR EACH ROW
BEGIN
    IF NEW.status = 10 AND OLD.status <> 10 THEN
        UPDATE s_signals SET n = n + 1 WHERE kind = 'due';
    END IF;
    IF NEW.cancel_requested AND NOT OLD.cancel_requested THEN
        UPDATE s_signals SET n = n + 1 WHERE kind = 'changed';
    END IF;
END;

CREATE TRIGGER s_workers_signal_insert AFTER INSERT ON s_workers FOR EACH ROW
    UPDATE s_signals SET n = n + 1 WHERE kind = 'changed';
CREATE TRIGGER s_workers_signal_update AFTER UPDATE ON s_workers FOR EACH ROW
    UPDATE s_signals SET n = n + 1 WHERE kind = 'changed';
CREATE TRIGGER s_workers_signal_delete AFTER DELETE ON s_workers FOR EACH ROW
    UPDATE s_signals SET n = n + 1 WHERE kind = 'changed';

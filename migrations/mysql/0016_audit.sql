-- The audit log: one row per state-changing HTTP request, refused ones included: who
-- (token, role, whether through a session; no token = anonymous), what (method, route
-- template, the ids in the path, the tasks it created), when, the status and the client.
CREATE TABLE s_audit (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    recorded_at  BIGINT       NOT NULL,
    token_id     BIGINT,
    token_name   VARCHAR(191),
    role         VARCHAR(16),
    via_session  BOOLEAN      NOT NULL DEFAULT FALSE,
    method       VARCHAR(16)  NOT NULL,
    route        VARCHAR(255) NOT NULL,
    target       TEXT,
    created_ids  TEXT,
    status       BIGINT       NOT NULL,
    client_addr  VARCHAR(64),
    KEY s_audit_recorded (recorded_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The workers a token may act on, as a JSON array of identifiers; NULL: every worker.
ALTER TABLE s_tokens ADD COLUMN workers TEXT;

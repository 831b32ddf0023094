-- The audit log: one row per state-changing HTTP request, refused ones included: who
-- (token, role, whether through a session; no token = anonymous), what (method, route
-- template, the ids in the path, the tasks it created), when, the status and the client.
CREATE TABLE s_audit (
    id           BIGSERIAL PRIMARY KEY,
    recorded_at  BIGINT  NOT NULL,
    token_id     BIGINT,
    token_name   TEXT,
    role         TEXT,
    via_session  BOOLEAN NOT NULL DEFAULT FALSE,
    method       TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    target       TEXT,
    created_ids  TEXT,
    status       BIGINT  NOT NULL,
    client_addr  TEXT
);
CREATE INDEX s_audit_recorded ON s_audit (recorded_at);

-- The workers a token may act on, as a JSON array of identifiers; NULL: every worker.
ALTER TABLE s_tokens ADD COLUMN workers TEXT;

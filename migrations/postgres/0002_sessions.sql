-- Browser sessions opened by logging in with an API token (the admin UI). Only a SHA-256 of
-- the session id is stored; revoking the token ends its sessions.
CREATE TABLE s_sessions (
    id_hash     TEXT   PRIMARY KEY,
    token_id    BIGINT NOT NULL,
    csrf_token  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX s_sessions_expiry ON s_sessions (expires_at);

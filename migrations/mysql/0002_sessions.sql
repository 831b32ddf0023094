-- Browser sessions opened by logging in with an API token (the admin UI). Only a SHA-256 of
-- the session id is stored; revoking the token ends its sessions.
CREATE TABLE s_sessions (
    id_hash     VARCHAR(128) NOT NULL PRIMARY KEY,
    token_id    BIGINT       NOT NULL,
    csrf_token  VARCHAR(128) NOT NULL,
    created_at  BIGINT       NOT NULL,
    expires_at  BIGINT       NOT NULL,
    KEY s_sessions_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

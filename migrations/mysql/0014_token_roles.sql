-- What a token (and a session opened with it) may do: read, operate (tasks) or admin
-- (everything). Tokens made before roles existed keep full access.
ALTER TABLE s_tokens ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'admin';

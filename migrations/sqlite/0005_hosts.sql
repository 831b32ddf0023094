-- Hosts registry: every `stask serve` registers itself at start and refreshes its row on each
-- heartbeat (one row with SQLite; several hosts share one PostgreSQL database).
CREATE TABLE s_hosts (
    name           TEXT    PRIMARY KEY,   -- the lease owner name its tasks carry
    version        TEXT    NOT NULL,
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    busy_slots     INTEGER NOT NULL DEFAULT 0,
    pool_size      INTEGER NOT NULL DEFAULT 0,
    workers        TEXT    NOT NULL DEFAULT '[]',   -- JSON array of runnable identifiers
    lease_ms       INTEGER NOT NULL,
    stopped_at     INTEGER
);

-- Hosts registry: every `stask serve` registers itself at start and refreshes its row on each
-- heartbeat (one row with SQLite; several hosts share one PostgreSQL database).
CREATE TABLE s_hosts (
    name           TEXT    PRIMARY KEY,   -- the lease owner name its tasks carry
    version        TEXT    NOT NULL,
    started_at     BIGINT  NOT NULL,
    last_heartbeat BIGINT  NOT NULL,
    busy_slots     BIGINT  NOT NULL DEFAULT 0,
    pool_size      BIGINT  NOT NULL DEFAULT 0,
    workers        TEXT    NOT NULL DEFAULT '[]',   -- JSON array of runnable identifiers
    lease_ms       BIGINT  NOT NULL,
    stopped_at     BIGINT 
);

-- Hosts registry: every `stask serve` registers itself at start and refreshes its row on each
-- heartbeat (several hosts share one MySQL database).
CREATE TABLE s_hosts (
    name           VARCHAR(191) NOT NULL PRIMARY KEY,   -- the lease owner name its tasks carry
    version        VARCHAR(64)  NOT NULL,
    started_at     BIGINT       NOT NULL,
    last_heartbeat BIGINT       NOT NULL,
    busy_slots     BIGINT       NOT NULL DEFAULT 0,
    pool_size      BIGINT       NOT NULL DEFAULT 0,
    workers        JSON         NOT NULL,               -- JSON array of runnable identifiers
    lease_ms       BIGINT       NOT NULL,
    stopped_at     BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Live events hosts send each other (PostgreSQL's NOTIFY): each host's poller reads the rows
-- after the last id it saw; rows older than a minute are deleted by the sender.
CREATE TABLE s_events (
    id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at     BIGINT   NOT NULL,
    batch  LONGTEXT NOT NULL,
    KEY s_events_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

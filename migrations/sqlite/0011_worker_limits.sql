-- Concurrency and rate limits of workers (settings `concurrency`, `action_concurrency`,
-- `rate_limit`): one row per limited worker, created on demand by the first claim that needs
-- it. A claim of limited workers' tasks locks their rows first (on SQLite the single writer's
-- IMMEDIATE transaction is the lock), counts their leased tasks and claims within the limits.
-- `rate_tat` is the rate limit's theoretical arrival time (GCRA) in UNIX microseconds, NULL
-- before the first limited claim. Apart from s_workers on purpose: a write there tells every
-- host that worker rows changed.
CREATE TABLE s_worker_limits (
    identifier  TEXT    NOT NULL PRIMARY KEY,
    rate_tat    INTEGER
);

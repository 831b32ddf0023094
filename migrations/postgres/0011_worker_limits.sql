-- Concurrency and rate limits of workers (settings `concurrency`, `action_concurrency`,
-- `rate_limit`): one row per limited worker, created on demand by the first claim that needs
-- it. A claim of limited workers' tasks locks their rows first (`FOR UPDATE`, in identifier
-- order), so claims of any number of hosts count and claim within the limits one at a time.
-- `rate_tat` is the rate limit's theoretical arrival time (GCRA) in UNIX microseconds, NULL
-- before the first limited claim. Apart from s_workers on purpose: a write there fires the
-- worker-change NOTIFY that makes every host re-read worker rows.
CREATE TABLE s_worker_limits (
    identifier  TEXT   NOT NULL PRIMARY KEY,
    rate_tat    BIGINT
);

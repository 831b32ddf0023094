//! `TaskStore` for PostgreSQL. The SQLite driver is the reference for every behaviour; the
//! differences are PostgreSQL's: claims lock with `FOR UPDATE SKIP LOCKED` (several hosts),
//! batches go as arrays in one statement (one round trip instead of one per row).

use super::{prepared, text, PgStore, Statements};
use crate::dependencies::{self, unresolved_edges_of};
use crate::limits::{self, LimitedClaim};
use crate::model::{LogLine, NewTask, Stats, Task};
use crate::rows::{narrow, task_columns, task_from_row, TASK_COLUMNS};
use crate::task_filter::{self, filter_sql, FilterArg, FilterSql};
use crate::task_state::sql::{
    guard_on, guard_sql, message, not_waiting, status_in, target, worker_not_paused,
};
use crate::task_state::{created_message, rule, Event, FINISHED, LEASED, STARTED};
use crate::{
    stats_from_counts, unique, CancelResult, Claim, ClaimRequest, ClaimedTask, ExpiredLease,
    Finish, Inserted, Lease, LimitUsage, ProgressWrite, RetryResult, StoreError, StoreResult,
    TaskFilter, TaskStore,
};
use postgres::types::ToSql;
use postgres::GenericClient;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;

const SELECT_TASK: &str = concat!("SELECT ", task_columns!(), " FROM s_tasks WHERE id = $1");
const SELECT_TASK_FOR_UPDATE: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM s_tasks WHERE id = $1 FOR UPDATE"
);

fn load_task(
    client: &mut impl GenericClient,
    st: &Statements,
    id: i64,
) -> StoreResult<Option<Task>> {
    client
        .query_opt(&*st.sql(SELECT_TASK), &[&id])?
        .map(|r| task_from_row(&r))
        .transpose()
}

/// Inserts as arrays: one statement for the whole batch. Identity values are drawn in the
/// order rows are inserted, which is the arrays' order (`WITH ORDINALITY`), so the ids sorted
/// ascending are the tasks' ids in order.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
INSERT INTO s_tasks (identifier, action, status, message, started_by, token_id, meta, start_at,
                     run_at, max_attempts, priority, priority_rank, created_at, updated_at,
                     unique_key, parent_id)
SELECT identifier, action, {pending}, message, started_by, token_id, meta, start_at, run_at,
       max_attempts, priority, priority_rank, $12, $12, unique_key, parent_id
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[],
              $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[], $13::text[],
              $14::bigint[])
       WITH ORDINALITY AS t(identifier, action, message, started_by, token_id, meta, start_at,
                            run_at, max_attempts, priority, priority_rank, unique_key, parent_id,
                            n)
 ORDER BY n
RETURNING id",
        pending = target(Event::Create),
    )
});

/// Whether a task's end still has to be passed to its dependants (it is not deleted then).
static HAS_UNRESOLVED_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {}", unresolved_edges_of("$1")));

/// Frees a key whose row no longer holds (see `crate::unique`): `$1` key, `$2` now.
static FREE_STALE_SQL: LazyLock<String> = LazyLock::new(|| unique::free_stale("$1", "$2"));

/// Key rows retention left behind (see `crate::unique::orphaned_keys`): `$1` the cutoff.
static ORPHANED_KEYS_SQL: LazyLock<String> = LazyLock::new(|| unique::orphaned_keys("$1"));

/// Takes a key for a new task unless another row holds it (then nothing: 0 rows).
const CLAIM_KEY_SQL: &str = "INSERT INTO s_unique_keys (unique_key, task_id, held_until)
                             VALUES ($1, $2, $3) ON CONFLICT (unique_key) DO NOTHING";

/// The task holding a key.
const KEY_HOLDER_SQL: &str = "SELECT task_id FROM s_unique_keys WHERE unique_key = $1";

/// Claim: each priority is its own index range of `s_tasks_claim` (`priority_rank = r AND
/// run_at <= now`), locked with `SKIP LOCKED` so that hosts claiming together take disjoint
/// rows without waiting for each other. The ranges are read lazily high to low and cut at the
/// limit, so no more rows are locked than are claimed. With `skip_actions`, tasks of the
/// actions in `$7` are left out (a limited worker's full actions, see `crate::limits`).
fn claim_sql(skip_actions: bool) -> String {
    let skip = if skip_actions {
        "AND action <> ALL($7::text[])"
    } else {
        ""
    };
    let range = |rank: i64| {
        format!(
            "SELECT id FROM s_tasks
               WHERE {due} AND priority_rank = {rank} AND run_at <= $1
                 AND identifier = ANY($5::text[]) AND {not_paused} {skip}
               ORDER BY run_at, id LIMIT $6 FOR UPDATE SKIP LOCKED",
            due = guard_sql(Event::Claim),
            not_paused = worker_not_paused("s_tasks.identifier"),
        )
    };
    format!(
        "
WITH high AS ({high}),
     normal AS ({normal}),
     low AS ({low})
UPDATE s_tasks
   SET status = {preparing}, started_at = $1, updated_at = $1,
       lease_owner = $2, lease_token = $3, lease_expires_at = $4, cancel_requested = FALSE,
       message = {starting}, progress = 0, processed = NULL, total = NULL, eta_seconds = NULL
 WHERE id IN (SELECT id FROM (SELECT id FROM high UNION ALL SELECT id FROM normal
                              UNION ALL SELECT id FROM low) AS due LIMIT $6)
RETURNING id, identifier, action, meta, attempts + 1, max_attempts, run_at, priority_rank",
        preparing = target(Event::Claim),
        starting = message(Event::Claim),
        high = range(2),
        normal = range(1),
        low = range(0),
    )
}

/// The claim statement (see [`claim_sql`]).
static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| claim_sql(false));

/// The claim statement that leaves out some actions' tasks.
static CLAIM_SKIP_SQL: LazyLock<String> = LazyLock::new(|| claim_sql(true));

/// Leased tasks per worker and action, of the workers `$1`.
static LEASED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT identifier, action, COUNT(*) FROM s_tasks
          WHERE {leased} AND identifier = ANY($1::text[])
          GROUP BY identifier, action",
        leased = status_in("status", LEASED),
    )
});

/// The limit rows of the workers `$1`, read.
const LIMIT_ROWS_SQL: &str =
    "SELECT identifier, rate_tat FROM s_worker_limits WHERE identifier = ANY($1::text[])";

/// The limit rows of the workers `$1`, locked in identifier order (every claim locks them in
/// that order, so two claims never wait on each other in a cycle).
const LOCK_LIMIT_ROWS_SQL: &str = "SELECT identifier, rate_tat FROM s_worker_limits
                                    WHERE identifier = ANY($1::text[])
                                    ORDER BY identifier FOR UPDATE";

/// Creates the missing limit rows of the workers `$1` (in order, like the locks).
const CREATE_LIMIT_ROWS_SQL: &str = "INSERT INTO s_worker_limits (identifier)
                                      SELECT i FROM unnest($1::text[]) AS l(i) ORDER BY i
                                      ON CONFLICT (identifier) DO NOTHING";

/// A claim request owned by the connection thread's closure.
struct OwnedClaim {
    owner: String,
    limit: usize,
    now: i64,
    lease_ms: i64,
    identifiers: Vec<String>,
    limits: Vec<crate::WorkerLimit>,
    slots: usize,
}

impl OwnedClaim {
    fn of(req: &ClaimRequest<'_>) -> OwnedClaim {
        OwnedClaim {
            owner: req.owner.to_owned(),
            limit: req.limit,
            now: req.now,
            lease_ms: req.lease_ms,
            identifiers: req.identifiers.to_vec(),
            limits: req.limits.to_vec(),
            slots: req.slots,
        }
    }

    fn request(&self) -> ClaimRequest<'_> {
        ClaimRequest {
            owner: &self.owner,
            limit: self.limit,
            now: self.now,
            lease_ms: self.lease_ms,
            identifiers: &self.identifiers,
            limits: &self.limits,
            slots: self.slots,
        }
    }
}

/// Runs the claim statement for `identifiers` (without the tasks of `skip_actions`), up to
/// `limit` tasks, under the lease `token`.
fn claim_in(
    tx: &mut postgres::Transaction<'_>,
    cache: &mut Statements,
    req: &OwnedClaim,
    token: i64,
    identifiers: &[String],
    skip_actions: &[String],
    limit: usize,
) -> StoreResult<Vec<ClaimedTask>> {
    if limit == 0 || identifiers.is_empty() {
        return Ok(Vec::new());
    }
    let until = req.now + req.lease_ms;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ids = identifiers.to_vec();
    let rows = if skip_actions.is_empty() {
        let stmt = prepared(tx, cache, &CLAIM_SQL)?;
        tx.query(&stmt, &[&req.now, &req.owner, &token, &until, &ids, &limit])?
    } else {
        let skip = skip_actions.to_vec();
        let stmt = prepared(tx, cache, &CLAIM_SKIP_SQL)?;
        tx.query(
            &stmt,
            &[&req.now, &req.owner, &token, &until, &ids, &limit, &skip],
        )?
    };
    rows.iter()
        .map(|r| crate::rows::claimed_from_row(r, token))
        .collect()
}

fn leased_in(
    client: &mut impl GenericClient,
    cache: &mut Statements,
    identifiers: &[String],
) -> StoreResult<Vec<(String, String, u64)>> {
    let ids = identifiers.to_vec();
    let stmt = prepared(client, cache, &LEASED_SQL)?;
    client
        .query(&stmt, &[&ids])?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get::<_, i64>(2)?.max(0) as u64,
            ))
        })
        .collect()
}

fn limit_rows(
    client: &mut impl GenericClient,
    cache: &mut Statements,
    sql: &'static str,
    identifiers: &[String],
) -> StoreResult<BTreeMap<String, Option<i64>>> {
    let ids = identifiers.to_vec();
    let stmt = prepared(client, cache, sql)?;
    client
        .query(&stmt, &[&ids])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// One claim transaction of limited workers (see `crate::limits`).
struct PgLimitedClaim<'t, 'c> {
    tx: &'t mut postgres::Transaction<'c>,
    cache: &'t mut Statements,
    req: &'t OwnedClaim,
    token: i64,
}

impl LimitedClaim for PgLimitedClaim<'_, '_> {
    fn lock_limits(
        &mut self,
        identifiers: &[String],
    ) -> StoreResult<BTreeMap<String, Option<i64>>> {
        let rows = limit_rows(self.tx, self.cache, LOCK_LIMIT_ROWS_SQL, identifiers)?;
        if rows.len() == identifiers.len() {
            return Ok(rows);
        }
        // The first claim of a newly limited worker: its row is created, then locked.
        let ids = identifiers.to_vec();
        let stmt = prepared(self.tx, self.cache, CREATE_LIMIT_ROWS_SQL)?;
        self.tx.execute(&stmt, &[&ids])?;
        limit_rows(self.tx, self.cache, LOCK_LIMIT_ROWS_SQL, identifiers)
    }

    fn leased(&mut self, identifiers: &[String]) -> StoreResult<Vec<(String, String, u64)>> {
        leased_in(self.tx, self.cache, identifiers)
    }

    fn claim_some(
        &mut self,
        identifiers: &[String],
        skip_actions: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ClaimedTask>> {
        claim_in(
            self.tx,
            self.cache,
            self.req,
            self.token,
            identifiers,
            skip_actions,
            limit,
        )
    }

    fn set_rate_tat(&mut self, identifier: &str, tat_us: i64) -> StoreResult<()> {
        let stmt = prepared(
            self.tx,
            self.cache,
            "UPDATE s_worker_limits SET rate_tat = $2 WHERE identifier = $1",
        )?;
        self.tx.execute(&stmt, &[&identifier, &tat_us])?;
        Ok(())
    }
}

/// A run starts: the attempt counts from here (a claim alone does not, see `TaskStore`). Locks
/// in id order like every write of several leased rows.
static START_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH locked AS (SELECT id FROM s_tasks WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE)
UPDATE s_tasks SET status = {running}, attempts = attempts + 1, started_at = $3, message = {message},
       updated_at = $3
  FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)
 WHERE s_tasks.id = l.id AND s_tasks.lease_token = l.token AND {guard}
   AND s_tasks.id IN (SELECT id FROM locked)
RETURNING s_tasks.id",
        running = target(Event::Start),
        message = message(Event::Start),
        guard = guard_on("s_tasks.status", Event::Start),
    )
});

/// Finishes as arrays in one statement; the rows it returns are the ones that applied.
/// `COALESCE` keeps a column when the finish leaves it `NULL`, as in SQLite; memory follows
/// the duration (a run that measured nothing stores `NULL`, never an older attempt's figure).
/// `$17` is the recovery guard: `NULL` for ordinary finishes; a recovery also applies only while
/// the run is still started or not as its decision read it (`if_started`).
///
/// **Lock order.** Every statement that writes several leased rows (finish, recovery,
/// progress, running, release, heartbeat) first locks them in ascending id order (`locked`),
/// and waits only there. Hosts finish, heartbeat and recover overlapping sets of rows at the
/// same time (their own, and a dead host's from two survivors); locked in whatever order a
/// join produced, two such statements deadlocked under load. Claims never wait (`SKIP
/// LOCKED`), and single-row writes cannot form a cycle.
static FINISH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH locked AS (SELECT id FROM s_tasks WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE)
UPDATE s_tasks AS t
   SET status = f.status, message = f.message,
       result = COALESCE(f.result, t.result), result_file = COALESCE(f.result_file, t.result_file),
       run_at = COALESCE(f.run_at, t.run_at),
       finished_at = CASE WHEN {finished} THEN f.at ELSE NULL END,
       last_error = COALESCE(f.last_error, t.last_error),
       duration_ms = COALESCE(f.duration_ms, t.duration_ms),
       progress = COALESCE(f.progress, t.progress),
       worker_version = COALESCE(f.worker_version, t.worker_version),
       processed = COALESCE(f.processed, t.processed), total = COALESCE(f.total, t.total),
       eta_seconds = NULL,
       cpu_ms = COALESCE(f.cpu_ms, t.cpu_ms),
       memory_bytes = CASE WHEN f.duration_ms IS NULL THEN t.memory_bytes ELSE f.memory_bytes END,
       attempts = f.attempts,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = f.at
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
              $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[],
              $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
              $18::bigint[], $19::boolean[])
       AS f(id, lease_token, status, message, result, result_file, run_at, at, last_error,
            duration_ms, progress, worker_version, processed, total, cpu_ms, memory_bytes,
            attempts, if_started)
 WHERE t.id = f.id AND t.lease_token = f.lease_token AND {guard}
   AND ($17::bigint IS NULL OR t.lease_expires_at < $17::bigint)
   AND (f.if_started IS NULL OR ({started}) = f.if_started)
   AND t.id IN (SELECT id FROM locked)
RETURNING t.id",
        finished = status_in("f.status", FINISHED),
        // One guard for finishes and recoveries: both apply to leased rows.
        guard = guard_on("t.status", Event::Finish),
        started = status_in("t.status", STARTED),
    )
});

/// A claimed task given back unstarted (`Event::GiveBack`).
static RELEASE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH locked AS (SELECT id FROM s_tasks WHERE id = ANY($1::bigint[])
                             ORDER BY id FOR UPDATE)
             UPDATE s_tasks SET status = {pending}, message = {message}, started_at = NULL, lease_owner = NULL,
                    lease_token = NULL, lease_expires_at = NULL, updated_at = $3
              FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)
             WHERE s_tasks.id = l.id AND s_tasks.lease_token = l.token AND {guard}
               AND s_tasks.id IN (SELECT id FROM locked)",
        pending = target(Event::GiveBack),
        message = message(Event::GiveBack),
        guard = guard_on("s_tasks.status", Event::GiveBack),
    )
});

/// Progress of a run (`Event::Progress`).
static PROGRESS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH locked AS (SELECT id FROM s_tasks WHERE id = ANY($1::bigint[])
                                 ORDER BY id FOR UPDATE)
                 UPDATE s_tasks AS t
                    SET status = {running}, progress = u.progress, processed = u.processed,
                        total = u.total, eta_seconds = u.eta, message = u.message,
                        worker_version = u.version, updated_at = $9
                   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                               $5::bigint[], $6::bigint[], $7::text[], $8::text[])
                        AS u(id, token, progress, processed, total, eta, message, version)
                  WHERE t.id = u.id AND t.lease_token = u.token AND {guard}
                    AND t.id IN (SELECT id FROM locked)",
        running = target(Event::Progress),
        guard = guard_on("t.status", Event::Progress),
    )
});

/// The heartbeat's lease renewal, returning the cancel flags (`Event::Heartbeat`).
static HEARTBEAT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH mine AS (SELECT id FROM s_tasks WHERE lease_owner = $1 AND {guard}
                               ORDER BY id FOR UPDATE)
                 UPDATE s_tasks SET lease_expires_at = $2
                  WHERE lease_owner = $1 AND {guard} AND id IN (SELECT id FROM mine)
                 RETURNING id, cancel_requested",
        guard = guard_sql(Event::Heartbeat),
    )
});

/// Leases to recover (`Event::Recover`): the same predicate as the partial index
/// s_tasks_lease.
static EXPIRED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, lease_token, attempts, max_attempts, lease_owner, {started}
                   FROM s_tasks WHERE {guard} AND lease_expires_at < $1 ORDER BY id",
        started = status_in("status", STARTED),
        guard = guard_sql(Event::Recover),
    )
});

/// Every lease of one owner (`TaskStore::leases_of`).
static LEASES_OF_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, lease_token, attempts, max_attempts, lease_owner, {started}
                   FROM s_tasks WHERE {guard} AND lease_owner = $1 ORDER BY id",
        started = status_in("status", STARTED),
        guard = guard_sql(Event::Recover),
    )
});

/// The next not-yet-due claimable task: one index range per priority, as in the claim.
static NEXT_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT LEAST(
                   (SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = 2
                       AND run_at > $1 AND {real} AND identifier = ANY($2::text[])
                     ORDER BY run_at LIMIT 1),
                   (SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = 1
                       AND run_at > $1 AND {real} AND identifier = ANY($2::text[])
                     ORDER BY run_at LIMIT 1),
                   (SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = 0
                       AND run_at > $1 AND {real} AND identifier = ANY($2::text[])
                     ORDER BY run_at LIMIT 1))",
        due = guard_sql(Event::Claim),
        real = not_waiting("run_at"),
    )
});

/// A user cancels a pending task (`Event::CancelPending`).
static CANCEL_PENDING_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {cancelled}, message = {message},
                        finished_at = $2, updated_at = $2
                  WHERE id = $1 AND {guard}",
        cancelled = target(Event::CancelPending),
        message = message(Event::CancelPending),
        guard = guard_sql(Event::CancelPending),
    )
});

/// A user cancels a leased task: its flag is set (`Event::RequestCancel`).
static REQUEST_CANCEL_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET cancel_requested = TRUE, message = {message},
                            updated_at = $2
                      WHERE id = $1 AND {guard}",
        message = message(Event::RequestCancel),
        guard = guard_sql(Event::RequestCancel),
    )
});

/// A user's retry (`Event::Retry`): pending again with fresh attempts.
static RETRY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {pending}, message = {message}, run_at = $2,
                        waiting_parents = 0, attempts = 0, finished_at = NULL, cancel_requested = FALSE, progress = 0,
                        processed = NULL, total = NULL, eta_seconds = NULL, updated_at = $2
                  WHERE id = $1 AND {guard}",
        pending = target(Event::Retry),
        message = message(Event::Retry),
        guard = guard_sql(Event::Retry),
    )
});

/// Retention (`Event::Delete` of tasks finished before `$1`).
static RETENTION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM s_tasks WHERE finished_at IS NOT NULL AND finished_at < $1
                       AND {guard} AND NOT {unresolved} RETURNING id",
        guard = guard_sql(Event::Delete),
        unresolved = unresolved_edges_of("s_tasks.id"),
    )
});

/// The pending tasks, in claim order, and their count.
static PENDING_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let pending = status_in("status", &[crate::model::TaskStatus::Pending]);
    [
        format!("SELECT COUNT(*) FROM s_tasks WHERE {pending}"),
        format!(
            "SELECT {TASK_COLUMNS} FROM s_tasks WHERE {pending}
                  ORDER BY priority_rank DESC, run_at, id LIMIT $1"
        ),
    ]
});

/// Applies finishes (see [`FINISH_SQL`]); `before` guards recoveries.
pub(super) fn apply_finishes(
    store: &PgStore,
    finishes: &[Finish],
    before: Option<i64>,
) -> StoreResult<Vec<bool>> {
    if finishes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = finishes.iter().map(|f| f.id).collect();
    let tokens: Vec<i64> = finishes.iter().map(|f| f.lease_token).collect();
    let statuses: Vec<i64> = finishes.iter().map(|f| f.status.code()).collect();
    let messages: Vec<String> = finishes.iter().map(|f| text(&f.message)).collect();
    let results: Vec<Option<String>> = finishes
        .iter()
        .map(|f| f.result.as_deref().map(text))
        .collect();
    let files: Vec<Option<String>> = finishes.iter().map(|f| f.result_file.clone()).collect();
    let run_ats: Vec<Option<i64>> = finishes.iter().map(|f| f.run_at).collect();
    let ats: Vec<i64> = finishes.iter().map(|f| f.at).collect();
    let errors: Vec<Option<String>> = finishes
        .iter()
        .map(|f| f.last_error.as_deref().map(text))
        .collect();
    let durations: Vec<Option<i64>> = finishes.iter().map(|f| f.duration_ms).collect();
    let progress: Vec<Option<i64>> = finishes.iter().map(|f| f.progress).collect();
    let versions: Vec<Option<String>> = finishes.iter().map(|f| f.worker_version.clone()).collect();
    let processed: Vec<Option<i64>> = finishes.iter().map(|f| f.processed).collect();
    let totals: Vec<Option<i64>> = finishes.iter().map(|f| f.total).collect();
    let cpu: Vec<Option<i64>> = finishes.iter().map(|f| f.cpu_ms).collect();
    let memory: Vec<Option<i64>> = finishes.iter().map(|f| f.memory_bytes).collect();
    let attempts: Vec<i64> = finishes.iter().map(|f| i64::from(f.attempts)).collect();
    let if_started: Vec<Option<bool>> = finishes.iter().map(|f| f.if_started).collect();
    let applied_ids = store.transaction(move |tx, cache| {
        let stmt = prepared(tx, cache, &FINISH_SQL)?;
        let rows = tx.query(
            &stmt,
            &[
                &ids,
                &tokens,
                &statuses,
                &messages,
                &results,
                &files,
                &run_ats,
                &ats,
                &errors,
                &durations,
                &progress,
                &versions,
                &processed,
                &totals,
                &cpu,
                &memory,
                &before,
                &attempts,
                &if_started,
            ],
        )?;
        rows.iter()
            .map(|r| Ok(r.try_get::<_, i64>(0)?))
            .collect::<StoreResult<std::collections::HashSet<i64>>>()
    })?;
    // A batch never holds one task twice (one run, one outcome), so applied ids say which
    // finishes applied.
    Ok(finishes
        .iter()
        .map(|f| applied_ids.contains(&f.id))
        .collect())
}

impl PgStore {
    /// Runs `sql` (parameters: id array, lease token array, now) over the leases in one
    /// statement.
    fn update_leased(&self, sql: &'static str, leases: &[Lease], now: i64) -> StoreResult<()> {
        if leases.is_empty() {
            return Ok(());
        }
        let (ids, tokens) = lease_columns(leases);
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, sql)?;
            client.execute(&stmt, &[&ids, &tokens, &now])?;
            Ok(())
        })
    }
}

/// The leases as the two arrays `unnest($1::bigint[], $2::bigint[])` takes: ids, tokens.
fn lease_columns(leases: &[Lease]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().map(|l| (l.task_id, l.token)).unzip()
}

/// One value of a dynamic filter.
enum Param {
    Text(String),
    Int(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Int(v) => v,
        }
    }
}

/// New tasks as the arrays [`INSERT_SQL`] takes, built before a transaction so that its
/// closure owns them (the schedules' slots insert their task through it too).
pub(super) struct InsertColumns {
    identifiers: Vec<String>,
    actions: Vec<String>,
    messages: Vec<String>,
    started_by: Vec<Option<i64>>,
    token_ids: Vec<Option<i64>>,
    metas: Vec<String>,
    start_ats: Vec<Option<i64>>,
    run_ats: Vec<i64>,
    max_attempts: Vec<i64>,
    priorities: Vec<String>,
    ranks: Vec<i64>,
    keys: Vec<Option<String>>,
    held_until: Vec<Option<i64>>,
    parent_ids: Vec<Option<i64>>,
    depends_on: Vec<Vec<i64>>,
    rules: Vec<crate::model::OnParentFailure>,
}

impl InsertColumns {
    /// The columns of `tasks`, created at `now`.
    pub(super) fn of(tasks: &[NewTask], now: i64) -> InsertColumns {
        InsertColumns {
            identifiers: tasks.iter().map(|t| t.identifier.clone()).collect(),
            actions: tasks.iter().map(|t| t.action.clone()).collect(),
            messages: tasks
                .iter()
                .map(|t| created_message(t.start_at, now))
                .collect(),
            started_by: tasks.iter().map(|t| t.started_by).collect(),
            token_ids: tasks.iter().map(|t| t.token_id).collect(),
            metas: tasks.iter().map(|t| t.data.to_string()).collect(),
            start_ats: tasks.iter().map(|t| t.start_at).collect(),
            run_ats: tasks
                .iter()
                .map(|t| t.start_at.unwrap_or(now).max(0))
                .collect(),
            max_attempts: tasks.iter().map(|t| i64::from(t.max_attempts)).collect(),
            priorities: tasks.iter().map(|t| t.priority.name().into()).collect(),
            ranks: tasks.iter().map(|t| t.priority.rank()).collect(),
            keys: tasks.iter().map(|t| t.unique_key.clone()).collect(),
            held_until: tasks.iter().map(|t| unique::held_until(t, now)).collect(),
            parent_ids: tasks.iter().map(|t| t.parent_id).collect(),
            depends_on: tasks.iter().map(|t| t.depends_on.clone()).collect(),
            rules: tasks.iter().map(|t| t.on_parent_failure).collect(),
        }
    }

    /// Inserts the tasks in `tx` under the unique-key rule (see `crate::unique`): one
    /// [`Inserted`] per task, in order, a duplicate naming the task that holds its key.
    pub(super) fn insert(
        &self,
        tx: &mut postgres::Transaction<'_>,
        cache: &mut Statements,
        now: i64,
    ) -> StoreResult<Vec<Inserted>> {
        // Keys first freed where they no longer hold.
        for key in self.keys.iter().flatten() {
            let stmt = prepared(tx, cache, &FREE_STALE_SQL)?;
            tx.execute(&stmt, &[key, &now])?;
        }
        let stmt = prepared(tx, cache, &INSERT_SQL)?;
        let rows = tx.query(
            &stmt,
            &[
                &self.identifiers,
                &self.actions,
                &self.messages,
                &self.started_by,
                &self.token_ids,
                &self.metas,
                &self.start_ats,
                &self.run_ats,
                &self.max_attempts,
                &self.priorities,
                &self.ranks,
                &now,
                &self.keys,
                &self.parent_ids,
            ],
        )?;
        // The ids of one statement's rows come in order of the input (a sequence).
        let mut ids = rows
            .iter()
            .map(|r| Ok(r.try_get::<_, i64>(0)?))
            .collect::<StoreResult<Vec<i64>>>()?;
        ids.sort_unstable();
        let mut inserted: Vec<Inserted> = ids
            .into_iter()
            .map(|id| Inserted {
                id,
                duplicate: false,
            })
            .collect();
        // Then each key's row, in batch order: a key held by another row (committed, or this
        // batch's earlier task) makes the task a duplicate of that row's task.
        // `ON CONFLICT DO NOTHING` waits for an uncommitted holder on another host.
        let mut duplicates: Vec<i64> = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let claim = prepared(tx, cache, CLAIM_KEY_SQL)?;
            let taken = tx.execute(&claim, &[key, &inserted[i].id, &self.held_until[i]])?;
            if taken == 0 {
                let holder = prepared(tx, cache, KEY_HOLDER_SQL)?;
                let holder: i64 = tx.query_one(&holder, &[key])?.try_get(0)?;
                duplicates.push(inserted[i].id);
                inserted[i] = Inserted {
                    id: holder,
                    duplicate: true,
                };
            }
        }
        if !duplicates.is_empty() {
            let delete = prepared(
                tx,
                cache,
                "DELETE FROM s_tasks WHERE id = ANY($1::bigint[])",
            )?;
            tx.execute(&delete, &[&duplicates])?;
        }
        // The new tasks' edges to the tasks they depend on (see `crate::dependencies`).
        let sql = dependencies::statements(dependencies::Dialect::Postgres);
        for (i, parents) in self.depends_on.iter().enumerate() {
            if parents.is_empty() || inserted[i].duplicate {
                continue;
            }
            let mut deps = super::dependencies::Tx {
                tx: &mut *tx,
                cache: &mut *cache,
            };
            dependencies::link(&mut deps, sql, inserted[i].id, parents, self.rules[i], now)?;
        }
        Ok(inserted)
    }
}

impl TaskStore for PgStore {
    fn insert_task(&self, task: &NewTask, now: i64) -> StoreResult<i64> {
        let ids = self.insert_tasks(std::slice::from_ref(task), now)?;
        ids.into_iter()
            .next()
            .map(|i| i.id)
            .ok_or_else(|| StoreError::internal("the insert returned no id"))
    }

    fn insert_tasks(&self, tasks: &[NewTask], now: i64) -> StoreResult<Vec<Inserted>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let columns = InsertColumns::of(tasks, now);
        self.transaction(move |tx, cache| columns.insert(tx, cache, now))
    }

    fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<Claim> {
        if req.limit == 0 || req.identifiers.is_empty() {
            return Ok(Claim::default());
        }
        let token: i64 = rand::random::<i64>() & i64::MAX;
        let limited = !limits::limited_in(req).is_empty();
        let owned = OwnedClaim::of(req);
        let mut claim = self.transaction(move |tx, cache| {
            if limited {
                let mut claim = PgLimitedClaim {
                    tx,
                    cache,
                    req: &owned,
                    token,
                };
                limits::claim_with_limits(&mut claim, &owned.request())
            } else {
                let ids = owned.identifiers.clone();
                Ok(Claim {
                    tasks: claim_in(tx, cache, &owned, token, &ids, &[], owned.limit)?,
                    held: Vec::new(),
                })
            }
        })?;
        // RETURNING gives no order guarantee: restore claim order for the pool.
        claim
            .tasks
            .sort_by_key(|t| (-t.priority_rank, t.run_at, t.id));
        Ok(claim)
    }

    fn limit_usage(&self, identifiers: &[String]) -> StoreResult<Vec<LimitUsage>> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        let ids = identifiers.to_vec();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let leased = leased_in(client, cache, &ids)?;
            let tats = limit_rows(client, cache, LIMIT_ROWS_SQL, &ids)?;
            Ok(limits::usage_of(&ids, leased, &tats)
                .into_values()
                .collect())
        })
    }

    fn release(&self, leases: &[Lease], now: i64) -> StoreResult<()> {
        self.update_leased(&RELEASE_SQL, leases, now)
    }

    fn start_runs(&self, leases: &[Lease], now: i64) -> StoreResult<Vec<bool>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens) = lease_columns(leases);
        let started = self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &START_SQL)?;
            client
                .query(&stmt, &[&ids, &tokens, &now])?
                .iter()
                .map(|r| Ok(r.try_get::<_, i64>(0)?))
                .collect::<StoreResult<std::collections::HashSet<i64>>>()
        })?;
        // A batch holds each task once (one pool thread starts it).
        Ok(leases
            .iter()
            .map(|l| started.contains(&l.task_id))
            .collect())
    }

    fn write_progress(&self, updates: &[ProgressWrite], now: i64) -> StoreResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
        let tokens: Vec<i64> = updates.iter().map(|u| u.lease_token).collect();
        let progress: Vec<i64> = updates.iter().map(|u| u.progress).collect();
        let processed: Vec<Option<i64>> = updates.iter().map(|u| u.processed).collect();
        let totals: Vec<Option<i64>> = updates.iter().map(|u| u.total).collect();
        let etas: Vec<Option<i64>> = updates.iter().map(|u| u.eta_seconds).collect();
        let messages: Vec<String> = updates.iter().map(|u| text(&u.message)).collect();
        let versions: Vec<String> = updates.iter().map(|u| u.worker_version.clone()).collect();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &PROGRESS_SQL)?;
            client.execute(
                &stmt,
                &[
                    &ids, &tokens, &progress, &processed, &totals, &etas, &messages, &versions,
                    &now,
                ],
            )?;
            Ok(())
        })
    }

    fn append_logs(&self, lines: &[LogLine]) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = lines.iter().map(|l| l.task_id).collect();
        let attempts: Vec<i64> = lines.iter().map(|l| i64::from(l.attempt)).collect();
        let levels: Vec<i64> = lines.iter().map(|l| i64::from(l.level)).collect();
        let ats: Vec<i64> = lines.iter().map(|l| l.at).collect();
        let texts: Vec<String> = lines.iter().map(|l| text(&l.line)).collect();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(
                client,
                cache,
                "INSERT INTO s_task_logs (task_id, attempt, level, at, line)
                 SELECT task_id, attempt, level, at, line
                   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[])
                        WITH ORDINALITY AS l(task_id, attempt, level, at, line, n)
                  ORDER BY n",
            )?;
            client.execute(&stmt, &[&ids, &attempts, &levels, &ats, &texts])?;
            Ok(())
        })
    }

    fn finish(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>> {
        apply_finishes(self, finishes, None)
    }

    fn heartbeat(&self, owner: &str, lease_until: i64) -> StoreResult<Vec<i64>> {
        let owner = owner.to_owned();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &HEARTBEAT_SQL)?;
            let mut cancelled = Vec::new();
            for row in client.query(&stmt, &[&owner, &lease_until])? {
                if row.try_get::<_, bool>(1)? {
                    cancelled.push(row.try_get(0)?);
                }
            }
            cancelled.sort_unstable();
            Ok(cancelled)
        })
    }

    fn expired_leases(&self, now: i64) -> StoreResult<Vec<ExpiredLease>> {
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &EXPIRED_SQL)?;
            client
                .query(&stmt, &[&now])?
                .iter()
                .map(crate::rows::expired_lease_from_row)
                .collect()
        })
    }

    fn leases_of(&self, owner: &str) -> StoreResult<Vec<ExpiredLease>> {
        let owner = owner.to_owned();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &LEASES_OF_SQL)?;
            client
                .query(&stmt, &[&owner])?
                .iter()
                .map(crate::rows::expired_lease_from_row)
                .collect()
        })
    }

    fn next_due(&self, now: i64, identifiers: &[String]) -> StoreResult<Option<i64>> {
        if identifiers.is_empty() {
            return Ok(None);
        }
        let identifiers = identifiers.to_vec();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &NEXT_DUE_SQL)?;
            Ok(client.query_one(&stmt, &[&now, &identifiers])?.try_get(0)?)
        })
    }

    fn cancel(&self, id: i64, now: i64) -> StoreResult<CancelResult> {
        self.transaction(move |tx, st| {
            let cancelled = tx.execute(&*st.sql(&CANCEL_PENDING_SQL), &[&id, &now])?;
            let requested = if cancelled == 0 {
                tx.execute(&*st.sql(&REQUEST_CANCEL_SQL), &[&id, &now])?
            } else {
                0
            };
            Ok(match load_task(tx, st, id)? {
                None => CancelResult::NotFound,
                Some(t) if cancelled == 1 => CancelResult::Cancelled(t),
                Some(t) if requested == 1 => CancelResult::Requested(t),
                Some(t) => CancelResult::AlreadyFinished(t),
            })
        })
    }

    fn retry(&self, id: i64, now: i64) -> StoreResult<RetryResult> {
        self.transaction(move |tx, st| {
            let n = tx.execute(&*st.sql(&RETRY_SQL), &[&id, &now])?;
            Ok(match load_task(tx, st, id)? {
                None => RetryResult::NotFound,
                Some(t) if n == 1 => RetryResult::Queued(t),
                Some(t) => RetryResult::NotRetryable(t),
            })
        })
    }

    fn delete_task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.transaction(move |tx, st| {
            // Locked, so a concurrent retry on another host cannot slip in between.
            let Some(row) = tx.query_opt(&*st.sql(SELECT_TASK_FOR_UPDATE), &[&id])? else {
                return Ok(None);
            };
            let task = task_from_row(&row)?;
            if !rule(Event::Delete).allows(task.status) {
                return Err(StoreError::conflict(format!(
                    "task {id} is {}; cancel it before deleting",
                    task.status
                )));
            }
            let waiting: bool = tx
                .query_one(&*st.sql(&HAS_UNRESOLVED_SQL), &[&id])?
                .try_get(0)?;
            if waiting {
                return Err(StoreError::conflict(dependencies::delete_refused(id)));
            }
            tx.execute(
                &*st.sql("DELETE FROM s_task_logs WHERE task_id = $1"),
                &[&id],
            )?;
            tx.execute(
                &*st.sql("DELETE FROM s_task_dependencies WHERE task_id = $1"),
                &[&id],
            )?;
            tx.execute(&*st.sql("DELETE FROM s_tasks WHERE id = $1"), &[&id])?;
            Ok(Some(task))
        })
    }

    fn task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, SELECT_TASK)?;
            client
                .query_opt(&stmt, &[&id])?
                .map(|r| task_from_row(&r))
                .transpose()
        })
    }

    fn tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)> {
        let FilterSql {
            where_sql,
            args,
            page_sql,
        } = filter_sql(filter, &task_filter::POSTGRES);
        let args: Vec<Param> = args
            .into_iter()
            .map(|a| match a {
                FilterArg::Text(v) => Param::Text(text(&v)),
                FilterArg::Int(v) | FilterArg::Time(v) => Param::Int(v),
            })
            .collect();
        self.transaction(move |tx, st| {
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Param::as_sql).collect();
            let total: i64 = tx
                .query_one(
                    &*st.apply(&format!("SELECT COUNT(*) FROM s_tasks {where_sql}")),
                    &params,
                )?
                .try_get(0)?;
            let sql = format!("SELECT {TASK_COLUMNS} FROM s_tasks {where_sql} {page_sql}");
            let tasks = tx
                .query(&*st.apply(&sql), &params)?
                .iter()
                .map(task_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((tasks, total))
        })
    }

    fn pending_tasks(&self, limit: i64) -> StoreResult<(Vec<Task>, i64)> {
        let limit = limit.max(0);
        self.transaction(move |tx, st| {
            let total: i64 = tx.query_one(&*st.sql(&PENDING_SQL[0]), &[])?.try_get(0)?;
            let tasks = tx
                .query(&*st.sql(&PENDING_SQL[1]), &[&limit])?
                .iter()
                .map(task_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((tasks, total))
        })
    }

    fn task_logs(&self, id: i64, limit: i64) -> StoreResult<Vec<LogLine>> {
        let limit = limit.max(0);
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(
                client,
                cache,
                "SELECT task_id, attempt, level, at, line FROM (
                   SELECT id, task_id, attempt, level, at, line FROM s_task_logs
                    WHERE task_id = $1 ORDER BY id DESC LIMIT $2) AS latest ORDER BY id",
            )?;
            client
                .query(&stmt, &[&id, &limit])?
                .iter()
                .map(|r| {
                    Ok(LogLine {
                        task_id: r.try_get(0)?,
                        attempt: narrow(r.try_get(1)?),
                        level: r.try_get::<_, i64>(2)?.clamp(0, 255) as u8,
                        at: r.try_get(3)?,
                        line: r.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn stats(&self) -> StoreResult<Stats> {
        self.run(|conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(
                client,
                cache,
                "SELECT status, COUNT(*) FROM s_tasks GROUP BY status",
            )?;
            let counts = client
                .query(&stmt, &[])?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<StoreResult<Vec<(i64, i64)>>>()?;
            Ok(stats_from_counts(counts))
        })
    }

    fn delete_finished_before(&self, cutoff: i64) -> StoreResult<Vec<i64>> {
        self.transaction(move |tx, st| {
            let mut ids = tx
                .query(&*st.sql(&RETENTION_SQL), &[&cutoff])?
                .iter()
                .map(|r| Ok(r.try_get::<_, i64>(0)?))
                .collect::<StoreResult<Vec<i64>>>()?;
            tx.execute(
                &*st.sql("DELETE FROM s_task_logs WHERE task_id = ANY($1::bigint[])"),
                &[&ids],
            )?;
            tx.execute(
                &*st.sql("DELETE FROM s_task_dependencies WHERE task_id = ANY($1::bigint[])"),
                &[&ids],
            )?;
            tx.execute(&*st.sql(&ORPHANED_KEYS_SQL), &[&cutoff])?;
            ids.sort_unstable();
            Ok(ids)
        })
    }

    fn external_change_counter(&self) -> StoreResult<Option<i64>> {
        // Bumped by the listener on every cancel request or worker change any process stores
        // (and after it reconnects); `None` while no listener runs (CLI commands).
        Ok(self
            .notices
            .started
            .load(Ordering::SeqCst)
            .then(|| self.notices.changed.load(Ordering::SeqCst)))
    }
}

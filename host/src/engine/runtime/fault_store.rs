//! A [`Store`] decorator for runtime tests: passes every call to a real store, and fails the
//! progress flush writes (`write_progress`, `append_logs`) while told to, so tests can show
//! that what a failed flush kept is written by the next successful one. It also keeps what
//! each claim asked for and got, so tests can show how claims batch.

use crate::model::{LogLine, NewTask, PluginFile, Stats, Task, TokenRow, WorkerRow, WorkerState};
use crate::store::{
    AnalyticsStore, CancelResult, ClaimRequest, EventsHook, ExpiredLease, Finish, HostRow,
    HostStore, Inserted, Lease, ProgressWrite, RetryResult, SessionRow, Store, StoreError,
    StoreResult, TaskFilter, TaskStore, TokenStore, WakeHook, WindowSummary, WorkerFilter,
    WorkerRegistration, WorkerStore, WorkerSummary,
};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The real store, with flush writes that fail on demand.
pub struct FaultStore {
    inner: Arc<dyn Store>,
    /// While set, `write_progress` and `append_logs` fail without writing.
    pub fail_flushes: AtomicBool,
    /// Hears of every flush write: `false` for one refused, `true` for a stored `append_logs`.
    flushes: Sender<bool>,
    /// Every claim that returned: what it asked for and the ids it got.
    pub claims: Mutex<Vec<ClaimSeen>>,
}

/// One claim as the runtime made it.
#[derive(Debug, Clone)]
pub struct ClaimSeen {
    /// `ClaimRequest::limit`.
    pub asked: usize,
    /// The ids claimed.
    pub ids: Vec<i64>,
}

impl FaultStore {
    /// Wraps `inner`; nothing fails until told to. The receiver hears of the flush writes.
    pub fn new(inner: Arc<dyn Store>) -> (FaultStore, Receiver<bool>) {
        let (flushes, heard) = crossbeam_channel::unbounded();
        let store = FaultStore {
            inner,
            fail_flushes: AtomicBool::new(false),
            flushes,
            claims: Mutex::new(Vec::new()),
        };
        (store, heard)
    }

    fn flush_fault(&self) -> StoreResult<()> {
        if self.fail_flushes.load(Ordering::SeqCst) {
            let _ = self.flushes.send(false);
            // Any error will do: the runtime treats every flush failure alike.
            return Err(StoreError::internal("injected flush failure"));
        }
        Ok(())
    }
}

impl TaskStore for FaultStore {
    fn insert_task(&self, task: &NewTask, now: i64) -> StoreResult<i64> {
        self.inner.insert_task(task, now)
    }
    fn insert_tasks(&self, tasks: &[NewTask], now: i64) -> StoreResult<Vec<Inserted>> {
        self.inner.insert_tasks(tasks, now)
    }
    fn claim(&self, request: &ClaimRequest<'_>) -> StoreResult<crate::store::Claim> {
        let claim = self.inner.claim(request)?;
        self.claims.lock().push(ClaimSeen {
            asked: request.limit,
            ids: claim.tasks.iter().map(|t| t.id).collect(),
        });
        Ok(claim)
    }
    fn limit_usage(&self, identifiers: &[String]) -> StoreResult<Vec<crate::store::LimitUsage>> {
        self.inner.limit_usage(identifiers)
    }
    fn release(&self, tasks: &[Lease], now: i64) -> StoreResult<()> {
        self.inner.release(tasks, now)
    }
    fn start_runs(&self, tasks: &[Lease], now: i64) -> StoreResult<Vec<bool>> {
        self.inner.start_runs(tasks, now)
    }
    fn flush_starts(&self, now: i64) -> StoreResult<()> {
        self.inner.flush_starts(now)
    }
    fn write_progress(&self, updates: &[ProgressWrite], now: i64) -> StoreResult<()> {
        self.flush_fault()?;
        self.inner.write_progress(updates, now)
    }
    fn append_logs(&self, lines: &[LogLine]) -> StoreResult<()> {
        self.flush_fault()?;
        self.inner.append_logs(lines)?;
        let _ = self.flushes.send(true);
        Ok(())
    }
    fn finish(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>> {
        self.inner.finish(finishes)
    }
    fn heartbeat(&self, owner: &str, lease_until: i64) -> StoreResult<Vec<i64>> {
        self.inner.heartbeat(owner, lease_until)
    }
    fn expired_leases(&self, now: i64) -> StoreResult<Vec<ExpiredLease>> {
        self.inner.expired_leases(now)
    }
    fn leases_of(&self, owner: &str) -> StoreResult<Vec<ExpiredLease>> {
        self.inner.leases_of(owner)
    }
    fn next_due(&self, now: i64, identifiers: &[String]) -> StoreResult<Option<i64>> {
        self.inner.next_due(now, identifiers)
    }
    fn cancel(&self, id: i64, now: i64) -> StoreResult<CancelResult> {
        self.inner.cancel(id, now)
    }
    fn retry(&self, id: i64, now: i64) -> StoreResult<RetryResult> {
        self.inner.retry(id, now)
    }
    fn delete_task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.inner.delete_task(id)
    }
    fn task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.inner.task(id)
    }
    fn tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)> {
        self.inner.tasks(filter)
    }
    fn pending_tasks(&self, limit: i64) -> StoreResult<(Vec<Task>, i64)> {
        self.inner.pending_tasks(limit)
    }
    fn task_logs(&self, id: i64, limit: i64) -> StoreResult<Vec<LogLine>> {
        self.inner.task_logs(id, limit)
    }
    fn stats(&self) -> StoreResult<Stats> {
        self.inner.stats()
    }
    fn delete_finished_before(&self, cutoff: i64) -> StoreResult<Vec<i64>> {
        self.inner.delete_finished_before(cutoff)
    }
    fn external_change_counter(&self) -> StoreResult<Option<i64>> {
        self.inner.external_change_counter()
    }
}

impl WorkerStore for FaultStore {
    fn upsert_worker(&self, reg: &WorkerRegistration, now: i64) -> StoreResult<WorkerRow> {
        self.inner.upsert_worker(reg, now)
    }
    fn set_worker_state(
        &self,
        identifier: &str,
        state: WorkerState,
        load_error: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        self.inner
            .set_worker_state(identifier, state, load_error, now)
    }
    fn workers(&self, filter: &WorkerFilter) -> StoreResult<Vec<WorkerRow>> {
        self.inner.workers(filter)
    }
    fn worker(&self, identifier: &str) -> StoreResult<Option<WorkerRow>> {
        self.inner.worker(identifier)
    }
    fn set_worker_active(&self, identifier: &str, active: bool, now: i64) -> StoreResult<bool> {
        self.inner.set_worker_active(identifier, active, now)
    }
    fn set_worker_paused(&self, identifier: &str, paused: bool, now: i64) -> StoreResult<bool> {
        self.inner.set_worker_paused(identifier, paused, now)
    }
    fn set_worker_settings(
        &self,
        identifier: &str,
        settings: &Value,
        now: i64,
    ) -> StoreResult<bool> {
        self.inner.set_worker_settings(identifier, settings, now)
    }
    fn delete_orphaned_workers(&self) -> StoreResult<Vec<String>> {
        self.inner.delete_orphaned_workers()
    }
    fn record_plugin_file(&self, file: &PluginFile) -> StoreResult<()> {
        self.inner.record_plugin_file(file)
    }
    fn plugin_files(&self) -> StoreResult<Vec<PluginFile>> {
        self.inner.plugin_files()
    }
}

impl TokenStore for FaultStore {
    fn insert_token(
        &self,
        name: &str,
        hash: &str,
        prefix: &str,
        role: crate::model::TokenRole,
        now: i64,
    ) -> StoreResult<TokenRow> {
        self.inner.insert_token(name, hash, prefix, role, now)
    }
    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        self.inner.tokens()
    }
    fn revoke_token(&self, name_or_id: &str, now: i64) -> StoreResult<bool> {
        self.inner.revoke_token(name_or_id, now)
    }
    fn live_tokens_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(TokenRow, String)>> {
        self.inner.live_tokens_with_prefix(prefix)
    }
    fn touch_token(&self, id: i64, now: i64) -> StoreResult<()> {
        self.inner.touch_token(id, now)
    }
    fn restrict_token(&self, id: i64, workers: Option<&[String]>) -> StoreResult<bool> {
        self.inner.restrict_token(id, workers)
    }
    fn insert_session(&self, session: &SessionRow) -> StoreResult<()> {
        self.inner.insert_session(session)
    }
    fn session(&self, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        self.inner.session(id_hash, now)
    }
    fn delete_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        self.inner.delete_session(id_hash, now)
    }
}

impl AnalyticsStore for FaultStore {
    fn window_summary(&self, since: i64, now: i64) -> StoreResult<WindowSummary> {
        self.inner.window_summary(since, now)
    }
    fn worker_summaries(&self, since: i64) -> StoreResult<Vec<WorkerSummary>> {
        self.inner.worker_summaries(since)
    }
    fn oldest_due_pending(&self, now: i64) -> StoreResult<Option<(i64, String, i64)>> {
        self.inner.oldest_due_pending(now)
    }
    fn stuck_tasks(&self, now: i64) -> StoreResult<Vec<(i64, String, i64)>> {
        self.inner.stuck_tasks(now)
    }
    fn pending_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.inner.pending_counts()
    }
    fn finished_per_bucket(
        &self,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        self.inner.finished_per_bucket(since, until, bucket_ms)
    }
}

impl HostStore for FaultStore {
    fn shared_by_hosts(&self) -> bool {
        self.inner.shared_by_hosts()
    }
    fn upsert_host(&self, host: &HostRow) -> StoreResult<()> {
        self.inner.upsert_host(host)
    }
    fn host_stopped(&self, name: &str, now: i64) -> StoreResult<()> {
        self.inner.host_stopped(name, now)
    }
    fn hosts(&self) -> StoreResult<Vec<HostRow>> {
        self.inner.hosts()
    }
    fn recover(&self, finishes: &[Finish], before: i64) -> StoreResult<Vec<bool>> {
        self.inner.recover(finishes, before)
    }
    fn on_new_work(&self, hook: WakeHook) {
        self.inner.on_new_work(hook)
    }
    fn send_events(&self, batches: &[String]) -> StoreResult<()> {
        self.inner.send_events(batches)
    }
    fn on_events(&self, hook: EventsHook) {
        self.inner.on_events(hook)
    }
}

impl crate::store::AuditStore for FaultStore {
    fn insert_audit(&self, entries: &[crate::store::AuditEntry]) -> StoreResult<()> {
        self.inner.insert_audit(entries)
    }
    fn audit_entries(
        &self,
        filter: &crate::store::AuditFilter,
    ) -> StoreResult<(Vec<crate::store::AuditRow>, i64)> {
        self.inner.audit_entries(filter)
    }
    fn delete_audit_before(&self, cutoff: i64) -> StoreResult<u64> {
        self.inner.delete_audit_before(cutoff)
    }
}

impl crate::store::ScheduleStore for FaultStore {
    fn insert_schedule(
        &self,
        spec: &crate::store::ScheduleSpec,
        now: i64,
    ) -> StoreResult<crate::store::ScheduleRow> {
        self.inner.insert_schedule(spec, now)
    }
    fn upsert_schedule(
        &self,
        spec: &crate::store::ScheduleSpec,
        now: i64,
    ) -> StoreResult<crate::store::ScheduleRow> {
        self.inner.upsert_schedule(spec, now)
    }
    fn update_schedule(
        &self,
        id: i64,
        spec: &crate::store::ScheduleSpec,
        now: i64,
    ) -> StoreResult<Option<crate::store::ScheduleRow>> {
        self.inner.update_schedule(id, spec, now)
    }
    fn set_schedule_enabled(
        &self,
        id: i64,
        enabled: bool,
        now: i64,
    ) -> StoreResult<Option<crate::store::ScheduleRow>> {
        self.inner.set_schedule_enabled(id, enabled, now)
    }
    fn delete_schedule(&self, id: i64) -> StoreResult<bool> {
        self.inner.delete_schedule(id)
    }
    fn schedule(&self, id: i64) -> StoreResult<Option<crate::store::ScheduleRow>> {
        self.inner.schedule(id)
    }
    fn schedules(&self) -> StoreResult<Vec<crate::store::ScheduleRow>> {
        self.inner.schedules()
    }
    fn take_slot(
        &self,
        schedule_id: i64,
        slot_at: i64,
        task: &NewTask,
        now: i64,
    ) -> StoreResult<crate::store::SlotTaken> {
        self.inner.take_slot(schedule_id, slot_at, task, now)
    }
}

impl crate::store::DependencyStore for FaultStore {
    fn missing_tasks(&self, ids: &[i64]) -> StoreResult<Vec<i64>> {
        self.inner.missing_tasks(ids)
    }
    fn resolve_dependencies(
        &self,
        parents: &[i64],
        now: i64,
    ) -> StoreResult<crate::store::Resolution> {
        self.inner.resolve_dependencies(parents, now)
    }
    fn sweep_dependencies(&self, now: i64, limit: usize) -> StoreResult<crate::store::Resolution> {
        self.inner.sweep_dependencies(now, limit)
    }
    fn task_dependencies(&self, id: i64) -> StoreResult<crate::store::TaskDependencies> {
        self.inner.task_dependencies(id)
    }
}

impl crate::store::BatchStore for FaultStore {
    fn insert_batch(
        &self,
        batch: &crate::store::NewBatch,
        now: i64,
    ) -> StoreResult<crate::store::BatchCreated> {
        self.inner.insert_batch(batch, now)
    }
    fn batch(&self, id: i64) -> StoreResult<Option<crate::store::Batch>> {
        self.inner.batch(id)
    }
    fn batches(&self, limit: i64, offset: i64) -> StoreResult<(Vec<crate::store::Batch>, i64)> {
        self.inner.batches(limit, offset)
    }
    fn cancel_batch(&self, id: i64, now: i64) -> StoreResult<Option<crate::store::BatchCancel>> {
        self.inner.cancel_batch(id, now)
    }
}

impl Store for FaultStore {
    fn migrate(&self) -> StoreResult<Vec<String>> {
        self.inner.migrate()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn storage_fault(&self) -> Option<String> {
        self.inner.storage_fault()
    }
    fn close(&self) {
        self.inner.close()
    }
    fn execute_foreign(&self, sql: &str) -> StoreResult<()> {
        self.inner.execute_foreign(sql)
    }
}

//! Task dependencies on the engine's side (see `stask_store::dependencies`): parents are
//! checked at creation, and the end of every finished task is passed on to its dependants
//! right after the write that finished it; the ticker's sweep covers what a kill or a failed
//! call left between the two.

use super::{Engine, EngineError, EngineResult};
use crate::clock::now_ms;
use crate::events::Event;
use crate::model::{NewTask, TaskStatus};
use crate::store::dependencies::MAX_PARENTS;
use crate::store::Resolution;

/// Most finished parents one sweep resolves (the next sweep takes the rest).
pub(crate) const SWEEP_LIMIT: usize = 1_000;

impl Engine {
    /// Refuses a new task whose `depends_on` is too long or names tasks that do not exist
    /// (a task's own id and future ids among them: so no cycle can be made).
    pub fn check_parents(&self, task: &NewTask) -> EngineResult<()> {
        if task.depends_on.is_empty() {
            return Ok(());
        }
        if task.depends_on.len() > MAX_PARENTS {
            return Err(EngineError::Invalid(format!(
                "depends_on lists {} tasks; at most {MAX_PARENTS} are allowed",
                task.depends_on.len()
            )));
        }
        let missing = self.store.missing_tasks(&task.depends_on)?;
        if missing.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = missing.iter().map(i64::to_string).collect();
        Err(EngineError::UnknownParents {
            message: format!(
                "depends_on names tasks that do not exist: {} (a task can only depend on \
                 tasks created before it)",
                ids.join(", ")
            ),
            ids: missing,
        })
    }

    /// Passes the end of the tasks `ids` (just finished: completed, failed or cancelled) on
    /// to their dependants. A failure is logged, not returned: the caller's write is done,
    /// and the ticker's sweep resolves these parents later.
    pub(crate) fn pass_on_ends(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        match self.store.resolve_dependencies(ids, now_ms()) {
            Ok(done) => self.announce(&done),
            Err(e) => tracing::warn!(
                "cannot release the dependants of {} finished tasks now (the sweep will): {e}",
                ids.len()
            ),
        }
    }

    /// The sweep: resolves finished parents whose end was not passed on yet (after a kill,
    /// or when [`Engine::pass_on_ends`] failed). Returns how many dependants changed.
    pub fn sweep_dependencies(&self) -> EngineResult<usize> {
        let done = self.store.sweep_dependencies(now_ms(), SWEEP_LIMIT)?;
        self.announce(&done);
        Ok(done.released.len() + done.cancelled.len())
    }

    /// A task's dependencies both ways, for its view.
    pub fn task_dependencies(&self, id: i64) -> EngineResult<crate::store::TaskDependencies> {
        Ok(self.store.task_dependencies(id)?)
    }

    /// Events for what a resolution did, and a wake-up for the released tasks.
    fn announce(&self, done: &Resolution) {
        for (id, message) in &done.cancelled {
            self.events.publish(Event::TaskFinished {
                id: *id,
                status: TaskStatus::Cancelled.name().into(),
                message: message.clone(),
            });
        }
        if !done.released.is_empty() {
            self.wake();
        }
    }
}

//! Batches on the engine's side (see `stask_store::batches`): every task checked as a single
//! create is (a refusal names the task's index and creates nothing), the batch stored in one
//! transaction, and a batch's cancel passed through the state machine and on to dependants.

use super::{Engine, EngineError, EngineResult};
use crate::clock::now_ms;
use crate::events::Event;
use crate::model::{NewTask, TaskStatus};
use crate::store::batches::MAX_BATCH_TASKS;
use crate::store::{Batch, BatchCancel, BatchCreated, NewBatch};

impl Engine {
    /// Checks every task of `batch` as a single create is checked, then stores it whole.
    pub fn create_batch(&self, batch: &NewBatch) -> EngineResult<BatchCreated> {
        check_size(batch.tasks.len())?;
        for (index, task) in batch.tasks.iter().enumerate() {
            self.check_new(task)
                .map_err(|e| in_batch(e, |error| EngineError::BatchTask { index, error }))?;
        }
        if let Some(task) = &batch.on_complete {
            if !task.depends_on.is_empty() || task.unique_key.is_some() {
                return Err(EngineError::Invalid(
                    "on_complete: depends_on and unique_key are not allowed (it depends on \
                     every task of the batch)"
                        .into(),
                ));
            }
            self.check_new(task).map_err(|e| {
                in_batch(e, |error| {
                    EngineError::Invalid(format!("on_complete: {error}"))
                })
            })?;
        }
        let created = self.store.insert_batch(batch, now_ms())?;
        let new_tasks = created
            .tasks
            .iter()
            .zip(&batch.tasks)
            .filter(|(inserted, _)| !inserted.duplicate)
            .map(|(inserted, task)| (inserted.id, task));
        let on_complete = created.on_complete_task_id.zip(batch.on_complete.as_ref());
        for (id, task) in new_tasks.chain(on_complete) {
            self.events.publish(Event::TaskCreated {
                id,
                identifier: task.identifier.clone(),
                action: task.action.clone(),
            });
        }
        self.wake();
        Ok(created)
    }

    /// One batch with its counts.
    pub fn batch(&self, id: i64) -> EngineResult<Batch> {
        self.store
            .batch(id)?
            .ok_or_else(|| EngineError::NotFound(format!("no batch {id}")))
    }

    /// A page of batches, newest first, and how many there are.
    pub fn batches(&self, limit: i64, offset: i64) -> EngineResult<(Vec<Batch>, i64)> {
        Ok(self.store.batches(limit, offset)?)
    }

    /// Cancels every unfinished task of a batch: pending ones at once, running ones through
    /// their cancel flag (as [`Engine::cancel`] does for one); its `on_complete` then runs
    /// once the running ones ended.
    pub fn cancel_batch(&self, id: i64) -> EngineResult<BatchCancel> {
        let done = self
            .store
            .cancel_batch(id, now_ms())?
            .ok_or_else(|| EngineError::NotFound(format!("no batch {id}")))?;
        let message = crate::task_state::rule(crate::task_state::Event::CancelPending)
            .fixed_message()
            .unwrap_or_default();
        for task in &done.cancelled {
            self.events.publish(Event::TaskFinished {
                id: *task,
                status: TaskStatus::Cancelled.name().into(),
                message: message.into(),
            });
        }
        self.pass_on_ends(&done.cancelled);
        for &task in &done.requested {
            if self.hub.request_cancel(task) {
                continue;
            }
            // Claimed here but not started: the pool checks the early cancels at start
            // (another host hears of it by its heartbeat).
            if let Ok(Some(row)) = self.store.task(task) {
                if row.lease_owner.as_deref() == Some(self.owner.as_str()) {
                    self.runtime_state.early_cancels.lock().insert(task);
                }
            }
        }
        Ok(done)
    }

    /// A new task's checks, as a single create makes them.
    fn check_new(&self, task: &NewTask) -> EngineResult<()> {
        match self.validate_cached(task) {
            Some(checked) => checked?,
            None => {
                self.validate(task)?;
            }
        }
        self.check_parents(task)
    }
}

/// Refuses an empty batch or one above [`MAX_BATCH_TASKS`].
pub fn check_size(n: usize) -> EngineResult<()> {
    if n == 0 {
        return Err(EngineError::Invalid(
            "a batch needs at least one task in tasks".into(),
        ));
    }
    if n > MAX_BATCH_TASKS {
        return Err(EngineError::Invalid(format!(
            "a batch has at most {MAX_BATCH_TASKS} tasks, got {n}"
        )));
    }
    Ok(())
}

/// A task's refusal as the batch's; storage failures stay what they are.
fn in_batch(e: EngineError, wrap: impl FnOnce(Box<EngineError>) -> EngineError) -> EngineError {
    match e {
        EngineError::Store(e) => EngineError::Store(e),
        other => wrap(Box::new(other)),
    }
}

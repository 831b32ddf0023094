//! Group commit for task creation over HTTP: concurrent creates are inserted by one thread in
//! one transaction each round, instead of one transaction (and one thread hand-off) each. A
//! lone create is inserted at once; batching only happens when requests overlap.

use super::{Engine, EngineResult};
use crate::clock::now_ms;
use crate::model::NewTask;
use crate::store::{Inserted, StoreResult};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most inserts committed together.
const MAX_BATCH: usize = 256;

type Request = (NewTask, oneshot::Sender<StoreResult<Inserted>>);

/// Handle to the inserter thread.
pub struct Inserter {
    tx: Sender<Request>,
}

impl Inserter {
    fn start(engine: Arc<Engine>) -> Inserter {
        let (tx, rx) = unbounded::<Request>();
        std::thread::Builder::new()
            .name("stask-inserter".into())
            .spawn(move || run(&engine, &rx))
            .expect("spawning the inserter");
        Inserter { tx }
    }
}

fn run(engine: &Engine, rx: &Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let tasks: Vec<NewTask> = batch.iter().map(|(t, _)| t.clone()).collect();
        match engine.store.insert_tasks(&tasks, now_ms()) {
            Ok(inserted) => {
                // Each create learns whether it was a duplicate (of an earlier task, or of an
                // earlier create of this round): only new tasks are announced.
                for ((task, reply), one) in batch.into_iter().zip(inserted) {
                    if !one.duplicate {
                        engine.created(one.id, &task);
                    }
                    let _ = reply.send(Ok(one));
                }
            }
            Err(e) => {
                // Every create of the round gets the same error, storage faults with their
                // kind (answered 503/507, not 500).
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.share()));
                }
            }
        }
    }
}

impl Engine {
    /// Validates and stores a task without blocking the caller's async thread: the check
    /// uses the registry's cached row when it can, the insert is group-committed.
    pub async fn create_task_async(self: &Arc<Self>, task: NewTask) -> EngineResult<Inserted> {
        // Parents are checked in the database (they may be anyone's tasks): a create with
        // `depends_on` always takes the blocking path.
        match self
            .validate_cached(&task)
            .filter(|_| task.depends_on.is_empty())
        {
            Some(checked) => checked?,
            None => {
                let engine = self.clone();
                let probe = task.clone();
                tokio::task::spawn_blocking(move || {
                    engine.validate(&probe)?;
                    engine.check_parents(&probe)
                })
                .await
                .map_err(|e| super::EngineError::Invalid(format!("validation failed: {e}")))??;
            }
        }
        let inserter = self.inserter.get_or_init(|| Inserter::start(self.clone()));
        let (reply, answer) = oneshot::channel();
        inserter
            .tx
            .send((task, reply))
            .map_err(|_| crate::store::StoreError::internal("the inserter stopped"))?;
        let id = answer
            .await
            .map_err(|_| crate::store::StoreError::internal("the inserter stopped"))??;
        Ok(id)
    }
}

//! `BatchStore` for PostgreSQL: the shared statements of `crate::batches` on a connection
//! thread; a batch is one transaction (its row, its tasks as one `unnest` insert, their
//! `batch_id` in chunks, the `on_complete` links in one `INSERT ... SELECT`).

use super::dependencies::Tx;
use super::tasks::InsertColumns;
use super::PgStore;
use crate::batches::{self, Batch, BatchCancel, BatchCreated, BatchStore, NewBatch};
use crate::dependencies::Dialect;
use crate::StoreResult;

const D: Dialect = Dialect::Postgres;

impl BatchStore for PgStore {
    fn insert_batch(&self, batch: &NewBatch, now: i64) -> StoreResult<BatchCreated> {
        let batch = batch.clone();
        self.transaction(move |tx, cache| {
            let id = batches::open(&mut Tx { tx, cache }, D, &batch, now)?;
            let tasks = InsertColumns::of(&batch.tasks, now).insert(tx, cache, now)?;
            let on_complete = match &batch.on_complete {
                Some(t) => InsertColumns::of(std::slice::from_ref(t), now)
                    .insert(tx, cache, now)?
                    .first()
                    .map(|i| i.id),
                None => None,
            };
            batches::close(&mut Tx { tx, cache }, D, id, &tasks, on_complete, now)?;
            Ok(BatchCreated {
                id,
                tasks,
                on_complete_task_id: on_complete,
            })
        })
    }

    fn batch(&self, id: i64) -> StoreResult<Option<Batch>> {
        self.run(move |conn| {
            let (tx, cache) = conn.parts();
            batches::read(&mut Tx { tx, cache }, D, id)
        })
    }

    fn batches(&self, limit: i64, offset: i64) -> StoreResult<(Vec<Batch>, i64)> {
        self.run(move |conn| {
            let (tx, cache) = conn.parts();
            batches::page(&mut Tx { tx, cache }, D, limit, offset)
        })
    }

    fn cancel_batch(&self, id: i64, now: i64) -> StoreResult<Option<BatchCancel>> {
        self.transaction(move |tx, cache| batches::cancel(&mut Tx { tx, cache }, D, id, now))
    }
}

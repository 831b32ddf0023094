//! `BatchStore` for SQLite: the shared statements of `crate::batches` on the writer (one
//! transaction for a whole batch: its row, its tasks through the ordinary insert path, their
//! `batch_id` and the `on_complete` links) or a reader (views).

use super::dependencies::Tx;
use super::tasks::insert_one;
use super::SqliteStore;
use crate::batches::{self, Batch, BatchCancel, BatchCreated, BatchStore, NewBatch};
use crate::dependencies::Dialect;
use crate::StoreResult;

const D: Dialect = Dialect::Sqlite;

impl BatchStore for SqliteStore {
    fn insert_batch(&self, batch: &NewBatch, now: i64) -> StoreResult<BatchCreated> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let p = &self.prefix;
            let id = batches::open(
                &mut Tx {
                    conn: &tx,
                    prefix: p,
                },
                D,
                batch,
                now,
            )?;
            let tasks = batch
                .tasks
                .iter()
                .map(|t| insert_one(&tx, p, t, now))
                .collect::<StoreResult<Vec<_>>>()?;
            let on_complete = match &batch.on_complete {
                Some(t) => Some(insert_one(&tx, p, t, now)?.id),
                None => None,
            };
            batches::close(
                &mut Tx {
                    conn: &tx,
                    prefix: p,
                },
                D,
                id,
                &tasks,
                on_complete,
                now,
            )?;
            tx.commit()?;
            Ok(BatchCreated {
                id,
                tasks,
                on_complete_task_id: on_complete,
            })
        })
    }

    fn batch(&self, id: i64) -> StoreResult<Option<Batch>> {
        self.read(|conn| {
            batches::read(
                &mut Tx {
                    conn,
                    prefix: &self.prefix,
                },
                D,
                id,
            )
        })
    }

    fn batches(&self, limit: i64, offset: i64) -> StoreResult<(Vec<Batch>, i64)> {
        self.read(|conn| {
            batches::page(
                &mut Tx {
                    conn,
                    prefix: &self.prefix,
                },
                D,
                limit,
                offset,
            )
        })
    }

    fn cancel_batch(&self, id: i64, now: i64) -> StoreResult<Option<BatchCancel>> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let done = batches::cancel(
                &mut Tx {
                    conn: &tx,
                    prefix: &self.prefix,
                },
                D,
                id,
                now,
            )?;
            tx.commit()?;
            Ok(done)
        })
    }
}

//! `BatchStore` for MySQL/MariaDB: the shared statements of `crate::batches` in one
//! transaction per batch (deadlocks retried whole, as for inserts); views on a plain
//! connection.

use super::dependencies::Tx;
use super::tasks::insert_in;
use super::MysqlStore;
use crate::batches::{self, Batch, BatchCancel, BatchCreated, BatchStore, NewBatch};
use crate::dependencies::Dialect;
use crate::StoreResult;

const D: Dialect = Dialect::Mysql;

impl BatchStore for MysqlStore {
    fn insert_batch(&self, batch: &NewBatch, now: i64) -> StoreResult<BatchCreated> {
        self.retrying(|tx| {
            let id = batches::open(&mut Tx { tx, store: self }, D, batch, now)?;
            let tasks = insert_in(tx, self, &batch.tasks, now)?;
            let on_complete = match &batch.on_complete {
                Some(t) => insert_in(tx, self, std::slice::from_ref(t), now)?
                    .first()
                    .map(|i| i.id),
                None => None,
            };
            batches::close(&mut Tx { tx, store: self }, D, id, &tasks, on_complete, now)?;
            Ok(BatchCreated {
                id,
                tasks,
                on_complete_task_id: on_complete,
            })
        })
    }

    fn batch(&self, id: i64) -> StoreResult<Option<Batch>> {
        batches::read(
            &mut Tx {
                tx: &mut self.conn()?,
                store: self,
            },
            D,
            id,
        )
    }

    fn batches(&self, limit: i64, offset: i64) -> StoreResult<(Vec<Batch>, i64)> {
        batches::page(
            &mut Tx {
                tx: &mut self.conn()?,
                store: self,
            },
            D,
            limit,
            offset,
        )
    }

    fn cancel_batch(&self, id: i64, now: i64) -> StoreResult<Option<BatchCancel>> {
        self.retrying(|tx| batches::cancel(&mut Tx { tx, store: self }, D, id, now))
    }
}

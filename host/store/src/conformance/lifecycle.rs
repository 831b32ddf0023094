//! The store itself: migrations, its description for logs, the storage fault it reports, and
//! a clean close.

use super::{task, Reopen};
use crate::model::{Priority, TaskStatus};
use crate::Store;
use std::sync::Arc;

/// Migrations apply once: a migrated store has nothing left to apply, however often asked.
pub fn migrations_apply_once(store: &dyn Store) {
    assert!(store.migrate().unwrap().is_empty());
    assert!(store.migrate().unwrap().is_empty());
    // The schema is usable after the repeated runs.
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    assert!(store.task(id).unwrap().is_some());
}

/// The description for logs names the backend first and never holds a password
/// (`user:password@` in a URL).
pub fn describe_names_the_backend_without_secrets(store: &dyn Store) {
    let described = store.describe();
    let backend = described.split_whitespace().next().unwrap_or_default();
    assert!(
        !backend.is_empty() && backend.chars().all(|c| c.is_ascii_lowercase()),
        "{described}"
    );
    let has_password = described.split("://").skip(1).any(|rest| {
        let authority = rest.split('/').next().unwrap_or_default();
        authority
            .split_once('@')
            .is_some_and(|(user, _)| user.contains(':'))
    });
    assert!(!has_password, "{described}");
    assert_eq!(store.describe(), described, "the same every time");
}

/// A store whose storage works reports no fault, before and after writes.
pub fn a_healthy_store_reports_no_storage_fault(store: &dyn Store) {
    assert_eq!(store.storage_fault(), None);
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    store.cancel(id, 10).unwrap();
    assert_eq!(store.storage_fault(), None);
}

/// What was stored before a clean close is there for the next process, and closing twice is
/// harmless.
pub fn close_keeps_every_stored_write(store: Arc<dyn Store>, reopen: Reopen) {
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::Normal, None),
                task("w", Priority::High, None),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    store.cancel(ids[0], 10).unwrap();
    store.close();
    store.close();
    let store = reopen(store);
    assert_eq!(
        store.task(ids[0]).unwrap().map(|t| t.status),
        Some(TaskStatus::Cancelled)
    );
    assert_eq!(
        store.task(ids[1]).unwrap().map(|t| t.priority),
        Some(Priority::High)
    );
    assert_eq!(store.storage_fault(), None);
}

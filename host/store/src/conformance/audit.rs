//! The audit log (`s_audit`): entries stored in batches, listed newest first with every
//! filter and a total, forgotten past their retention; and the worker list of a restricted
//! token, which its sessions carry and which narrows a task list.

use crate::model::{Priority, TokenRole};
use crate::{AuditEntry, AuditFilter, SessionRow, Store, TaskFilter};

use super::task;

/// An entry of `method route` by `token` (`None`: anonymous) answered `status` at `at`.
fn entry(at: i64, token: Option<(i64, &str)>, route: &str, status: i64) -> AuditEntry {
    AuditEntry {
        recorded_at: at,
        token_id: token.map(|(id, _)| id),
        token_name: token.map(|(_, name)| name.to_owned()),
        role: token.map(|_| "operate".to_owned()),
        via_session: at % 2 == 0,
        method: "POST".into(),
        route: route.into(),
        target: Some("id=5".into()),
        created_ids: (status == 201).then(|| "7,8".to_owned()),
        status,
        client_addr: Some("127.0.0.1:5000".into()),
    }
}

/// A batch reads back whole, newest first; the token (by name or id), route, status class
/// and time window each narrow the list, the total counts every match, and pages follow on.
pub fn audit_entries_are_stored_filtered_and_paged_newest_first(store: &dyn Store) {
    let all = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(store.audit_entries(&all).unwrap(), (Vec::new(), 0));
    store.insert_audit(&[]).unwrap();
    let batch = vec![
        entry(
            100,
            Some((1, "ci")),
            "/stask/workers/{identifier}/tasks/{action}",
            201,
        ),
        entry(101, Some((2, "ops")), "/stask/tasks/{id}/cancel", 200),
        entry(102, None, "/stask/login", 401),
        entry(103, Some((2, "ops")), "/stask/tasks/{id}/cancel", 403),
        entry(104, Some((1, "ci")), "/stask/tasks/{id}", 404),
    ];
    store.insert_audit(&batch).unwrap();
    let (rows, total) = store.audit_entries(&all).unwrap();
    assert_eq!(total, 5);
    let read: Vec<AuditEntry> = rows.iter().map(|r| r.entry.clone()).collect();
    let mut newest_first = batch.clone();
    newest_first.reverse();
    assert_eq!(read, newest_first, "every column round-trips, newest first");
    assert!(rows.windows(2).all(|w| w[0].id > w[1].id));

    let ats = |filter: AuditFilter| -> (Vec<i64>, i64) {
        let (rows, total) = store.audit_entries(&filter).unwrap();
        (rows.iter().map(|r| r.entry.recorded_at).collect(), total)
    };
    assert_eq!(
        ats(AuditFilter {
            token: Some("ops".into()),
            ..all.clone()
        }),
        (vec![103, 101], 2)
    );
    assert_eq!(
        ats(AuditFilter {
            token: Some("1".into()),
            ..all.clone()
        }),
        (vec![104, 100], 2),
        "a token by id"
    );
    assert_eq!(
        ats(AuditFilter {
            route: Some("/stask/tasks/{id}/cancel".into()),
            ..all.clone()
        }),
        (vec![103, 101], 2)
    );
    assert_eq!(
        ats(AuditFilter {
            status_class: Some(4),
            ..all.clone()
        }),
        (vec![104, 103, 102], 3)
    );
    assert_eq!(
        ats(AuditFilter {
            since: Some(101),
            until: Some(103),
            ..all.clone()
        }),
        (vec![102, 101], 2),
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        ats(AuditFilter {
            limit: 2,
            offset: 2,
            ..all.clone()
        }),
        (vec![102, 101], 5),
        "a page counts every match"
    );
}

/// Retention deletes only the entries recorded before its cutoff, and says how many.
pub fn old_audit_entries_are_deleted(store: &dyn Store) {
    store
        .insert_audit(&[
            entry(10, None, "/stask/login", 401),
            entry(20, None, "/stask/login", 401),
            entry(30, None, "/stask/login", 200),
        ])
        .unwrap();
    assert_eq!(store.delete_audit_before(25).unwrap(), 2);
    assert_eq!(store.delete_audit_before(25).unwrap(), 0);
    let (rows, total) = store
        .audit_entries(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(rows[0].entry.recorded_at, 30);
}

/// A token's worker list is stored, listed, carried by its sessions (with its name) and
/// lifted again; an unknown token is not restricted. A task list narrowed to several
/// workers holds only theirs.
pub fn a_token_restricted_to_workers_keeps_its_list(store: &dyn Store) {
    let t = store
        .insert_token("site", "hash-site", "stk_si", TokenRole::Operate, 100)
        .unwrap();
    assert_eq!(t.workers, None, "a new token may act on every worker");
    let workers = vec!["mail".to_owned(), "pdf".to_owned()];
    assert!(store.restrict_token(t.id, Some(&workers)).unwrap());
    assert!(!store.restrict_token(t.id + 1000, Some(&workers)).unwrap());
    let listed = store.tokens().unwrap();
    assert_eq!(listed[0].workers.as_deref(), Some(&workers[..]));
    let (found, _) = store.live_tokens_with_prefix("stk_si").unwrap().remove(0);
    assert_eq!(found.workers.as_deref(), Some(&workers[..]));
    store
        .insert_session(&SessionRow {
            id_hash: "sess".into(),
            token_id: t.id,
            csrf_token: "c".into(),
            created_at: 100,
            expires_at: 1_000,
            role: TokenRole::Operate,
            token_name: String::new(),
            workers: None,
        })
        .unwrap();
    let session = store.session("sess", 200).unwrap().unwrap();
    assert_eq!(
        (session.token_name.as_str(), session.workers.as_deref()),
        ("site", Some(&workers[..])),
        "a session acts with its token's list"
    );
    assert!(store.restrict_token(t.id, None).unwrap());
    assert_eq!(store.tokens().unwrap()[0].workers, None);

    for w in ["mail", "pdf", "other"] {
        store
            .insert_task(&task(w, Priority::Normal, None), 100)
            .unwrap();
    }
    let (tasks, total) = store
        .tasks(&TaskFilter {
            identifiers: workers.clone(),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let mut seen: Vec<String> = tasks.into_iter().map(|t| t.identifier).collect();
    seen.sort();
    assert_eq!((seen, total), (workers, 2));
}

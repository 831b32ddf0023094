//! API tokens: creation, the unique live name, listing, revocation by name or id, the lookup
//! by prefix that authenticates, and the record of each use.

use crate::model::TokenRole;
use crate::{Store, StoreError};

/// A created token reads back without its secret (id, name, role, prefix, creation time,
/// never used nor revoked); the list holds every token, revoked ones too, in creation order.
pub fn tokens_are_stored_and_listed(store: &dyn Store) {
    assert!(store.tokens().unwrap().is_empty());
    let ci = store
        .insert_token("ci", "hash-ci", "stk_ci", TokenRole::Admin, 100)
        .unwrap();
    assert_eq!(
        (
            ci.name.as_str(),
            ci.prefix.as_str(),
            ci.created_at,
            ci.last_used_at,
            ci.revoked_at
        ),
        ("ci", "stk_ci", 100, None, None)
    );
    let ops = store
        .insert_token("ops", "hash-ops", "stk_op", TokenRole::Operate, 110)
        .unwrap();
    assert_eq!((ci.role, ops.role), (TokenRole::Admin, TokenRole::Operate));
    assert_ne!(ci.id, ops.id);
    assert!(store.revoke_token("ci", 120).unwrap());
    let listed: Vec<(i64, String, Option<i64>, TokenRole)> = store
        .tokens()
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.name, t.revoked_at, t.role))
        .collect();
    assert_eq!(
        listed,
        vec![
            (ci.id, "ci".to_owned(), Some(120), TokenRole::Admin),
            (ops.id, "ops".to_owned(), None, TokenRole::Operate)
        ]
    );
}

/// Two live tokens cannot share a name (a conflict, nothing stored); once the first is
/// revoked, its name is free again.
pub fn a_live_token_name_is_unique(store: &dyn Store) {
    let first = store
        .insert_token("deploy", "hash-1", "stk_d1", TokenRole::Admin, 100)
        .unwrap();
    let again = store.insert_token("deploy", "hash-2", "stk_d2", TokenRole::Admin, 110);
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(
        store.tokens().unwrap().len(),
        1,
        "the refused token is not stored"
    );
    assert!(store.revoke_token("deploy", 120).unwrap());
    let second = store
        .insert_token("deploy", "hash-2", "stk_d2", TokenRole::Admin, 130)
        .unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(store.tokens().unwrap().len(), 2);
}

/// A token is revoked by its name or by its id (as text), once: a second revocation, or one
/// naming no live token, changes nothing and says so.
pub fn tokens_are_revoked_by_name_or_id(store: &dyn Store) {
    let a = store
        .insert_token("a", "hash-a", "stk_a", TokenRole::Admin, 100)
        .unwrap();
    let b = store
        .insert_token("b", "hash-b", "stk_b", TokenRole::Admin, 100)
        .unwrap();
    assert!(store.revoke_token("a", 110).unwrap());
    assert!(!store.revoke_token("a", 120).unwrap(), "already revoked");
    assert!(store.revoke_token(&b.id.to_string(), 130).unwrap());
    assert!(!store.revoke_token(&b.id.to_string(), 140).unwrap());
    assert!(!store.revoke_token("nobody", 150).unwrap());
    let revoked: Vec<Option<i64>> = store
        .tokens()
        .unwrap()
        .iter()
        .map(|t| t.revoked_at)
        .collect();
    assert_eq!(
        revoked,
        vec![Some(110), Some(130)],
        "the first revocation's time stays"
    );
    assert_eq!((a.revoked_at, b.revoked_at), (None, None));
}

/// The lookup that authenticates a request finds the live tokens with that prefix, with
/// their stored hashes; revoked tokens and other prefixes never come back.
pub fn revoked_tokens_are_not_live(store: &dyn Store) {
    let a = store
        .insert_token("a", "hash-a", "stk_same", TokenRole::Admin, 100)
        .unwrap();
    let b = store
        .insert_token("b", "hash-b", "stk_same", TokenRole::Read, 100)
        .unwrap();
    store
        .insert_token("c", "hash-c", "stk_other", TokenRole::Admin, 100)
        .unwrap();
    let live = |prefix: &str| -> Vec<(i64, String)> {
        let found = store.live_tokens_with_prefix(prefix).unwrap();
        // The role comes with the row that authenticates.
        for (row, _) in &found {
            assert_eq!(
                row.role,
                if row.id == b.id {
                    TokenRole::Read
                } else {
                    TokenRole::Admin
                }
            );
        }
        let mut found: Vec<(i64, String)> = found
            .into_iter()
            .map(|(row, hash)| (row.id, hash))
            .collect();
        found.sort();
        found
    };
    assert_eq!(
        live("stk_same"),
        vec![(a.id, "hash-a".to_owned()), (b.id, "hash-b".to_owned())]
    );
    assert!(store.revoke_token("a", 110).unwrap());
    assert_eq!(live("stk_same"), vec![(b.id, "hash-b".to_owned())]);
    assert!(live("stk_none").is_empty());
}

/// A use is recorded as the token's last use (the latest wins); other tokens are untouched.
pub fn touching_a_token_records_its_last_use(store: &dyn Store) {
    let a = store
        .insert_token("a", "hash-a", "stk_a", TokenRole::Admin, 100)
        .unwrap();
    let b = store
        .insert_token("b", "hash-b", "stk_b", TokenRole::Admin, 100)
        .unwrap();
    store.touch_token(a.id, 200).unwrap();
    store.touch_token(a.id, 300).unwrap();
    let used: Vec<(i64, Option<i64>)> = store
        .tokens()
        .unwrap()
        .iter()
        .map(|t| (t.id, t.last_used_at))
        .collect();
    assert_eq!(used, vec![(a.id, Some(300)), (b.id, None)]);
    let (row, _) = store.live_tokens_with_prefix("stk_a").unwrap().remove(0);
    assert_eq!(row.last_used_at, Some(300));
}

//! Browser sessions: opened for a token, live until they expire or their token is revoked,
//! ended one by one with the expired ones swept along.

use crate::model::TokenRole;
use crate::{SessionRow, Store};

/// A session of `token_id` with id hash `id_hash`, created at 100, expiring at `expires_at`.
fn session(id_hash: &str, token_id: i64, expires_at: i64) -> SessionRow {
    SessionRow {
        id_hash: id_hash.into(),
        token_id,
        csrf_token: format!("csrf-{id_hash}"),
        created_at: 100,
        expires_at,
        // Not stored: a session reads back with its token's role.
        role: TokenRole::Admin,
        token_name: String::new(),
        workers: None,
    }
}

/// A session reads back with its token, its token's role and CSRF token while it is live: until its expiry
/// (exclusive) and while its token is not revoked; an unknown id hash is no session.
pub fn sessions_live_until_expiry_or_revocation(store: &dyn Store) {
    let token = store
        .insert_token("web", "hash-web", "stk_web", TokenRole::Admin, 50)
        .unwrap();
    let other = store
        .insert_token("other", "hash-o", "stk_o", TokenRole::Read, 50)
        .unwrap();
    store
        .insert_session(&session("s1", token.id, 1_000))
        .unwrap();
    store
        .insert_session(&session("s2", other.id, 5_000))
        .unwrap();
    let s1 = store
        .session("s1", 999)
        .unwrap()
        .expect("live before its expiry");
    assert_eq!(
        (
            s1.id_hash.as_str(),
            s1.token_id,
            s1.csrf_token.as_str(),
            s1.created_at,
            s1.expires_at
        ),
        ("s1", token.id, "csrf-s1", 100, 1_000)
    );
    assert!(
        store.session("s1", 1_000).unwrap().is_none(),
        "expired at its expiry"
    );
    assert!(store.session("nope", 500).unwrap().is_none());
    let s2 = store.session("s2", 500).unwrap().expect("live");
    assert_eq!(
        (s1.role, s2.role),
        (TokenRole::Admin, TokenRole::Read),
        "a session has its token's role"
    );
    assert!(store.revoke_token("other", 600).unwrap());
    assert!(
        store.session("s2", 700).unwrap().is_none(),
        "a revoked token's sessions end with it"
    );
}

/// Ending a session removes it (and only it among the live ones) and drops every session
/// expired by then.
pub fn deleting_a_session_drops_the_expired_ones(store: &dyn Store) {
    let token = store
        .insert_token("web", "hash-web", "stk_web", TokenRole::Admin, 50)
        .unwrap();
    for (id_hash, expires_at) in [("old", 200), ("ends", 5_000), ("keeps", 5_000)] {
        store
            .insert_session(&session(id_hash, token.id, expires_at))
            .unwrap();
    }
    // `old` is still there for a reader whose clock is behind the sweep.
    assert!(store.session("old", 150).unwrap().is_some());
    store.delete_session("ends", 300).unwrap();
    assert!(store.session("ends", 400).unwrap().is_none());
    assert!(store.session("keeps", 400).unwrap().is_some());
    assert!(
        store.session("old", 150).unwrap().is_none(),
        "the expired session was dropped, not only hidden"
    );
    store.delete_session("unknown", 400).unwrap();
    assert!(store.session("keeps", 400).unwrap().is_some());
}

//! API tokens: the `stask` permission.
//!
//! A token is 32 random bytes shown once at creation; only its SHA-256 is stored (a token has
//! full entropy, so a slow password hash adds nothing) with a short clear prefix as lookup key.
//! Verification compares hashes in constant time.

use crate::model::{TokenRole, TokenRow};
use crate::store::{Store, StoreResult};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that makes sTask tokens recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "stask_";

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates and stores a token with its role; returns its row and the secret (shown once).
pub fn create_token(
    store: &dyn Store,
    name: &str,
    role: TokenRole,
    now: i64,
) -> StoreResult<(TokenRow, String)> {
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let row = store.insert_token(
        name,
        &hash_token(&secret),
        &lookup_prefix(&secret),
        role,
        now,
    )?;
    Ok((row, secret))
}

/// Characters of a token kept in clear as its lookup key (`stask_` + 6 hex digits): they
/// narrow the lookup to a few rows without revealing the rest of the secret.
fn lookup_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

/// The live token matching `presented`, if any.
pub fn verify(store: &dyn Store, presented: &str) -> StoreResult<Option<TokenRow>> {
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 200 {
        return Ok(None);
    }
    let hash = hash_token(presented);
    // Rows are found by the non-secret prefix; the hash is compared in constant time.
    let found = store
        .live_tokens_with_prefix(&lookup_prefix(presented))?
        .into_iter()
        .find(|(_, stored)| bool::from(stored.as_bytes().ct_eq(hash.as_bytes())))
        .map(|(row, _)| row);
    Ok(found)
}

/// Validates a token name given on the command line.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        Err("token name must be 1-100 printable characters".into())
    } else {
        Ok(())
    }
}

/// How long a browser session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// A new session's secrets: the cookie value (shown once) and the CSRF token.
pub struct NewSession {
    /// Cookie value; only its hash is stored.
    pub id: String,
    /// CSRF token for `X-CSRF-TOKEN`.
    pub csrf_token: String,
    /// Expiry (UNIX ms).
    pub expires_at: i64,
}

/// Opens a session for a verified token.
pub fn open_session(store: &dyn Store, token: &TokenRow, now: i64) -> StoreResult<NewSession> {
    let id = hex::encode(rand::random::<[u8; 32]>());
    let csrf_token = hex::encode(rand::random::<[u8; 24]>());
    let expires_at = now + SESSION_TTL_MS;
    store.insert_session(&crate::store::SessionRow {
        id_hash: hash_token(&id),
        token_id: token.id,
        csrf_token: csrf_token.clone(),
        created_at: now,
        expires_at,
        role: token.role,
        token_name: token.name.clone(),
        workers: token.workers.clone(),
    })?;
    Ok(NewSession {
        id,
        csrf_token,
        expires_at,
    })
}

/// Whether two secrets are equal, compared in constant time.
pub fn secrets_match(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

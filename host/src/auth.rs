//! API tokens: the `stask` permission.
//!
//! A token is 32 random bytes shown once at creation; only its SHA-256 is stored (a token has
//! full entropy, so a slow password hash adds nothing) with a short clear prefix as lookup key.
//! Verification compares hashes in constant time.

use crate::model::TokenRow;
use crate::store::{Store, StoreResult};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that makes sTask tokens recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "stask_";

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates and stores a token; returns its row and the secret (shown once).
pub fn create_token(store: &dyn Store, name: &str, now: i64) -> StoreResult<(TokenRow, String)> {
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let row = store.insert_token(name, &hash_token(&secret), &lookup_prefix(&secret), now)?;
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

//! `TokenStore` for SQLite.

use super::SqliteStore;
use crate::model::{TokenRole, TokenRow};
use crate::rows::{session_from_row, token_from_row, SESSION_COLUMNS, TOKEN_COLUMNS};
use crate::{SessionRow, StoreError, StoreResult, TokenStore};
use rusqlite::params;

impl TokenStore for SqliteStore {
    fn insert_token(
        &self,
        name: &str,
        hash: &str,
        prefix: &str,
        role: TokenRole,
        now: i64,
    ) -> StoreResult<TokenRow> {
        self.write(|conn| {
            let inserted = conn.execute(
                &self.sql("INSERT INTO s_tokens (name, token_hash, prefix, created_at, role) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![name, hash, prefix, now, role.name()],
            );
            match inserted {
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    return Err(StoreError::Conflict {
                        message: format!(
                            "a token named '{name}' already exists; revoke it first or pick another name"
                        ),
                        source: Some(crate::SharedError::new(e)),
                    })
                }
                other => other?,
            };
            let id = conn.last_insert_rowid();
            conn.prepare(&self.prefix.apply(&format!(
                "SELECT {TOKEN_COLUMNS} FROM s_tokens WHERE id = ?1"
            )))?
                .query_and_then([id], |r| token_from_row(r))?
                .next()
                .unwrap_or_else(|| Err(StoreError::internal(format!("token {id} vanished"))))
        })
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        self.read(|conn| {
            conn.prepare(
                &self
                    .prefix
                    .apply(&format!("SELECT {TOKEN_COLUMNS} FROM s_tokens ORDER BY id")),
            )?
            .query_and_then([], |r| token_from_row(r))?
            .collect()
        })
    }

    fn revoke_token(&self, name_or_id: &str, now: i64) -> StoreResult<bool> {
        self.write(|conn| {
            let n = conn.execute(
                &self.sql(
                    "UPDATE s_tokens SET revoked_at = ?2
                  WHERE revoked_at IS NULL AND (name = ?1 OR CAST(id AS TEXT) = ?1)",
                ),
                params![name_or_id, now],
            )?;
            Ok(n > 0)
        })
    }

    fn live_tokens_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(TokenRow, String)>> {
        self.read(|conn| {
            conn.prepare_cached(&self.prefix.apply(&format!(
                "SELECT {TOKEN_COLUMNS}, token_hash FROM s_tokens
                  WHERE prefix = ?1 AND revoked_at IS NULL"
            )))?
            .query_and_then([prefix], |r| Ok((token_from_row(r)?, r.get(8)?)))?
            .collect()
        })
    }

    fn touch_token(&self, id: i64, now: i64) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                &self.sql("UPDATE s_tokens SET last_used_at = ?2 WHERE id = ?1"),
                params![id, now],
            )?;
            Ok(())
        })
    }

    fn restrict_token(&self, id: i64, workers: Option<&[String]>) -> StoreResult<bool> {
        let text = crate::rows::workers_text(workers);
        self.write(|conn| {
            let n = conn.execute(
                &self.sql("UPDATE s_tokens SET workers = ?2 WHERE id = ?1"),
                params![id, text],
            )?;
            Ok(n > 0)
        })
    }

    fn insert_session(&self, session: &SessionRow) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                &self.sql(
                    "INSERT INTO s_sessions (id_hash, token_id, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                ),
                params![
                    session.id_hash,
                    session.token_id,
                    session.csrf_token,
                    session.created_at,
                    session.expires_at
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        self.read(|conn| {
            conn.prepare_cached(&self.prefix.apply(&format!(
                "SELECT {SESSION_COLUMNS}
                   FROM s_sessions s JOIN s_tokens t ON t.id = s.token_id
                  WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND t.revoked_at IS NULL"
            )))?
            .query_and_then(params![id_hash, now], |r| session_from_row(r))?
            .next()
            .transpose()
        })
    }

    fn delete_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                &self.sql("DELETE FROM s_sessions WHERE id_hash = ?1 OR expires_at <= ?2"),
                params![id_hash, now],
            )?;
            Ok(())
        })
    }
}

//! `TokenStore` for MySQL.

use super::{code, params, MysqlStore, ER_DUP_ENTRY};
use crate::model::{TokenRole, TokenRow};
use crate::rows::{token_from_row, RowRead, SESSION_COLUMNS, TOKEN_COLUMNS};
use std::sync::LazyLock;

/// A live session with its token's role.
static SESSION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM s_sessions s JOIN s_tokens t ON t.id = s.token_id
          WHERE s.id_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL"
    )
});

/// Live tokens with a lookup prefix, their hash last.
static WITH_PREFIX_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TOKEN_COLUMNS}, token_hash FROM s_tokens WHERE prefix = ? AND revoked_at IS NULL"
    )
});
use crate::{SessionRow, StoreError, StoreResult, TokenStore};
use mysql::prelude::Queryable;

impl TokenStore for MysqlStore {
    fn insert_token(
        &self,
        name: &str,
        hash: &str,
        prefix: &str,
        role: TokenRole,
        now: i64,
    ) -> StoreResult<TokenRow> {
        let mut conn = self.conn()?;
        let inserted = conn.exec_drop(
            &*self.sql(
                "INSERT INTO s_tokens (name, token_hash, prefix, created_at, role) VALUES (?, ?, ?, ?, ?)",
            ),
            params![name, hash, prefix, now, role.name()],
        );
        match inserted {
            Ok(()) => {}
            // The unique key on the live name (`live_name`, NULL once revoked).
            Err(e) if code(&e) == Some(ER_DUP_ENTRY) => {
                return Err(StoreError::Conflict {
                    message: format!(
                    "a token named '{name}' already exists; revoke it first or pick another name"
                ),
                    source: Some(crate::SharedError::new(e)),
                })
            }
            Err(e) => return Err(e.into()),
        }
        let id = conn.last_insert_id();
        let row: Option<mysql::Row> = conn.exec_first(
            self.dynamic(&format!(
                "SELECT {TOKEN_COLUMNS} FROM s_tokens WHERE id = ?"
            )),
            params![id],
        )?;
        token_from_row(&row.ok_or_else(|| StoreError::internal("inserted token vanished"))?)
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        let rows: Vec<mysql::Row> = self
            .conn()?
            .query(self.dynamic(&format!("SELECT {TOKEN_COLUMNS} FROM s_tokens ORDER BY id")))?;
        rows.iter().map(token_from_row).collect()
    }

    fn revoke_token(&self, name_or_id: &str, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(
                "UPDATE s_tokens SET revoked_at = ?
                  WHERE revoked_at IS NULL AND (name = ? OR CAST(id AS CHAR) = ?)",
            ),
            params![now, name_or_id, name_or_id],
        )?;
        Ok(conn.affected_rows() > 0)
    }

    fn live_tokens_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(TokenRow, String)>> {
        let rows: Vec<mysql::Row> = self
            .conn()?
            .exec(&*self.sql(&WITH_PREFIX_SQL), params![prefix])?;
        rows.iter()
            .map(|r| Ok((token_from_row(r)?, r.col(8)?)))
            .collect()
    }

    fn touch_token(&self, id: i64, now: i64) -> StoreResult<()> {
        self.conn()?.exec_drop(
            &*self.sql("UPDATE s_tokens SET last_used_at = ? WHERE id = ?"),
            params![now, id],
        )?;
        Ok(())
    }

    fn restrict_token(&self, id: i64, workers: Option<&[String]>) -> StoreResult<bool> {
        let text = crate::rows::workers_text(workers);
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql("UPDATE s_tokens SET workers = ? WHERE id = ?"),
            params![text, id],
        )?;
        // Matched rows are counted (the session's CLIENT_FOUND_ROWS), so an unchanged list
        // still answers true.
        Ok(conn.affected_rows() > 0)
    }

    fn insert_session(&self, s: &SessionRow) -> StoreResult<()> {
        self.conn()?.exec_drop(
            &*self.sql(
                "INSERT INTO s_sessions (id_hash, token_id, csrf_token, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?)",
            ),
            params![
                s.id_hash.as_str(),
                s.token_id,
                s.csrf_token.as_str(),
                s.created_at,
                s.expires_at
            ],
        )?;
        Ok(())
    }

    fn session(&self, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        let row: Option<mysql::Row> = self
            .conn()?
            .exec_first(&*self.sql(&SESSION_SQL), params![id_hash, now])?;
        row.as_ref().map(crate::rows::session_from_row).transpose()
    }

    fn delete_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        self.conn()?.exec_drop(
            &*self.sql("DELETE FROM s_sessions WHERE id_hash = ? OR expires_at <= ?"),
            params![id_hash, now],
        )?;
        Ok(())
    }
}

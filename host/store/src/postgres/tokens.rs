//! `TokenStore` for PostgreSQL.

use super::{prepared, PgStore};
use crate::model::{TokenRole, TokenRow};
use crate::rows::{token_from_row, SESSION_COLUMNS, TOKEN_COLUMNS};
use std::sync::LazyLock;

/// A live session with its token's role.
static SESSION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS} FROM s_sessions s JOIN s_tokens t ON t.id = s.token_id
          WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL"
    )
});

/// Live tokens with a lookup prefix, their hash last.
static WITH_PREFIX_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TOKEN_COLUMNS}, token_hash FROM s_tokens WHERE prefix = $1 AND revoked_at IS NULL"
    )
});
use crate::{SessionRow, StoreError, StoreResult, TokenStore};
use postgres::error::SqlState;

impl TokenStore for PgStore {
    fn insert_token(
        &self,
        name: &str,
        hash: &str,
        prefix: &str,
        role: TokenRole,
        now: i64,
    ) -> StoreResult<TokenRow> {
        let (name, hash, prefix) = (name.to_owned(), hash.to_owned(), prefix.to_owned());
        self.run(move |conn| {
            let inserted = conn.query_one(
                &format!(
                    "INSERT INTO s_tokens (name, token_hash, prefix, created_at, role)
                     VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
                ),
                &[&name, &hash, &prefix, &now, &role.name()],
            );
            match inserted {
                Ok(row) => token_from_row(&row),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(StoreError::Conflict {
                    message: format!(
                        "a token named '{name}' already exists; revoke it first or pick another name"
                    ),
                    source: Some(crate::SharedError::new(super::PgMessage::new(e))),
                }),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn tokens(&self) -> StoreResult<Vec<TokenRow>> {
        self.run(|conn| {
            conn.query(
                &format!("SELECT {TOKEN_COLUMNS} FROM s_tokens ORDER BY id"),
                &[],
            )?
            .iter()
            .map(token_from_row)
            .collect()
        })
    }

    fn revoke_token(&self, name_or_id: &str, now: i64) -> StoreResult<bool> {
        let name_or_id = name_or_id.to_owned();
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE s_tokens SET revoked_at = $2
                  WHERE revoked_at IS NULL AND (name = $1 OR id::text = $1)",
                &[&name_or_id, &now],
            )?;
            Ok(n > 0)
        })
    }

    fn live_tokens_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(TokenRow, String)>> {
        let prefix = prefix.to_owned();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &WITH_PREFIX_SQL)?;
            client
                .query(&stmt, &[&prefix])?
                .iter()
                .map(|r| Ok((token_from_row(r)?, r.try_get(8)?)))
                .collect()
        })
    }

    fn touch_token(&self, id: i64, now: i64) -> StoreResult<()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE s_tokens SET last_used_at = $2 WHERE id = $1",
                &[&id, &now],
            )?;
            Ok(())
        })
    }

    fn restrict_token(&self, id: i64, workers: Option<&[String]>) -> StoreResult<bool> {
        let text = crate::rows::workers_text(workers);
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE s_tokens SET workers = $2 WHERE id = $1",
                &[&id, &text],
            )?;
            Ok(n > 0)
        })
    }

    fn insert_session(&self, session: &SessionRow) -> StoreResult<()> {
        let s = session.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO s_sessions (id_hash, token_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &s.id_hash,
                    &s.token_id,
                    &s.csrf_token,
                    &s.created_at,
                    &s.expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        let id_hash = id_hash.to_owned();
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let stmt = prepared(client, cache, &SESSION_SQL)?;
            client
                .query_opt(&stmt, &[&id_hash, &now])?
                .as_ref()
                .map(crate::rows::session_from_row)
                .transpose()
        })
    }

    fn delete_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        let id_hash = id_hash.to_owned();
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM s_sessions WHERE id_hash = $1 OR expires_at <= $2",
                &[&id_hash, &now],
            )?;
            Ok(())
        })
    }
}

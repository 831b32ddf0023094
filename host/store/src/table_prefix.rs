//! `STASK_TABLE_PREFIX`: sTask's tables beside a CMS's own, in one database.
//!
//! Every object sTask creates — tables, indexes, triggers, functions, notification channels —
//! is named `s_...` in the SQL the drivers and the migrations are written in. A prefix such as
//! `evo_` turns each of those words into `evo_s_...` as the SQL is sent, so two prefixes in
//! one database are two independent installations. The rule that makes this safe: in our own
//! SQL text, a word that starts with `s_` always names one of our objects (no column does),
//! and values never appear in SQL text (they are bound parameters).

use crate::{StoreError, StoreResult};
use parking_lot::RwLock;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// The longest prefix accepted: MySQL's identifiers end at 64 characters, and our longest
/// object name (an index) is under 32.
pub const MAX_PREFIX_LEN: usize = 24;

/// A validated table prefix (possibly empty) and the rewritten statements it has produced.
#[derive(Debug, Default)]
pub struct TablePrefix {
    prefix: String,
    /// Statements rewritten so far, keyed by the address of their `'static` text: the hot
    /// paths rewrite each statement once per store, not once per call.
    cache: RwLock<HashMap<(usize, usize), Arc<str>>>,
}

impl Clone for TablePrefix {
    fn clone(&self) -> Self {
        TablePrefix {
            prefix: self.prefix.clone(),
            cache: RwLock::default(),
        }
    }
}

impl TablePrefix {
    /// Checks a prefix: ASCII letters, digits and `_`, at most [`MAX_PREFIX_LEN`] characters
    /// (so it never needs quoting in any backend's SQL).
    pub fn new(prefix: &str) -> StoreResult<TablePrefix> {
        let valid = prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(StoreError::Config {
                message: format!(
                    "invalid table prefix '{prefix}': use at most {MAX_PREFIX_LEN} ASCII \
                     letters, digits and '_' (e.g. 'evo_')"
                ),
                source: None,
            });
        }
        Ok(TablePrefix {
            prefix: prefix.to_owned(),
            cache: RwLock::default(),
        })
    }

    /// No prefix: tables are `s_workers`, `s_tasks`, ...
    pub fn none() -> TablePrefix {
        TablePrefix::default()
    }

    /// The prefix itself (empty for none).
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// Whether there is no prefix (the SQL is sent as written).
    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty()
    }

    /// `sql` with every word that starts with `s_` prefixed. Borrowed when there is no prefix.
    pub fn apply<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if self.prefix.is_empty() {
            return Cow::Borrowed(sql);
        }
        let bytes = sql.as_bytes();
        let mut out = String::with_capacity(sql.len() + 8 * self.prefix.len());
        let mut copied = 0;
        for (i, _) in sql.match_indices("s_") {
            let starts_word = i == 0 || !is_word_byte(bytes[i - 1]);
            if starts_word {
                out.push_str(&sql[copied..i]);
                out.push_str(&self.prefix);
                copied = i;
            }
        }
        out.push_str(&sql[copied..]);
        Cow::Owned(out)
    }

    /// [`TablePrefix::apply`] for a statement written in the code, rewritten once and kept
    /// (the hot paths call this on every statement: without a prefix it is a copy of the
    /// reference, with one a read-locked map lookup).
    pub fn statement(&self, sql: &'static str) -> Sql {
        if self.prefix.is_empty() {
            return Sql::Written(sql);
        }
        let key = (sql.as_ptr() as usize, sql.len());
        if let Some(done) = self.cache.read().get(&key) {
            return Sql::Rewritten(done.clone());
        }
        let done: Arc<str> = Arc::from(self.apply(sql).as_ref());
        self.cache.write().insert(key, done.clone());
        Sql::Rewritten(done)
    }
}

/// A statement as sent: the text written in the code, or its prefixed rewrite.
#[derive(Debug, Clone)]
pub enum Sql {
    /// No prefix: the text as written.
    Written(&'static str),
    /// The text with the prefix, shared by every use of the statement.
    Rewritten(Arc<str>),
}

impl std::ops::Deref for Sql {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Sql::Written(sql) => sql,
            Sql::Rewritten(sql) => sql,
        }
    }
}

impl AsRef<str> for Sql {
    fn as_ref(&self) -> &str {
        self
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_starting_with_s_underscore_gets_the_prefix() {
        let p = TablePrefix::new("evo_").unwrap();
        assert_eq!(
            p.apply("SELECT t.id FROM s_tasks t JOIN s_task_logs l ON l.task_id = t.id"),
            "SELECT t.id FROM evo_s_tasks t JOIN evo_s_task_logs l ON l.task_id = t.id"
        );
        assert_eq!(
            p.apply("CREATE INDEX s_tasks_claim ON s_tasks(run_at); NOTIFY s_work"),
            "CREATE INDEX evo_s_tasks_claim ON evo_s_tasks(run_at); NOTIFY evo_s_work"
        );
        // Words that merely contain `s_` are columns or keywords: untouched.
        assert_eq!(
            p.apply("UPDATE s_tasks SET status = 10, cancel_requests_x = 0 WHERE tasks_done"),
            "UPDATE evo_s_tasks SET status = 10, cancel_requests_x = 0 WHERE tasks_done"
        );
        assert_eq!(p.apply("s_hosts"), "evo_s_hosts");
        assert_eq!(p.apply("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn no_prefix_borrows_the_statement() {
        let p = TablePrefix::none();
        assert!(matches!(p.apply("SELECT * FROM s_tasks"), Cow::Borrowed(_)));
    }

    #[test]
    fn statements_are_rewritten_once() {
        let p = TablePrefix::new("cms2_").unwrap();
        let a = p.statement("SELECT id FROM s_workers");
        let b = p.statement("SELECT id FROM s_workers");
        assert_eq!(&*a, "SELECT id FROM cms2_s_workers");
        match (a, b) {
            (Sql::Rewritten(a), Sql::Rewritten(b)) => assert!(Arc::ptr_eq(&a, &b)),
            other => panic!("rewritten: {other:?}"),
        }
        assert!(matches!(
            TablePrefix::none().statement("SELECT 1 FROM s_workers"),
            Sql::Written("SELECT 1 FROM s_workers")
        ));
    }

    #[test]
    fn a_prefix_that_would_need_quoting_is_refused() {
        for bad in [
            "evo-",
            "evo ",
            "x;DROP",
            "é_",
            &"p".repeat(MAX_PREFIX_LEN + 1),
        ] {
            let err = TablePrefix::new(bad).unwrap_err();
            assert!(matches!(err, StoreError::Config { .. }), "{bad}: {err}");
        }
        assert!(TablePrefix::new("").unwrap().is_empty());
        assert_eq!(TablePrefix::new("Evo_2").unwrap().as_str(), "Evo_2");
    }
}

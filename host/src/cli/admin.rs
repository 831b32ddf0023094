//! `workers`, `stats` and `token` commands.

use super::{engine, open_existing, CliError, CliResult};
use crate::clock::{now_ms, rfc3339};
use crate::model::TokenRole;
use crate::plugins::FileLoad;
use crate::store::WorkerFilter;
use crate::views::WorkerView;
use clap::Subcommand;
use std::path::PathBuf;

/// `stask workers ...`
#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// List workers, ordered by position.
    List {
        /// Only this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Only active (true) or inactive (false) workers.
        #[arg(long)]
        active: Option<bool>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load new and changed libraries in plugins.d/ and register their workers.
    Discover,
    /// Discover, then rewrite every loaded worker's row from its library.
    Rescan,
    /// Delete orphaned workers (their task history stays).
    CleanOrphaned,
    /// Activate a worker.
    Activate {
        /// Identifier.
        identifier: String,
    },
    /// Deactivate a worker: its tasks stay pending until it is activated again.
    Deactivate {
        /// Identifier.
        identifier: String,
    },
    /// Pause a worker's queue: it still accepts tasks, which wait as pending until it is
    /// resumed (running tasks finish); holds on every host and across restarts.
    Pause {
        /// Identifier.
        identifier: String,
    },
    /// Resume a paused worker's queue: its waiting tasks run in their order.
    Resume {
        /// Identifier.
        identifier: String,
    },
    /// Show a worker's settings, or replace them with `--set JSON`.
    Settings {
        /// Identifier.
        identifier: String,
        /// New settings (a JSON object).
        #[arg(long)]
        set: Option<String>,
    },
}

pub(super) fn workers(home: Option<PathBuf>, cmd: WorkersCommand) -> CliResult {
    match cmd {
        WorkersCommand::List {
            scope,
            active,
            json,
        } => {
            let (_, store) = open_existing(home)?;
            let workers = store.workers(&WorkerFilter { scope, active })?;
            if json {
                let list: Vec<WorkerView> = workers.iter().map(WorkerView::from).collect();
                outln!("{}", serde_json::to_string(&list).unwrap_or_default());
                return Ok(());
            }
            outln!(
                "{:<20} {:<12} {:<9} {:<7} {:<7} {:<24} ACTIONS",
                "IDENTIFIER",
                "SCOPE",
                "STATE",
                "ACTIVE",
                "PAUSED",
                "VERSION"
            );
            for w in workers {
                outln!(
                    "{:<20} {:<12} {:<9} {:<7} {:<7} {:<24} {}",
                    w.identifier,
                    w.scope,
                    w.state.name(),
                    if w.active { "yes" } else { "no" },
                    if w.paused { "yes" } else { "no" },
                    w.version.as_deref().unwrap_or("-"),
                    w.action_names().join(",")
                );
                if let Some(error) = w.load_error {
                    outln!("    load error: {error}");
                }
            }
            Ok(())
        }
        WorkersCommand::Discover | WorkersCommand::Rescan => {
            let engine = engine(home)?;
            let outcomes =
                super::discover::discover(&engine, matches!(cmd, WorkersCommand::Rescan))?;
            for (file, outcome) in outcomes {
                match outcome {
                    FileLoad::Loaded {
                        identifier,
                        version,
                    } => outln!("{file}: loaded {identifier} {version}"),
                    FileLoad::Unchanged => outln!("{file}: unchanged"),
                    FileLoad::Refused(reason) => outln!("{file}: refused: {reason}"),
                }
            }
            Ok(())
        }
        WorkersCommand::CleanOrphaned => {
            let removed = engine(home)?.clean_orphaned_workers()?;
            outln!(
                "removed {} orphaned workers{}",
                removed.len(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", removed.join(", "))
                }
            );
            Ok(())
        }
        WorkersCommand::Activate { identifier } => {
            engine(home)?.set_worker_active(&identifier, true)?;
            outln!("{identifier} activated");
            Ok(())
        }
        WorkersCommand::Deactivate { identifier } => {
            engine(home)?.set_worker_active(&identifier, false)?;
            outln!("{identifier} deactivated: its tasks stay pending until it is activated");
            Ok(())
        }
        WorkersCommand::Pause { identifier } => {
            engine(home)?.set_worker_paused(&identifier, true)?;
            outln!("{identifier} paused: new tasks are accepted and wait until it is resumed");
            Ok(())
        }
        WorkersCommand::Resume { identifier } => {
            engine(home)?.set_worker_paused(&identifier, false)?;
            outln!("{identifier} resumed");
            Ok(())
        }
        WorkersCommand::Settings { identifier, set } => {
            let engine = engine(home)?;
            let worker = match set {
                None => engine.worker(&identifier)?,
                Some(text) => {
                    let settings: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| CliError::new(5, format!("--set is not valid JSON: {e}")))?;
                    engine.update_worker_settings(&identifier, &settings)?
                }
            };
            outln!(
                "{}",
                serde_json::to_string_pretty(&worker.settings).unwrap_or_default()
            );
            Ok(())
        }
    }
}

pub(super) fn stats(home: Option<PathBuf>, json: bool) -> CliResult {
    let (_, store) = open_existing(home)?;
    let stats = store.stats()?;
    if json {
        outln!("{}", serde_json::to_string(&stats).unwrap_or_default());
    } else {
        outln!(
            "pending {}  preparing {}  running {}  completed {}  failed {}  cancelled {}  total {}",
            stats.pending,
            stats.preparing,
            stats.running,
            stats.completed,
            stats.failed,
            stats.cancelled,
            stats.total
        );
    }
    Ok(())
}

/// `stask token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it alone on the last line (shown once).
    Create {
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// What it may do: `read` (GET only), `operate` (also create, cancel, retry and
        /// delete tasks, upload files) or `admin` (everything).
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: TokenRole,
        /// Restrict it to the tasks of these workers (identifiers, comma-separated): it may
        /// create, cancel, retry or delete only their tasks, and lists only theirs.
        #[arg(long, value_delimiter = ',')]
        workers: Option<Vec<String>>,
    },
    /// List tokens (never the secrets).
    List,
    /// Revoke a token by name or id.
    Revoke {
        /// Name or id.
        token: String,
    },
}

/// `--role`: a role name, any case.
fn parse_role(raw: &str) -> Result<TokenRole, String> {
    TokenRole::parse(raw)
        .ok_or_else(|| format!("--role must be one of read, operate, admin, got '{raw}'"))
}

pub(super) fn token(home: Option<PathBuf>, cmd: TokenCommand) -> CliResult {
    let (_, store) = open_existing(home)?;
    match cmd {
        TokenCommand::Create {
            name,
            role,
            workers,
        } => {
            crate::auth::validate_name(&name).map_err(|m| CliError::new(5, m))?;
            let workers: Option<Vec<String>> = workers.map(|w| {
                w.into_iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            });
            if workers.as_ref().is_some_and(Vec::is_empty) {
                return Err(CliError::new(5, "--workers needs at least one identifier"));
            }
            let (row, secret) = crate::auth::create_token(store.as_ref(), &name, role, now_ms())?;
            if let Some(w) = &workers {
                store.restrict_token(row.id, Some(w))?;
            }
            let only = workers.map_or_else(String::new, |w| {
                format!(", only the tasks of {}", w.join(", "))
            });
            eprintln!(
                "created token '{}' (id {}, role {}{only}); store it now, it is not shown again:",
                row.name, row.id, row.role
            );
            outln!("{secret}");
            Ok(())
        }
        TokenCommand::List => {
            outln!(
                "{:<5} {:<24} {:<8} {:<14} {:<26} {:<20} STATE",
                "ID",
                "NAME",
                "ROLE",
                "PREFIX",
                "CREATED",
                "WORKERS"
            );
            for t in store.tokens()? {
                let state = match (t.revoked_at, t.last_used_at) {
                    (Some(at), _) => format!("revoked {}", rfc3339(at)),
                    (None, Some(at)) => format!("last used {}", rfc3339(at)),
                    (None, None) => "never used".into(),
                };
                let workers = t.workers.as_ref().map_or("all".into(), |w| w.join(","));
                outln!(
                    "{:<5} {:<24} {:<8} {:<14} {:<26} {:<20} {state}",
                    t.id,
                    t.name,
                    t.role.name(),
                    t.prefix,
                    rfc3339(t.created_at),
                    workers
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { token } => {
            if store.revoke_token(&token, now_ms())? {
                outln!("revoked {token}");
                Ok(())
            } else {
                Err(CliError::new(
                    3,
                    format!("no live token named or numbered '{token}'"),
                ))
            }
        }
    }
}

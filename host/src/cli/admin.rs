//! `workers`, `stats` and `token` commands.

use super::{engine, open, CliError, CliResult};
use crate::clock::{now_ms, rfc3339};
use crate::plugins::FileLoad;
use crate::store::WorkerFilter;
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
    /// Load every library in plugins.d/ and register its worker.
    Discover,
}

pub(super) fn workers(home: Option<PathBuf>, cmd: WorkersCommand) -> CliResult {
    match cmd {
        WorkersCommand::List {
            scope,
            active,
            json,
        } => {
            let (_, store) = open(home)?;
            let workers = store.workers(&WorkerFilter { scope, active })?;
            if json {
                let list: Vec<_> = workers.iter().map(|w| w.to_json()).collect();
                println!("{}", serde_json::Value::Array(list));
                return Ok(());
            }
            println!(
                "{:<20} {:<12} {:<9} {:<7} {:<24} ACTIONS",
                "IDENTIFIER", "SCOPE", "STATE", "ACTIVE", "VERSION"
            );
            for w in workers {
                println!(
                    "{:<20} {:<12} {:<9} {:<7} {:<24} {}",
                    w.identifier,
                    w.scope,
                    w.state.name(),
                    if w.active { "yes" } else { "no" },
                    w.version.as_deref().unwrap_or("-"),
                    w.action_names().join(",")
                );
                if let Some(error) = w.load_error {
                    println!("    load error: {error}");
                }
            }
            Ok(())
        }
        WorkersCommand::Discover => {
            let engine = engine(home)?;
            for (file, outcome) in engine.registry.scan()? {
                match outcome {
                    FileLoad::Loaded {
                        identifier,
                        version,
                    } => println!("{file}: loaded {identifier} {version}"),
                    FileLoad::Unchanged => println!("{file}: unchanged"),
                    FileLoad::Refused(reason) => println!("{file}: refused: {reason}"),
                }
            }
            Ok(())
        }
    }
}

pub(super) fn stats(home: Option<PathBuf>, json: bool) -> CliResult {
    let (_, store) = open(home)?;
    let stats = store.stats()?;
    if json {
        println!("{}", serde_json::to_string(&stats).unwrap_or_default());
    } else {
        println!(
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
    },
    /// List tokens (never the secrets).
    List,
    /// Revoke a token by name or id.
    Revoke {
        /// Name or id.
        token: String,
    },
}

pub(super) fn token(home: Option<PathBuf>, cmd: TokenCommand) -> CliResult {
    let (_, store) = open(home)?;
    match cmd {
        TokenCommand::Create { name } => {
            crate::auth::validate_name(&name).map_err(|m| CliError::new(5, m))?;
            let (row, secret) = crate::auth::create_token(store.as_ref(), &name, now_ms())?;
            eprintln!(
                "created token '{}' (id {}); store it now, it is not shown again:",
                row.name, row.id
            );
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List => {
            println!(
                "{:<5} {:<24} {:<14} {:<26} STATE",
                "ID", "NAME", "PREFIX", "CREATED"
            );
            for t in store.tokens()? {
                let state = match (t.revoked_at, t.last_used_at) {
                    (Some(at), _) => format!("revoked {}", rfc3339(at)),
                    (None, Some(at)) => format!("last used {}", rfc3339(at)),
                    (None, None) => "never used".into(),
                };
                println!(
                    "{:<5} {:<24} {:<14} {:<26} {state}",
                    t.id,
                    t.name,
                    t.prefix,
                    rfc3339(t.created_at)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { token } => {
            if store.revoke_token(&token, now_ms())? {
                println!("revoked {token}");
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

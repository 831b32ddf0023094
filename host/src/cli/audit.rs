//! `stask audit`: the audit log as a table (or JSON), read from the store.

use super::{open_existing, CliError, CliResult};
use crate::clock::{parse_time, rfc3339};
use crate::store::AuditFilter;
use clap::Args;
use std::path::PathBuf;

/// `stask audit [--since ..] [--until ..] [--token ..] [--route ..] [--status 4xx]`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Recorded at or after (RFC 3339, `YYYY-MM-DD HH:MM:SS` or UNIX seconds).
    #[arg(long)]
    since: Option<String>,
    /// Recorded before.
    #[arg(long)]
    until: Option<String>,
    /// Only this token (name or id).
    #[arg(long)]
    token: Option<String>,
    /// Only this route template (`/stask/tasks/{id}/cancel`).
    #[arg(long)]
    route: Option<String>,
    /// Only this status class: 2xx, 3xx, 4xx or 5xx.
    #[arg(long)]
    status: Option<String>,
    /// At most this many entries (1-1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
    limit: i64,
    /// Print JSON lines (one entry each).
    #[arg(long)]
    json: bool,
}

pub(super) fn audit(home: Option<PathBuf>, args: AuditArgs) -> CliResult {
    let (_, store) = open_existing(home)?;
    let time = |raw: &Option<String>, flag: &str| {
        raw.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| CliError::new(5, format!("{flag}: {e}")))
    };
    let status_class = args
        .status
        .as_deref()
        .map(|s| {
            crate::store::audit::status_class(s.trim()).ok_or_else(|| {
                CliError::new(
                    5,
                    format!("--status must be 2xx, 3xx, 4xx or 5xx, not '{s}'"),
                )
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        token: args.token,
        route: args.route,
        status_class,
        since: time(&args.since, "--since")?,
        until: time(&args.until, "--until")?,
        limit: args.limit,
        offset: 0,
    };
    let (rows, total) = store.audit_entries(&filter)?;
    if args.json {
        for r in &rows {
            let e = &r.entry;
            outln!(
                "{}",
                serde_json::json!({
                    "id": r.id,
                    "at": rfc3339(e.recorded_at),
                    "who": e.token_name.as_deref().unwrap_or("anonymous"),
                    "token_id": e.token_id,
                    "role": e.role,
                    "via_session": e.via_session,
                    "method": e.method,
                    "route": e.route,
                    "target": e.target,
                    "created_ids": e.created_ids,
                    "status": e.status,
                    "client": e.client_addr,
                })
            );
        }
        return Ok(());
    }
    outln!(
        "{:<26} {:<20} {:<8} {:<7} {:<44} {:<6} {:<16} CLIENT",
        "AT",
        "WHO",
        "ROLE",
        "METHOD",
        "ROUTE",
        "STATUS",
        "TARGET"
    );
    for r in &rows {
        let e = &r.entry;
        let who = match (&e.token_name, e.via_session) {
            (Some(name), true) => format!("{name} (session)"),
            (Some(name), false) => name.clone(),
            (None, _) => "anonymous".into(),
        };
        let mut target = e.target.clone().unwrap_or_default();
        if let Some(created) = &e.created_ids {
            target = format!("{target} created={created}").trim().to_owned();
        }
        outln!(
            "{:<26} {:<20} {:<8} {:<7} {:<44} {:<6} {:<16} {}",
            rfc3339(e.recorded_at),
            who,
            e.role.as_deref().unwrap_or("-"),
            e.method,
            e.route,
            e.status,
            target,
            e.client_addr.as_deref().unwrap_or("-")
        );
    }
    eprintln!("{} of {total} entries", rows.len());
    Ok(())
}

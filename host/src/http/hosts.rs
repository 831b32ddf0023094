//! The hosts sharing this queue (`s_hosts`): with PostgreSQL several `stask serve` hosts use
//! one database, and any of them answers for all.

use super::{blocking, ApiError, AppState, ErrorBody};
use crate::clock::{now_ms, rfc3339};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// One host instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostView {
    /// Instance name (`hostname:pid:random`): the lease owner its running tasks show.
    pub name: String,
    /// Host version.
    pub version: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its latest heartbeat (RFC 3339).
    pub last_heartbeat: String,
    /// Whether it is alive: not stopped, and heard from within its lease. A host that is not
    /// live has its running tasks recovered by the others once their leases expire.
    pub live: bool,
    /// When it stopped cleanly, if it did.
    pub stopped_at: Option<String>,
    /// Tasks claimed or running there at its latest heartbeat.
    pub busy_slots: i64,
    /// Its pool size.
    pub pool_size: i64,
    /// Workers loaded there (active or not: the flag is shared by all hosts).
    pub workers: Vec<String>,
    /// Whether this is the host answering.
    pub this_host: bool,
}

/// `GET /stask/hosts` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostList {
    /// `true`.
    pub success: bool,
    /// Every registered host, oldest start first.
    pub hosts: Vec<HostView>,
    /// How many of them are live.
    pub live: usize,
    /// How far the database's clock is ahead of the answering host's own clock, in ms
    /// (negative: behind), as measured at its latest heartbeat: every host keeps the
    /// database's time, so a host whose clock is off shows it here. 0 with SQLite.
    pub clock_offset_ms: i64,
    /// The answering host's contact with the database: when it could not prove its leases
    /// (cut off from the database, or the database down), it stopped its runs.
    pub contact: ContactView,
}

/// The times the answering host lost contact with the database since it started.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Whether it is out of contact now.
    pub lost: bool,
    /// Episodes since it started (the one in progress included).
    pub episodes: u64,
    /// When the latest episode began: its runs were stopped then (RFC 3339).
    pub last_lost_at: Option<String>,
    /// When the latest episode ended: a lease renewal succeeded again (RFC 3339).
    pub last_regained_at: Option<String>,
    /// Runs the latest episode stopped.
    pub last_runs_stopped: usize,
}

impl From<crate::engine::runtime::ContactReport> for ContactView {
    fn from(r: crate::engine::runtime::ContactReport) -> Self {
        ContactView {
            lost: r.last.is_some_and(|e| e.regained_at.is_none()),
            episodes: r.episodes,
            last_lost_at: r.last.map(|e| rfc3339(e.lost_at)),
            last_regained_at: r.last.and_then(|e| e.regained_at).map(rfc3339),
            last_runs_stopped: r.last.map_or(0, |e| e.runs_stopped),
        }
    }
}

/// The hosts sharing this queue, with their liveness and load.
#[utoipa::path(get, path = "/stask/hosts", tag = "system",
    responses(
        (status = 200, description = "Registered hosts", body = HostList),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<HostList>, ApiError> {
    let engine = state.engine.clone();
    let rows = blocking(move || Ok(engine.hosts()?)).await?;
    let now = now_ms();
    let hosts: Vec<HostView> = rows
        .into_iter()
        .map(|h| HostView {
            live: h.live(now),
            this_host: h.name == state.engine.owner,
            started_at: rfc3339(h.started_at),
            last_heartbeat: rfc3339(h.last_heartbeat),
            stopped_at: h.stopped_at.map(rfc3339),
            name: h.name,
            version: h.version,
            busy_slots: h.busy_slots,
            pool_size: h.pool_size,
            workers: h.workers,
        })
        .collect();
    Ok(Json(HostList {
        success: true,
        live: hosts.iter().filter(|h| h.live).count(),
        hosts,
        clock_offset_ms: crate::clock::database_offset_ms(),
        contact: state.engine.contact_report().into(),
    }))
}

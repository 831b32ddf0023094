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
    }))
}

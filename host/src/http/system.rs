//! Health, version and statistics.

use super::{blocking, ApiError, AppState};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// `GET /stask/health`: liveness without credentials (nothing sensitive).
pub async fn health() -> Json<Value> {
    Json(json!({ "success": true, "status": "ok" }))
}

/// `GET /stask/version`: the seed's "configuration check".
pub async fn version() -> Json<Value> {
    Json(json!({
        "success": true,
        "name": "stask",
        "version": env!("CARGO_PKG_VERSION"),
        "plugin_api": crate::plugins::plugin_api_version(),
    }))
}

/// `GET /stask/stats`: counts per status.
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let stats = blocking(move || Ok(engine.store.stats()?)).await?;
    let mut body = serde_json::to_value(stats).unwrap_or_default();
    body["success"] = json!(true);
    Ok(Json(body))
}

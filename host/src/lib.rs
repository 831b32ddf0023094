//! sTask host: the daemon and CLI behind the `stask` binary.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of these modules.

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod events;
pub mod figures;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod model;
pub mod plugins;
pub mod store;
pub mod task_state;
pub mod views;

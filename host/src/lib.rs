//! sTask host: the daemon and CLI behind the `stask` binary.
//!
//! See `ARCHITECTURE.md` at the repository root for the map of these modules.

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cron;
pub mod engine;
pub mod events;
pub mod figures;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod views;

// The layers below, under the paths the rest of this crate uses.
pub use stask_plugin_host as plugins;
pub use stask_store as store;
pub use stask_store::{clock, model, task_state};

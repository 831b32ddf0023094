//! Worker plugins: checking, loading and registering the libraries in plugins.d/.
//! The only crate of the host that touches `abi_stable` and `libloading`.

pub mod cache_stats;
pub mod copies;
pub mod elf;
pub mod host_context;
pub mod isolation;
pub mod loader;
pub mod read;
pub mod registry;
pub mod services;
pub mod watch;

pub use host_context::TaskHooks;
pub use loader::{LoadError, LoadedWorker};
pub use registry::{ChangeHook, FileLoad, Registry, WorkerChange};
pub use services::{HostServices, TaskCreator};
pub use watch::PluginWatcher;

/// The plugin interface version this host is built against; it accepts plugins of the same
/// line (same major version, or same minor while 0.x: `stask_plugin_api::interface`).
pub fn plugin_api_version() -> &'static str {
    stask_plugin_api::INTERFACE_VERSION
}

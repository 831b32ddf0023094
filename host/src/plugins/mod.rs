//! Worker plugins: checking, loading and registering the libraries in plugins.d/.
//! Only this module touches `abi_stable` and `libloading`.

pub mod copies;
pub mod elf;
pub mod host_context;
pub mod isolation;
pub mod loader;
pub mod read;
pub mod registry;
pub mod watch;

pub use host_context::TaskHooks;
pub use loader::{LoadError, LoadedWorker};
pub use registry::{FileLoad, Registry};
pub use watch::PluginWatcher;

/// Version of `stask-plugin-api` this host accepts (0.x: same minor version).
pub fn plugin_api_version() -> &'static str {
    use abi_stable::library::RootModule;
    stask_plugin_api::abi::WorkerModuleRef::VERSION_STRINGS
        .version
        .as_str()
}

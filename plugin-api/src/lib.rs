//! The interface every sTask worker plugin builds against.
//!
//! A worker is a `cdylib` crate that implements [`Worker`] and calls [`export_worker!`]:
//!
//! ```ignore
//! use stask_plugin_api::{export_worker, Context, Output, TaskError, Worker, WorkerInfo};
//! use serde_json::Value;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Worker for Hello {
//!     fn info(&self) -> WorkerInfo {
//!         WorkerInfo::new("hello", "Hello").action("greet", "Greets someone")
//!     }
//!     fn run(&self, ctx: &Context<'_>, _action: &str, data: Value) -> Result<Output, TaskError> {
//!         let name = data["name"].as_str().unwrap_or("world");
//!         ctx.progress(50, "greeting");
//!         Ok(Output::text(format!("hello {name}")))
//!     }
//! }
//!
//! export_worker!(Hello);
//! ```
//!
//! Two layers live here:
//! - [`abi`]: the stable binary contract (one root module of two functions and one host-context
//!   trait), checked by `abi_stable` when the host loads a plugin. It is deliberately tiny:
//!   growth goes through the JSON documents exchanged by these functions and through
//!   [`abi::HostContext::call`]. Its version, [`INTERFACE_VERSION`], is this crate's own, and
//!   [`interface`] says which plugins a host accepts and which changes keep them loading.
//! - The safe layer ([`Worker`], [`Context`], [`Output`], [`TaskError`], [`WorkerInfo`]): plain
//!   Rust that plugin authors use; the [`export_worker!`] macro glues it to the ABI, catching
//!   panics so that a panicking worker fails its task instead of the host.
//!
//! A running task can ask the host for services beyond the ABI's four methods through
//! [`Context::call`]; the typed helpers wrap them, such as [`Context::create_task`], which
//! queues a follow-up task (with [`TaskOptions`]) that records the running task as its parent.
//! The list of services with their argument and answer documents is in [`protocol`]'s docs
//! ([`protocol::services`]).
#![warn(missing_docs)]

pub mod abi;
mod context;
mod export;
pub mod interface;
mod log_level;
pub mod protocol;
pub mod testing;
mod worker;

pub use context::Context;
pub use interface::INTERFACE_VERSION;
pub use log_level::LogLevel;
pub use protocol::{TaskOptions, TaskPriority};
pub use worker::{ActionInfo, Output, TaskError, Worker, WorkerInfo};

/// Re-exports used by [`export_worker!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{manifest, run};
    pub use abi_stable;
    pub use serde_json;
}

/// Version of the JSON protocol carried through the ABI ([`protocol`]). The host refuses plugins
/// that speak a newer major protocol than it knows.
pub const PROTOCOL_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    /// `export_worker!` spells out the symbol `abi_stable` looks for; keep it in step.
    #[test]
    fn export_macro_uses_abi_stable_loader_symbol() {
        let source = include_str!("export.rs");
        assert!(source.contains(abi_stable::library::ROOT_MODULE_LOADER_NAME));
    }
}

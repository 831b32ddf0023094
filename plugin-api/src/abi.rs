//! The stable binary contract between the host and a plugin.
//!
//! Everything here is layout-checked by `abi_stable` at load time, and the root module carries
//! [`crate::INTERFACE_VERSION`]. Changing what is here is a breaking change (a new interface
//! line, see [`crate::interface`]): every plugin must be rebuilt, and the host reports older
//! plugins as `error` with both versions. A host whose root module gains a field, even one
//! after the prefix, refuses every plugin built without it ([`crate::interface`] has the
//! measurement), so new capabilities travel as JSON ([`crate::protocol`]) or through
//! [`HostContext::call`], never as new fields.
#![allow(non_camel_case_types, non_local_definitions, missing_docs)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::{RRef, VersionStrings},
    std_types::{RResult, RStr, RString},
    StableAbi,
};

/// Services the host offers to a running task. Implemented by the host; plugins reach it through
/// [`crate::Context`].
#[sabi_trait]
pub trait HostContext: Send + Sync {
    /// Reports progress. `percent` is 0-100 or -1 when not given; `processed` and `total` are
    /// item counts or -1 when not given (the host derives the percentage and ETA from them).
    fn progress(&self, percent: i32, processed: i64, total: i64, message: RStr<'_>);

    /// Appends a line to the task's log. `level` is a [`crate::LogLevel`] as its integer
    /// ([`crate::LogLevel::as_u8`]); the receiving side reads it with
    /// [`crate::LogLevel::from_u8`].
    fn log(&self, level: u8, line: RStr<'_>);

    /// Whether cancellation (by a user or a timeout) was requested for this task.
    fn is_cancelled(&self) -> bool;

    /// Generic JSON call for host services added after this ABI was frozen (the list, with
    /// each service's argument and answer documents, is in [`crate::protocol`]'s docs).
    /// A failure answers `RErr` with a [`crate::protocol::CallError`] as JSON; an unknown
    /// method's names the services the host offers.
    #[sabi(last_prefix_field)]
    fn call(&self, method: RStr<'_>, args_json: RStr<'_>) -> RResult<RString, RString>;
}

/// A borrowed host context as passed to [`WorkerModule::run`].
pub type HostContextRef<'a> = HostContext_TO<'a, RRef<'a, ()>>;

/// The root module every plugin exports (through [`crate::export_worker!`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = WorkerModuleRef)))]
#[sabi(missing_field(panic))]
pub struct WorkerModule {
    /// Returns the worker's manifest as JSON ([`crate::protocol::Manifest`]).
    pub manifest: extern "C" fn() -> RString,
    /// Runs one task. `request` is a [`crate::protocol::RunRequest`] as JSON; the answer is a
    /// [`crate::protocol::RunOutcome`] as JSON. Never unwinds.
    #[sabi(last_prefix_field)]
    pub run: extern "C" fn(request: RStr<'_>, ctx: HostContextRef<'_>) -> RString,
}

impl RootModule for WorkerModuleRef {
    declare_root_module_statics! {WorkerModuleRef}
    const BASE_NAME: &'static str = "stask_worker";
    const NAME: &'static str = "stask_worker";
    /// The interface version (this crate's own version), checked by the host at load time.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(crate::INTERFACE_VERSION);
}

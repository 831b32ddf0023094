//! The host side of the plugin's `HostContext`: adapts the engine's [`TaskHooks`] to the ABI.
//!
//! A panic must never unwind out of these methods (abi_stable would `exit(1)` the process), so
//! each one runs its hook under `catch_unwind` and degrades to a no-op.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, RResult, RStr, RString};
use stask_plugin_api::abi::{HostContext, HostContextRef, HostContext_TO};
use stask_plugin_api::LogLevel;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What the engine does for a running task's calls (plain Rust; no ABI types).
pub trait TaskHooks: Send + Sync {
    /// Progress: percent 0-100 or -1; processed/total or -1.
    fn progress(&self, percent: i32, processed: i64, total: i64, message: &str);
    /// A log line at `level`.
    fn log(&self, level: LogLevel, line: &str);
    /// Whether cancellation was requested.
    fn is_cancelled(&self) -> bool;
    /// A generic service call; `Err` with a message for unknown methods.
    fn call(&self, method: &str, args_json: &str) -> Result<String, String>;
}

struct Adapter<'a>(&'a dyn TaskHooks);

impl HostContext for Adapter<'_> {
    fn progress(&self, percent: i32, processed: i64, total: i64, message: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.0.progress(percent, processed, total, message.as_str())
        }));
    }

    fn log(&self, level: u8, line: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.0.log(LogLevel::from_u8(level), line.as_str())
        }));
    }

    fn is_cancelled(&self) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.0.is_cancelled())).unwrap_or(false)
    }

    fn call(&self, method: RStr<'_>, args_json: RStr<'_>) -> RResult<RString, RString> {
        match catch_unwind(AssertUnwindSafe(|| {
            self.0.call(method.as_str(), args_json.as_str())
        })) {
            Ok(Ok(answer)) => RResult::ROk(RString::from(answer)),
            Ok(Err(message)) => RErr(RString::from(message)),
            Err(_) => RErr(RString::from("host error while serving the call")),
        }
    }
}

/// Lends `hooks` to a plugin call as a `HostContextRef` for the duration of `f`.
pub fn with_context<T>(hooks: &dyn TaskHooks, f: impl FnOnce(HostContextRef<'_>) -> T) -> T {
    let adapter = Adapter(hooks);
    let ctx: HostContextRef<'_> =
        HostContext_TO::from_ptr(abi_stable::sabi_types::RRef::new(&adapter), TD_Opaque);
    f(ctx)
}

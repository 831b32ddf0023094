//! The glue between a [`Worker`] and the ABI, used by [`export_worker!`](crate::export_worker).
//!
//! Both functions run inside `extern "C"` shims, so nothing here may unwind: every call into
//! worker code goes through [`guard`], which catches the panic and records its location with a
//! panic hook installed in the plugin's own copy of std (a host hook never sees plugin panics).

use crate::abi::HostContextRef;
use crate::context::Context;
use crate::protocol::{Manifest, RunOutcome, RunRequest};
use crate::worker::ErrorKind;
use crate::{Worker, PROTOCOL_VERSION};
use abi_stable::std_types::{RStr, RString};
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, turning a panic into `Err(message at file:line:col)`.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let message = panic_message(info.payload());
            let text = match info.location() {
                Some(at) => format!("{message} (at {}:{}:{})", at.file(), at.line(), at.column()),
                None => message,
            };
            let recorded = LAST_PANIC
                .try_with(|slot| *slot.borrow_mut() = Some(text))
                .is_ok();
            if !recorded {
                previous(info);
            }
        }));
    });
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) => {
            let recorded = LAST_PANIC.with(|slot| slot.borrow_mut().take());
            Err(recorded.unwrap_or_else(|| panic_message(&*payload)))
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Builds the manifest JSON of a worker.
pub fn manifest<W: Worker>(worker: impl FnOnce() -> &'static W, panic_unwind: bool) -> RString {
    let answer = guard(|| {
        let manifest = Manifest {
            protocol: PROTOCOL_VERSION,
            api_version: crate::INTERFACE_VERSION.to_owned(),
            panic_unwind,
            type_name: std::any::type_name::<W>().to_owned(),
            info: worker().info(),
        };
        serde_json::to_string(&manifest)
            .unwrap_or_else(|e| error_json(&format!("manifest not serializable: {e}")))
    });
    RString::from(answer.unwrap_or_else(|panic| error_json(&format!("panic in info(): {panic}"))))
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Runs one task request against a worker and encodes the outcome.
pub fn run<W: Worker>(
    worker: impl FnOnce() -> &'static W,
    request: RStr<'_>,
    host: HostContextRef<'_>,
) -> RString {
    let outcome = guard(|| {
        let request: RunRequest = match serde_json::from_str(request.as_str()) {
            Ok(request) => request,
            Err(e) => {
                return RunOutcome::Failed {
                    message: format!("malformed run request from host: {e}"),
                    retryable: false,
                }
            }
        };
        let ctx = Context {
            host,
            task_id: request.task_id,
            attempt: request.attempt,
            max_attempts: request.max_attempts,
            settings: request.settings,
            output_dir: PathBuf::from(request.output_dir),
            data_dir: PathBuf::from(request.data_dir),
            storage_dir: PathBuf::from(request.storage_dir),
        };
        match worker().run(&ctx, &request.action, request.data) {
            Ok(output) => RunOutcome::Completed {
                result: output.text,
                file: output.file.map(|p| p.to_string_lossy().into_owned()),
            },
            Err(error) => match error.kind {
                ErrorKind::Cancelled => RunOutcome::Cancelled {
                    message: Some(error.message),
                },
                ErrorKind::Retryable => RunOutcome::Failed {
                    message: error.message,
                    retryable: true,
                },
                ErrorKind::Permanent => RunOutcome::Failed {
                    message: error.message,
                    retryable: false,
                },
            },
        }
    });
    let outcome = outcome.unwrap_or_else(|message| RunOutcome::Panicked { message });
    let json = guard(|| serde_json::to_string(&outcome))
        .ok()
        .and_then(Result::ok);
    RString::from(json.unwrap_or_else(|| {
        r#"{"status":"failed","message":"outcome not serializable","retryable":false}"#.to_owned()
    }))
}

/// Exports a [`Worker`] type (which must implement `Default`) as this library's sTask worker.
///
/// Expands to the `abi_stable` root-module export, so the plugin crate needs no `unsafe` and no
/// direct `abi_stable` dependency. Use it once per `cdylib`.
#[macro_export]
macro_rules! export_worker {
    ($worker:ty) => {
        #[doc(hidden)]
        fn __stask_worker_instance() -> &'static $worker {
            static INSTANCE: ::std::sync::OnceLock<$worker> = ::std::sync::OnceLock::new();
            INSTANCE.get_or_init(<$worker as ::core::default::Default>::default)
        }

        #[doc(hidden)]
        extern "C" fn __stask_manifest() -> $crate::__private::abi_stable::std_types::RString {
            $crate::__private::manifest(__stask_worker_instance, cfg!(panic = "unwind"))
        }

        #[doc(hidden)]
        extern "C" fn __stask_run(
            request: $crate::__private::abi_stable::std_types::RStr<'_>,
            host: $crate::abi::HostContextRef<'_>,
        ) -> $crate::__private::abi_stable::std_types::RString {
            $crate::__private::run(__stask_worker_instance, request, host)
        }

        #[doc(hidden)]
        fn __stask_root_module() -> $crate::abi::WorkerModuleRef {
            use $crate::__private::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::abi::WorkerModule {
                manifest: __stask_manifest,
                run: __stask_run,
            }
            .leak_into_prefix()
        }

        // What `#[abi_stable::export_root_module]` generates, spelled with `$crate` paths so that
        // plugins need no direct `abi_stable` dependency. The symbol name is checked by a test.
        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn erased() -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    __stask_root_module,
                )
            }
            // SAFETY: `erased` builds the root module of exactly the type named here
            // (`WorkerModuleRef`), which is the contract `from_constructor` requires.
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::abi::WorkerModuleRef,
                >(
                    erased,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

//! Loading one library: shadow copy, `dlopen`, `abi_stable` checks, manifest.
//!
//! Invariants (each measured on this machine class; ARCHITECTURE.md lists them):
//! - plugins.d/ files are never opened by `dlopen`: overwriting a mapped file in place
//!   crashes the process. Each version is copied to its own file (own path, own inode) in
//!   `storage/plugins-loaded/` ([`super::copies`]), kept there while it is mapped;
//! - libraries are never unloaded: every `RString` and vtable points into them;
//! - nothing is mapped before [`super::elf::check_complete`] accepted the bytes.

use super::copies::LoadedCopies;
use super::elf;
use crate::host_context::{self, TaskHooks};
use abi_stable::library::{AbiHeaderRef, LibraryError, ROOT_MODULE_LOADER_NAME_WITH_NUL};
use abi_stable::std_types::RStr;
use sha2::{Digest, Sha256};
use stask_plugin_api::abi::WorkerModuleRef;
use stask_plugin_api::interface::{self, InterfaceVersion};
use stask_plugin_api::protocol::{Manifest, RunOutcome, RunRequest};
use stask_plugin_api::{INTERFACE_VERSION, PROTOCOL_VERSION};
use std::path::{Path, PathBuf};

/// A loaded, checked worker library. Cheap to share: tasks hold an `Arc` of the version they
/// started with, so a reload never changes the code under a running task.
pub struct LoadedWorker {
    module: WorkerModuleRef,
    /// What the plugin declared.
    pub manifest: Manifest,
    /// File name in plugins.d/.
    pub file: String,
    /// SHA-256 of the library bytes.
    pub sha256: String,
    /// The copy this version was loaded from (`storage/plugins-loaded/`, kept until the
    /// daemon exits), which child processes load for isolated runs.
    pub isolated_copy: Option<PathBuf>,
}

impl std::fmt::Debug for LoadedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedWorker")
            .field("identifier", &self.manifest.info.identifier)
            .field("file", &self.file)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl LoadedWorker {
    /// Identifier the worker declared.
    pub fn identifier(&self) -> &str {
        &self.manifest.info.identifier
    }

    /// Version shown in `s_workers.version` and `s_tasks.worker_version`: the declared version
    /// and the first hex digits of the library hash (two builds of one version differ).
    pub fn version_label(&self) -> String {
        format!("{}+{}", self.manifest.info.version, &self.sha256[..12])
    }

    /// Runs one task on the calling thread (a pool thread, never an async one).
    pub fn run(&self, request: &RunRequest, hooks: &dyn TaskHooks) -> RunOutcome {
        let json = match serde_json::to_string(request) {
            Ok(json) => json,
            Err(e) => {
                return RunOutcome::Failed {
                    message: format!("cannot encode the run request: {e}"),
                    retryable: false,
                }
            }
        };
        let answer = host_context::with_context(hooks, |ctx| {
            (self.module.run())(RStr::from_str(&json), ctx)
        });
        serde_json::from_str(answer.as_str()).unwrap_or_else(|e| RunOutcome::Failed {
            message: format!("worker returned an unreadable outcome ({e}): {answer}"),
            retryable: false,
        })
    }
}

/// Why a library was refused: a one-line reason for lists and logs, and the full detail.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// One line.
    pub reason: String,
    /// Everything known (e.g. the whole layout report), for the detail view.
    pub detail: Option<String>,
    /// The identifier, when the manifest could be read.
    pub identifier: Option<String>,
}

impl LoadError {
    fn new(reason: impl Into<String>) -> Self {
        LoadError {
            reason: reason.into(),
            detail: None,
            identifier: None,
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` (the content of `file`, whose SHA-256 is `sha256`) and loads them from a
/// copy in `copies`. A copy that `dlopen` mapped is kept (and counted) even when the library is
/// refused afterwards: it stays mapped.
pub fn load(
    file: &str,
    bytes: &[u8],
    sha256: &str,
    copies: &LoadedCopies,
) -> Result<LoadedWorker, LoadError> {
    elf::check_complete(bytes).map_err(|e| LoadError::new(e.to_string()))?;
    let copy = copies
        .write(file, sha256, bytes)
        .map_err(|e| LoadError::new(format!("cannot write the library copy: {e}")))?;
    let module = match open_module(&copy) {
        Ok(module) => module,
        Err(e) => {
            // Not mapped (dlopen failed, or the library was closed again): nothing holds it.
            copies.discard(&copy);
            return Err(e);
        }
    };
    copies.keep(bytes.len() as u64);
    let manifest = read_manifest(module)?;
    Ok(LoadedWorker {
        module,
        manifest,
        file: file.to_owned(),
        sha256: sha256.to_owned(),
        isolated_copy: Some(copy),
    })
}

/// Loads a library copy the registry already checked and keeps unchanged (an isolated run's
/// copy in `storage/plugins-loaded/`) straight from its path: no second read, hash or copy.
/// The layout and version checks of `abi_stable` still run.
pub fn load_checked_copy(path: &Path) -> Result<LoadedWorker, LoadError> {
    let module = open_module(path)?;
    let manifest = read_manifest(module)?;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(LoadedWorker {
        module,
        manifest,
        file,
        sha256: String::new(),
        isolated_copy: None,
    })
}

fn open_module(path: &Path) -> Result<WorkerModuleRef, LoadError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: the bytes passed the ELF completeness check and live in our own copy that
    // nobody else writes. Running the library's constructors is inherent to loading a plugin.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_else(|| e.to_string());
        LoadError::new(format!("cannot load the library: {cause}"))
    })?;
    // SAFETY: the symbol, when present, is the `LibHeader` static that `export_worker!`
    // (abi_stable's export) defines; `upgrade` validates its header before use.
    let header = unsafe { library.get::<AbiHeaderRef>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|_| {
            LoadError::new("not an sTask plugin: no abi_stable root module (built with stask-plugin-api and export_worker!?)")
        })?;
    let header = header.upgrade().map_err(describe_library_error)?;
    check_interface_version(header.version_strings().version.as_str())?;
    let module = header
        .init_root_module::<WorkerModuleRef>()
        .map_err(describe_library_error)?;
    // Never unloaded: values created by the plugin point into its code.
    std::mem::forget(library);
    Ok(module)
}

/// Refuses a plugin built against an interface version this host does not accept
/// ([`interface::is_compatible`]), before `abi_stable` looks at it: its own version check would
/// let a 0.1 host load a 0.2 plugin.
fn check_interface_version(plugin_version: &str) -> Result<(), LoadError> {
    let host = InterfaceVersion::parse(INTERFACE_VERSION)
        .expect("stask-plugin-api's version is major.minor.patch");
    match InterfaceVersion::parse(plugin_version) {
        Some(plugin) if interface::is_compatible(host, plugin) => Ok(()),
        _ => Err(LoadError::new(incompatible_interface(
            plugin_version,
            INTERFACE_VERSION,
        ))),
    }
}

/// The reason given for a plugin of another interface line: both versions, and what to do.
fn incompatible_interface(plugin: impl std::fmt::Display, host: impl std::fmt::Display) -> String {
    format!(
        "incompatible plugin interface: plugin built with stask-plugin-api {plugin}, host needs {host}; rebuild the plugin"
    )
}

/// Turns abi_stable's report (often hundreds of lines) into one line plus the detail.
fn describe_library_error(e: LibraryError) -> LoadError {
    let detail = e.to_string();
    let reason = match &e {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => incompatible_interface(actual_version, expected_version),
        LibraryError::AbiInstability(_) => {
            let first_error = detail
                .lines()
                .skip_while(|l| !l.trim_start().starts_with("Error:"))
                .take(3)
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "ABI mismatch with this host's plugin interface ({}); rebuild the plugin against stask-plugin-api {}",
                if first_error.is_empty() { "layout differs" } else { &first_error },
                INTERFACE_VERSION
            )
        }
        other => format!(
            "cannot use the library: {}",
            other.to_string().lines().next().unwrap_or("")
        ),
    };
    LoadError {
        reason,
        detail: Some(detail),
        identifier: None,
    }
}

fn read_manifest(module: WorkerModuleRef) -> Result<Manifest, LoadError> {
    let text = (module.manifest())();
    let value: serde_json::Value = serde_json::from_str(text.as_str())
        .map_err(|e| LoadError::new(format!("unreadable manifest: {e}")))?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(LoadError::new(format!(
            "the worker failed to describe itself: {error}"
        )));
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| LoadError::new(format!("invalid manifest: {e}")))?;
    let refuse = |reason: String| LoadError {
        reason,
        detail: None,
        identifier: Some(manifest.info.identifier.clone()),
    };
    if !manifest.panic_unwind {
        return Err(refuse(
            "plugin built with panic = \"abort\": one panic would kill the host; build it with panic = \"unwind\"".into(),
        ));
    }
    if manifest.protocol > PROTOCOL_VERSION {
        return Err(refuse(format!(
            "plugin speaks protocol {} but this host knows {PROTOCOL_VERSION}; upgrade the host",
            manifest.protocol
        )));
    }
    validate_identifier(&manifest.info.identifier).map_err(&refuse)?;
    if manifest.info.actions.is_empty() {
        return Err(refuse("the worker declares no actions".into()));
    }
    Ok(manifest)
}

/// Identifiers appear in URLs and file names: lowercase ASCII letters, digits, `_`, `-`, 1-64.
pub fn validate_identifier(identifier: &str) -> Result<(), String> {
    let ok = !identifier.is_empty()
        && identifier.len() <= 64
        && identifier
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid worker identifier '{identifier}': use 1-64 lowercase letters, digits, '_' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same interface line as this host's, with another patch number.
    fn same_line_other_patch() -> String {
        let host = InterfaceVersion::parse(INTERFACE_VERSION).unwrap();
        format!("{}.{}.{}", host.major, host.minor, host.patch + 7)
    }

    #[test]
    fn plugins_of_this_hosts_interface_line_pass_the_version_check() {
        assert_eq!(check_interface_version(INTERFACE_VERSION), Ok(()));
        assert_eq!(check_interface_version(&same_line_other_patch()), Ok(()));
    }

    #[test]
    fn plugins_of_another_line_are_refused_with_both_versions() {
        for plugin in ["0.2.0", "1.0.0", "99.0.0", "not a version"] {
            let e = check_interface_version(plugin).expect_err(plugin);
            assert!(
                e.reason.starts_with("incompatible plugin interface")
                    && e.reason.contains(plugin)
                    && e.reason.contains(INTERFACE_VERSION),
                "{plugin}: {}",
                e.reason
            );
        }
    }
}

//! The loader on files as they arrive in plugins.d/: written, read back and handed to the
//! loader as the registry does. Every file gets an answer, a file the completeness check
//! refuses is refused before anything is copied or mapped, and no library copy is left behind.
//!
//! Two kinds of input (the first byte chooses):
//! - arbitrary bytes: loaded when the completeness check refuses them; a *complete* ELF made of
//!   arbitrary bytes is not mapped here, because `dlopen` runs its relocations and
//!   constructors: glibc's loader crashes on a corrupt dynamic section (found by this target,
//!   see RELIABILITY.md), which only a separate process can contain;
//! - a real library cut at any length, then zeros up to any length: the half-copied files the
//!   check exists for (copy tools that preallocate leave zeros). These are always handed to the
//!   loader, `dlopen` included when the check finds them complete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stask_host::plugins::copies::LoadedCopies;
use stask_host::plugins::{elf, loader};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A complete shared library (not an sTask plugin): `int f(void)`, built without libc.
const LIBRARY: &[u8] = include_bytes!("../fixtures/tiny-library.so");

/// plugins.d/ and the loaded copies of this fuzzing process.
fn folders() -> &'static (PathBuf, LoadedCopies) {
    static FOLDERS: OnceLock<(PathBuf, LoadedCopies)> = OnceLock::new();
    FOLDERS.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("stask-fuzz-load-{}", std::process::id()));
        let plugins = root.join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        (plugins, LoadedCopies::new(root.join("plugins-loaded")))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let content = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let number = |at: usize| {
            rest.get(at..at + 2).map_or(usize::MAX, |b| {
                usize::from(u16::from_le_bytes([b[0], b[1]]))
            })
        };
        let (cut, len) = (number(0).min(LIBRARY.len()), number(2).min(LIBRARY.len()));
        let mut content = LIBRARY[..cut].to_vec();
        content.resize(len.max(cut), 0);
        content
    };
    let (plugins, copies) = folders();
    let file = plugins.join("fuzz.so");
    std::fs::write(&file, &content).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let complete = elf::check_complete(&bytes).is_ok();
    if complete && mode % 2 == 0 {
        return;
    }
    match loader::load("fuzz.so", &bytes, &loader::sha256_hex(&bytes), copies) {
        // Only an sTask plugin loads, and no input is one.
        Ok(worker) => panic!("a non-plugin loaded: {worker:?}"),
        Err(e) => {
            assert!(!e.reason.is_empty() && !e.reason.contains('\n'), "{e:?}");
            if !complete {
                // Refused by the check: never copied, never mapped.
                let check = elf::check_complete(&bytes).map_err(|c| c.to_string());
                assert_eq!(Err(e.reason.clone()), check);
            }
        }
    }
    // Nothing was mapped (no input is a plugin), so no copy may stay.
    assert_eq!(copies.usage().count, 0);
    let left: Vec<_> = std::fs::read_dir(copies.dir())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "library copies left behind: {left:?}");
});

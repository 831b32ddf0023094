//! The library copies the host loads: `storage/plugins-loaded/`, one file per load.
//!
//! plugins.d/ files are never `dlopen`ed in place (overwriting a mapped file crashes the
//! process), so each load maps its own copy. Libraries are never unloaded, so every copy stays
//! mapped until the process exits. These copies used to be unlinked right after `dlopen`:
//! the disk stayed used but `du` did not see it (measured: 50 reloads of a 7.6 MB plugin held
//! 378 MB, and filled a small disk). Now a mapped copy keeps its name until the daemon exits,
//! its size is counted ([`LoadedCopies::usage`], shown by `GET /stask/workers`), and the folder
//! is emptied at exit and, for a daemon that was killed, at the next start
//! ([`LoadedCopies::claim`]). Isolated runs load the same copy in their child process.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Copies held now, for the API and the reload warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CopiesUsage {
    /// Library copies mapped by this host (one per load since start, refused libraries that
    /// were mapped before their manifest was refused included).
    pub count: u64,
    /// Their total size in bytes: disk held in `storage/plugins-loaded/` until the daemon
    /// exits.
    pub bytes: u64,
}

/// The folder of loaded copies and what it holds.
#[derive(Debug)]
pub struct LoadedCopies {
    dir: PathBuf,
    count: AtomicU64,
    bytes: AtomicU64,
}

/// Empties the folder of loaded copies when dropped (at the daemon's exit). Hold it while the
/// home lock is held, so no other process's copies are removed.
#[derive(Debug)]
#[must_use = "the copies are removed when this is dropped"]
pub struct CopiesCleanup {
    dir: PathBuf,
}

impl Drop for CopiesCleanup {
    fn drop(&mut self) {
        // Still mapped by this process, which is ending: removing the names frees the disk
        // once the process is gone. Isolated children already opened theirs.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl LoadedCopies {
    /// Copies in `dir`; nothing is touched on disk until a load.
    pub fn new(dir: PathBuf) -> Self {
        LoadedCopies {
            dir,
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For the process that owns the home (holds its lock): deletes the copies an earlier
    /// process left (it was killed, or an older version unlinked nothing at exit), and returns
    /// the guard that deletes this process's copies at its exit. `legacy` folders (of older
    /// versions) are removed too.
    pub fn claim(&self, legacy: &[PathBuf]) -> CopiesCleanup {
        for dir in std::iter::once(&self.dir).chain(legacy) {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => tracing::debug!(dir = %dir.display(), "removed stale library copies"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "cannot remove stale library copies: {e}")
                }
            }
        }
        CopiesCleanup {
            dir: self.dir.clone(),
        }
    }

    /// Writes a copy of `bytes` (plugins.d/`file`, hash `sha256`) under a fresh name (temp
    /// file + rename); nothing is left behind on failure.
    pub fn write(&self, file: &str, sha256: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let stem = Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        // A fresh name for every load: glibc returns an already-loaded library for a known
        // path or inode, which would silently keep the old code.
        let unique = format!(
            "{stem}-{}-{:08x}",
            &sha256[..16.min(sha256.len())],
            rand::random::<u32>()
        );
        let tmp = self.dir.join(format!(".{unique}.tmp"));
        let path = self.dir.join(format!("{unique}.so"));
        let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(path)
    }

    /// Records that a copy of `len` bytes is mapped: it stays until the exit.
    pub fn keep(&self, len: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len, Ordering::Relaxed);
    }

    /// Removes a copy that was not mapped (`dlopen` refused it).
    pub fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// What the mapped copies hold now.
    pub fn usage(&self) -> CopiesUsage {
        CopiesUsage {
            count: self.count.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_counted_kept_and_removed_by_the_cleanup() {
        let root = std::env::temp_dir().join(format!("stask-copies-{}", uuid::Uuid::new_v4()));
        let copies = LoadedCopies::new(root.join("plugins-loaded"));
        let legacy = root.join("shadow");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::create_dir_all(copies.dir()).unwrap();
        std::fs::write(copies.dir().join("stale.so"), b"old").unwrap();
        let cleanup = copies.claim(std::slice::from_ref(&legacy));
        assert!(
            !copies.dir().exists() && !legacy.exists(),
            "stale copies gone"
        );

        let a = copies
            .write("demo.so", "0123456789abcdef0123", b"first")
            .unwrap();
        copies.keep(5);
        let b = copies
            .write("demo.so", "0123456789abcdef0123", b"second!")
            .unwrap();
        copies.keep(7);
        let refused = copies.write("x.so", "ffff", b"x").unwrap();
        copies.discard(&refused);
        assert_ne!(a, b, "every load gets its own name");
        assert!(a.exists() && b.exists() && !refused.exists());
        assert_eq!(
            copies.usage(),
            CopiesUsage {
                count: 2,
                bytes: 12
            }
        );
        let names: Vec<_> = std::fs::read_dir(copies.dir()).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");

        drop(cleanup);
        assert!(!copies.dir().exists());
        let _ = std::fs::remove_dir_all(&root);
    }
}

//! Reading one file of plugins.d/ without trusting it.
//!
//! Anyone who can write to the folder can put anything there, and the watcher and the
//! discover/rescan API read what they find. Measured on the release build before this module:
//! a FIFO named `f.so` blocked the watcher forever in `open` (and the API for 120 s), a sparse
//! 2 GiB file took the daemon to 2.1 GB RSS, and a link to `/dev/zero` grew it until the
//! address-space limit. So:
//! - only regular files, or links to them, are opened: the type is checked with `stat` first,
//!   the open is non-blocking (a FIFO swapped in after the check cannot block it), and the
//!   opened file's type is checked again with `fstat`;
//! - the size is checked against the plugin size limit before reading, and the read stops at
//!   the limit whatever the file claimed (a file that grows while read, a `/proc` file);
//! - the bytes are hashed as they are read, in chunks.

use sha2::{Digest, Sha256};
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// A file's content, read once, with its SHA-256 (hex).
#[derive(Debug, Clone)]
pub struct PluginBytes {
    /// The whole content.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, hex.
    pub sha256: String,
}

/// What a non-regular file is, for the refusal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A folder (or a link to one): ignored, as folders are.
    Directory,
    /// A named pipe: opening it for reading would wait for a writer.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device such as `/dev/zero`: endless.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else that is not a regular file.
    Other,
}

impl FileKind {
    fn of(meta: &Metadata) -> Option<FileKind> {
        let t = meta.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        })
    }

    fn describe(self) -> &'static str {
        match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "not a file",
        }
    }
}

/// Why a file was not read. The `Display` text is the one-line refusal reason.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file (or its link's target) does not exist.
    #[error("the file is gone")]
    NotFound(#[source] std::io::Error),
    /// Not a regular file: never opened for reading (or opened non-blocking and dropped).
    #[error("not a library: not a regular file ({})", .0.describe())]
    NotRegular(FileKind),
    /// Larger than the plugin size limit: not read.
    #[error(
        "too large for a plugin: {size} bytes, over the limit of {limit} bytes (STASK_MAX_PLUGIN_BYTES)"
    )]
    TooLarge {
        /// Bytes the file has.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Grew past the limit while being read: the read stopped there.
    #[error(
        "too large for a plugin: grew past the limit of {limit} bytes while being read (STASK_MAX_PLUGIN_BYTES)"
    )]
    GrewTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Any other I/O error (permissions, I/O error).
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            ReadError::NotFound(e)
        } else {
            ReadError::Io(e)
        }
    }
}

impl ReadError {
    /// Whether the path is a folder (or a link to one): folders in plugins.d/ are ignored,
    /// not refused.
    pub fn is_directory(&self) -> bool {
        matches!(self, ReadError::NotRegular(FileKind::Directory))
    }
}

/// Refuses what is not a regular file of at most `limit` bytes.
fn check(meta: &Metadata, limit: u64) -> Result<(), ReadError> {
    if let Some(kind) = FileKind::of(meta) {
        return Err(ReadError::NotRegular(kind));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    Ok(())
}

/// Reads `path` (following links) if it is a regular file of at most `limit` bytes, hashing
/// it as it is read. Never blocks on the file's type: see the module documentation.
pub fn read(path: &Path, limit: u64) -> Result<PluginBytes, ReadError> {
    check(&std::fs::metadata(path)?, limit)?;
    // O_NONBLOCK: a FIFO put in place between the check and the open is opened at once
    // instead of waiting for a writer, and refused by the fstat below. It changes nothing for
    // regular files. O_NOCTTY: a terminal device swapped in does not become ours.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    check(&meta, limit)?;
    read_bounded(file, meta.len(), limit)
}

/// Reads at most `limit` bytes in chunks, hashing them; more than `limit` is an error.
fn read_bounded(file: File, expected: u64, limit: u64) -> Result<PluginBytes, ReadError> {
    const CHUNK: usize = 64 * 1024;
    // The size passed the check, so reserving it is bounded by the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut hasher = Sha256::new();
    let mut reader = file.take(limit.saturating_add(1));
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        if bytes.len() as u64 + n as u64 > limit {
            return Err(ReadError::GrewTooLarge { limit });
        }
        hasher.update(&chunk[..n]);
        bytes.extend_from_slice(&chunk[..n]);
    }
    Ok(PluginBytes {
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A throw-away folder, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp() -> Dir {
        let path = std::env::temp_dir().join(format!("stask-read-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    #[test]
    fn a_regular_file_is_read_and_hashed() {
        let dir = temp();
        let path = dir.0.join("a.so");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let read = read(&path, 1 << 20).unwrap();
        assert_eq!(read.bytes, content);
        assert_eq!(read.sha256, crate::loader::sha256_hex(&content));
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_blocking() {
        let dir = temp();
        let path = dir.0.join("f.so");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let started = Instant::now();
        let e = read(&path, 1 << 20).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(e, ReadError::NotRegular(FileKind::Fifo)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "not a library: not a regular file (a FIFO (named pipe))"
        );
    }

    #[test]
    fn a_link_to_dev_zero_is_refused_by_type_and_a_folder_is_a_folder() {
        let dir = temp();
        let link = dir.0.join("zero.so");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read(&link, 1 << 20).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular(FileKind::CharDevice)),
            "{e:?}"
        );
        assert!(read(&dir.0, 1 << 20).unwrap_err().is_directory());
        assert!(matches!(
            read(&dir.0.join("missing.so"), 1).unwrap_err(),
            ReadError::NotFound(_)
        ));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_reading() {
        let dir = temp();
        let path = dir.0.join("big.so");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(8 << 30).unwrap(); // sparse: costs no disk
        let e = read(&path, 1 << 20).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { size, limit } if size == 8 << 30 && limit == 1 << 20),
            "{e:?}"
        );
        assert!(e.to_string().contains("STASK_MAX_PLUGIN_BYTES"));
    }

    #[test]
    fn a_file_longer_than_it_claims_stops_at_the_limit() {
        // /proc files claim 0 bytes and can be longer: the read itself is bounded.
        let e = read(Path::new("/proc/self/maps"), 16).unwrap_err();
        assert!(matches!(e, ReadError::GrewTooLarge { limit: 16 }), "{e:?}");
    }
}

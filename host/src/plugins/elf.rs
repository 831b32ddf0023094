//! Completeness check of a shared library before it is handed to `dlopen`.
//!
//! `dlopen` of a truncated library can SIGBUS inside the loader and take the host down
//! (measured: a plugin cut at 300 kB of 728 kB). A file that is still being copied is exactly
//! such a file, so every byte range the loader will map must be present first.

use std::fmt;

/// Why a file is not a complete 64-bit little-endian ELF shared object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header.
    TooShort(usize),
    /// No ELF magic: not a library at all (text, archive, ...).
    NotElf,
    /// ELF, but not 64-bit little-endian (built for another platform).
    WrongClass,
    /// ELF, but not a shared object (`ET_DYN`): an executable or object file.
    NotSharedObject(u16),
    /// ELF for another machine than this host's.
    WrongMachine(u16),
    /// A table or segment reaches past the end of the file: still being written or cut short.
    Truncated {
        /// What is cut.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes the file has.
        len: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::TooShort(n) => write!(f, "not a shared library: only {n} bytes"),
            ElfError::NotElf => write!(f, "not a shared library (no ELF header)"),
            ElfError::WrongClass => write!(f, "not a 64-bit little-endian ELF library"),
            ElfError::NotSharedObject(t) => {
                write!(f, "ELF file is not a shared library (e_type {t})")
            }
            ElfError::WrongMachine(m) => {
                write!(f, "library built for another CPU architecture (e_machine {m})")
            }
            ElfError::Truncated { what, needed, len } => write!(
                f,
                "incomplete library: {what} needs {needed} bytes, file has {len} (still being copied?)"
            ),
        }
    }
}

impl std::error::Error for ElfError {}

#[cfg(target_arch = "x86_64")]
const HOST_MACHINE: u16 = 62; // EM_X86_64
#[cfg(target_arch = "aarch64")]
const HOST_MACHINE: u16 = 183; // EM_AARCH64
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const HOST_MACHINE: u16 = 0;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks that `bytes` hold a complete ELF64 LE shared object for this machine: the header,
/// the program and section header tables, and every `PT_LOAD` segment lie inside the file.
pub fn check_complete(bytes: &[u8]) -> Result<(), ElfError> {
    const EHDR: usize = 64;
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(if bytes.len() < 4 {
            ElfError::TooShort(bytes.len())
        } else {
            ElfError::NotElf
        });
    }
    if bytes.len() < EHDR {
        return Err(ElfError::TooShort(bytes.len()));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(ElfError::WrongClass);
    }
    let e_type = u16_at(bytes, 16);
    if e_type != 3 {
        return Err(ElfError::NotSharedObject(e_type));
    }
    let machine = u16_at(bytes, 18);
    if HOST_MACHINE != 0 && machine != HOST_MACHINE {
        return Err(ElfError::WrongMachine(machine));
    }
    let len = bytes.len() as u64;
    let within = |what, start: u64, size: u64| {
        let needed = start.saturating_add(size);
        if needed > len {
            Err(ElfError::Truncated { what, needed, len })
        } else {
            Ok(())
        }
    };
    let phoff = u64_at(bytes, 32);
    let shoff = u64_at(bytes, 40);
    let phentsize = u64::from(u16_at(bytes, 54));
    let phnum = u64::from(u16_at(bytes, 56));
    let shentsize = u64::from(u16_at(bytes, 58));
    let shnum = u64::from(u16_at(bytes, 60));
    within("the program header table", phoff, phentsize * phnum)?;
    within("the section header table", shoff, shentsize * shnum)?;
    if phentsize < 56 {
        return Err(ElfError::NotElf);
    }
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let p_type = u32_at(bytes, at);
        if p_type == 1 {
            // PT_LOAD
            let offset = u64_at(bytes, at + 8);
            let filesz = u64_at(bytes, at + 32);
            within("a loadable segment", offset, filesz)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_library() -> Vec<u8> {
        // The test binary's own libc is a complete shared library on every Linux host.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let path = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("libc.so") || p.contains("libc-"))
            .expect("libc mapped");
        std::fs::read(path).unwrap()
    }

    #[test]
    fn accepts_a_complete_library() {
        assert_eq!(check_complete(&own_library()), Ok(()));
    }

    #[test]
    fn rejects_every_prefix_of_a_library() {
        let lib = own_library();
        for cut in [
            0,
            3,
            20,
            63,
            64,
            100,
            4096,
            lib.len() / 3,
            lib.len() / 2,
            lib.len() - 1,
        ] {
            assert!(
                check_complete(&lib[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
    }

    #[test]
    fn rejects_text_and_executables() {
        assert_eq!(
            check_complete(b"hello world, not a library at all!"),
            Err(ElfError::NotElf)
        );
        let mut lib = own_library();
        lib[16] = 2; // ET_EXEC
        assert_eq!(check_complete(&lib), Err(ElfError::NotSharedObject(2)));
    }
}

//! Completeness check of a shared library before it is handed to `dlopen`.
//!
//! `dlopen` of a truncated library can SIGBUS inside the loader and take the host down
//! (measured: a plugin cut at 300 kB of 728 kB). A file that is still being copied is exactly
//! such a file, so every byte range the loader will map must be present first.
//!
//! A copy can also have its final length before its data (tools that reserve the space first
//! leave zeros): glibc's loader then crashes on the zeroed dynamic section (found by fuzzing).
//! So the parts written last or read first must hold data: the section name table (linkers
//! put the section headers at the very end) and the dynamic section's symbol and string
//! tables.

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
    /// A part that must hold data is still zeros: the file has its length, not its content.
    Unwritten(&'static str),
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
            ElfError::Unwritten(what) => write!(
                f,
                "incomplete library: {what} holds no data yet (still being copied?)"
            ),
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
    let mut dynamic = None;
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let p_type = u32_at(bytes, at);
        let offset = u64_at(bytes, at + 8);
        let filesz = u64_at(bytes, at + 32);
        if p_type == 1 {
            // PT_LOAD
            within("a loadable segment", offset, filesz)?;
        } else if p_type == 2 {
            // PT_DYNAMIC
            within("the dynamic section", offset, filesz)?;
            dynamic = Some((offset as usize, filesz as usize));
        }
    }
    if shnum > 0 {
        check_section_names(bytes, shoff, shentsize, shnum)?;
    }
    let (offset, size) = dynamic.ok_or(ElfError::Unwritten("the dynamic section"))?;
    check_dynamic(&bytes[offset..offset + size])
}

/// The section name table holds its own name: linkers write the section headers last.
fn check_section_names(
    bytes: &[u8],
    shoff: u64,
    shentsize: u64,
    shnum: u64,
) -> Result<(), ElfError> {
    const WHAT: &str = "the section name table";
    if shentsize < 64 {
        return Err(ElfError::NotElf);
    }
    let index = u64::from(u16_at(bytes, 62));
    if index >= shnum {
        return Err(ElfError::Unwritten(WHAT));
    }
    let at = (shoff + index * shentsize) as usize;
    let (name, kind) = (u32_at(bytes, at) as usize, u32_at(bytes, at + 4));
    let (offset, size) = (u64_at(bytes, at + 24), u64_at(bytes, at + 32));
    if kind != 3
        || offset
            .checked_add(size)
            .is_none_or(|end| end > bytes.len() as u64)
    {
        return Err(ElfError::Unwritten(WHAT));
    }
    let names = &bytes[offset as usize..(offset + size) as usize];
    if names
        .get(name..)
        .is_some_and(|n| n.starts_with(b".shstrtab\0"))
    {
        Ok(())
    } else {
        Err(ElfError::Unwritten(WHAT))
    }
}

/// The dynamic section names a symbol table and a string table before its end: the loader
/// reads both unconditionally.
fn check_dynamic(entries: &[u8]) -> Result<(), ElfError> {
    const DT_NULL: u64 = 0;
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    let (mut strtab, mut symtab) = (false, false);
    for entry in entries.chunks_exact(16) {
        match u64_at(entry, 0) {
            DT_NULL => break,
            DT_STRTAB => strtab = true,
            DT_SYMTAB => symtab = true,
            _ => {}
        }
    }
    if strtab && symtab {
        Ok(())
    } else {
        Err(ElfError::Unwritten("the dynamic section"))
    }
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

    /// Found by the `plugin_load` fuzz target: a library whose first 210 bytes were written and
    /// whose rest was still zeros (its final length reserved) passed, and `dlopen` crashed the
    /// process (SIGSEGV in glibc's relocation of the empty dynamic section).
    #[test]
    fn rejects_a_library_whose_length_is_final_but_whose_tail_is_still_zeros() {
        let lib = own_library();
        for written in [210, 4096, lib.len() / 2, lib.len() - 64] {
            let mut copy = lib[..written].to_vec();
            copy.resize(lib.len(), 0);
            assert!(
                matches!(check_complete(&copy), Err(ElfError::Unwritten(_))),
                "{written} bytes written, the rest zeros: {:?}",
                check_complete(&copy)
            );
        }
    }

    #[test]
    fn rejects_a_zeroed_dynamic_section() {
        let mut lib = own_library();
        let phoff = u64_at(&lib, 32) as usize;
        let (phentsize, phnum) = (usize::from(u16_at(&lib, 54)), usize::from(u16_at(&lib, 56)));
        let dynamic = (0..phnum)
            .map(|i| phoff + i * phentsize)
            .find(|at| u32_at(&lib, *at) == 2)
            .expect("libc has a dynamic section");
        let (offset, size) = (
            u64_at(&lib, dynamic + 8) as usize,
            u64_at(&lib, dynamic + 32) as usize,
        );
        lib[offset..offset + size].fill(0);
        assert_eq!(
            check_complete(&lib),
            Err(ElfError::Unwritten("the dynamic section"))
        );
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

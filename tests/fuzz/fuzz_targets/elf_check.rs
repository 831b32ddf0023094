//! The completeness check every plugins.d/ file passes before anything maps it: any bytes get
//! an answer (never a panic), and an accepted file holds its header, both header tables and
//! every loadable segment, checked here independently of the host's code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stask_host::plugins::elf::check_complete;

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    if check_complete(data).is_err() {
        return;
    }
    assert!(data.len() >= 64 && data.starts_with(b"\x7fELF"));
    assert_eq!((data[4], data[5], u16_at(data, 16)), (2, 1, 3));
    let len = data.len() as u128;
    let (phoff, phentsize, phnum) = (u64_at(data, 32), u16_at(data, 54), u16_at(data, 56));
    let (shoff, shentsize, shnum) = (u64_at(data, 40), u16_at(data, 58), u16_at(data, 60));
    assert!(u128::from(phoff) + u128::from(phentsize * phnum) <= len);
    assert!(u128::from(shoff) + u128::from(shentsize * shnum) <= len);
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        if u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) == 1 {
            let (offset, filesz) = (u64_at(data, at + 8), u64_at(data, at + 32));
            assert!(
                u128::from(offset) + u128::from(filesz) <= len,
                "segment {i} outside"
            );
        }
    }
});

//! The `product` worker's CSV import on arbitrary files: the delimiter option, the header, every
//! row. Any bytes give a summary or the task's error message (no panic, no hang), and the rows
//! the progress total counts are the rows the import goes through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stask_worker_product::parse_csv;

const DELIMITERS: &[Option<&str>] = &[
    None,
    Some(","),
    Some(";"),
    Some("\t"),
    Some("|"),
    Some("\""),
    Some(";;"),
    Some(""),
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options; the rest is the file.
    let (options, file) = match data.split_first() {
        Some((o, rest)) => (*o, rest),
        None => (0, data),
    };
    let delimiter = DELIMITERS[usize::from(options >> 1) % DELIMITERS.len()];
    let skip_first_row = options & 1 == 0;
    match parse_csv(file, delimiter, skip_first_row) {
        Ok(summary) => assert_eq!(
            summary.valid + summary.invalid,
            summary.counted,
            "{summary:?}"
        ),
        Err(message) => assert!(!message.is_empty()),
    }
});

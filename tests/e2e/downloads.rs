//! Result files stream from disk and uploads stream to it: a 300 MiB download and a 1 GiB
//! upload each leave the daemon's peak memory within 64 MiB of where it was; downloads carry
//! `Content-Length`, `ETag` and `Last-Modified`, resume with `Range` (206) and answer a current
//! copy's `If-None-Match` with 304.

use serde_json::json;
use stask_tests::{Daemon, Home};
use std::io::Read;
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// How much the daemon's peak memory may grow while a large file passes through it.
const MEMORY_BUDGET_KB: u64 = 64 * 1024;

/// Byte `i` of a `result_file_mb` file of the demo worker.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

fn get(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> ureq::Response {
    let mut req = ureq::get(&format!("{}{path}", d.base))
        .timeout(Duration::from_secs(300))
        .set("Authorization", &format!("Bearer {}", d.token));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// Reads the whole body, checking every byte against the pattern from `offset` on; its length.
fn read_checked(response: ureq::Response, offset: u64) -> u64 {
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; MIB as usize];
    let mut at = offset;
    loop {
        let n = reader.read(&mut buf).expect("read the body");
        if n == 0 {
            return at - offset;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pattern(at + i as u64), "byte {}", at + i as u64);
        }
        at += n as u64;
    }
}

#[test]
fn a_300_mib_result_streams_resumes_and_is_cached_by_its_entity_tag() {
    if stask_tests::sqlite_only("the file path does not depend on the database") {
        return;
    }
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let size = 300 * MIB;
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 1, "result_file": "big.bin", "result_file_mb": 300}),
    );
    assert_eq!(d.wait_finished(id)["status"], "completed");
    let path = format!("/stask/tasks/{id}/download");
    let before = d.peak_rss_kb();

    let full = get(&d, &path, &[("Accept-Encoding", "gzip")]);
    assert_eq!(full.status(), 200);
    // Sent as on disk, not compressed: the length counts the file's bytes.
    assert_eq!(
        full.header("Content-Length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(full.header("Content-Encoding"), None);
    assert_eq!(full.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(
        full.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        full.header("Content-Disposition"),
        Some("attachment; filename=\"big.bin\"")
    );
    assert!(full.header("Last-Modified").is_some());
    let etag = full.header("ETag").expect("an ETag").to_owned();
    assert_eq!(read_checked(full, 0), size);
    let grown = d.peak_rss_kb().saturating_sub(before);
    assert!(
        grown < MEMORY_BUDGET_KB,
        "the peak memory grew by {grown} kB for a {size}-byte download"
    );

    // A broken download resumes where it stopped.
    let from = size - 1000;
    let rest = get(&d, &path, &[("Range", &format!("bytes={from}-"))]);
    assert_eq!(rest.status(), 206);
    assert_eq!(
        rest.header("Content-Range"),
        Some(format!("bytes {from}-{}/{size}", size - 1).as_str())
    );
    assert_eq!(read_checked(rest, from), 1000);
    let middle = get(&d, &path, &[("Range", "bytes=1000-1999")]);
    assert_eq!(middle.status(), 206);
    assert_eq!(read_checked(middle, 1000), 1000);
    let outside = get(&d, &path, &[("Range", &format!("bytes={}-", size + 10))]);
    assert_eq!(outside.status(), 416);
    let body: serde_json::Value = outside.into_json().expect("a JSON error");
    assert_eq!(body["success"], false, "{body}");

    // A current copy is not sent again; another one is.
    let cached = get(&d, &path, &[("If-None-Match", &etag)]);
    assert_eq!(cached.status(), 304);
    assert_eq!(cached.header("ETag"), Some(etag.as_str()));
    assert_eq!(cached.into_string().unwrap(), "");
    let stale = get(&d, &path, &[("If-None-Match", "\"0-0\"")]);
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.header("ETag"), Some(etag.as_str()));
}

/// A reader of `len` bytes of `byte` that never holds more than one buffer.
struct Repeat {
    left: u64,
    byte: u8,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        buf[..n].fill(self.byte);
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_1_gib_upload_streams_to_disk() {
    if stask_tests::sqlite_only("the upload folder does not depend on the database") {
        return;
    }
    let mut home = Home::with_workers(&["demo"]);
    home.env.push((
        "STASK_MAX_UPLOAD_BYTES".into(),
        (2 * 1024 * MIB).to_string(),
    ));
    let d = home.serve();
    let size = 1024 * MIB;
    let boundary = "stask-upload-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let body = std::io::Cursor::new(head.into_bytes())
        .chain(Repeat {
            left: size,
            byte: b'x',
        })
        .chain(std::io::Cursor::new(tail.into_bytes()));
    let before = d.peak_rss_kb();
    let answer: serde_json::Value = ureq::post(&format!("{}/stask/uploads", d.base))
        .timeout(Duration::from_secs(600))
        .set("Authorization", &format!("Bearer {}", d.token))
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send(body)
        .expect("the upload is taken")
        .into_json()
        .unwrap();
    let grown = d.peak_rss_kb().saturating_sub(before);
    assert!(
        grown < MEMORY_BUDGET_KB,
        "the peak memory grew by {grown} kB for a {size}-byte upload"
    );
    assert_eq!(answer["size"], size, "{answer}");
    // The path is relative to storage/.
    let stored = home
        .storage()
        .join(answer["path"].as_str().expect("the stored path"));
    assert_eq!(
        std::fs::metadata(&stored).expect("the stored file").len(),
        size,
        "{answer}"
    );
    std::fs::remove_file(stored).unwrap();
}

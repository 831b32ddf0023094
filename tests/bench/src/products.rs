//! Long-job figures 2 and 3: a `product` import of a large CSV against a raw rusqlite insert
//! loop into the same table, then the export of that table and its download over HTTP, each
//! with the daemon's peak resident memory.

use crate::daemon::{Binaries, Home};
use crate::report::Report;
use crate::sampler::Sampler;
use rusqlite::{params, Connection};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rows per transaction of the raw loop: past a few thousand, larger ones gain nothing.
const RAW_BATCH: usize = 10_000;
/// How often a long task is polled.
const POLL: Duration = Duration::from_millis(50);

/// Writes `rows` products with every column as `product/import` reads them (header row first).
fn write_csv(path: &Path, rows: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(out, "sku,name,price,stock,category_id,active").unwrap();
    for i in 0..rows {
        writeln!(
            out,
            "SKU-{i:08},Product number {i},{}.{:02},{},{},{}",
            i % 1_000,
            i % 100,
            i % 500,
            i % 40,
            u8::from(i % 10 != 0)
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// The limit: the same file read once with the csv crate and inserted with one prepared
/// statement, [`RAW_BATCH`] rows per transaction, into a fresh table with the plugin's schema
/// and connection settings (WAL, SQLite's default synchronous). Rows per second.
fn raw_import(csv_path: &Path) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("products.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
    stask_worker_product::db::init_schema(&conn).unwrap();
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(csv_path)
        .unwrap();
    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    let mut more = true;
    while more {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO products (sku, name, price, stock, category_id, active, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                )
                .unwrap();
            for _ in 0..RAW_BATCH {
                if !reader.read_record(&mut record).unwrap() {
                    more = false;
                    break;
                }
                let num = |i: usize| record[i].parse::<i64>().unwrap();
                insert
                    .execute(params![
                        &record[0],
                        &record[1],
                        record[2].parse::<f64>().unwrap(),
                        num(3),
                        num(4),
                        num(5)
                    ])
                    .unwrap();
                rows += 1;
            }
        }
        tx.commit().unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// `GET /stask/tasks/{id}/download` read to the end in 64 KiB pieces (the body is never held
/// in memory): the bytes of the body and the seconds it took.
fn download(addr: &str, token: &str, id: i64) -> (u64, f64) {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET /stask/tasks/{id}/download HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "download: {status}");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim_end().is_empty() {
            break;
        }
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut bytes = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    (bytes, started.elapsed().as_secs_f64())
}

/// One import of `csv_path` by the `product` library `plugin` in a fresh home: rows per second
/// (over the task's run time) and the daemon's peak RSS in MiB meanwhile.
fn import_once(
    bin: &Binaries,
    plugin: &Path,
    csv_path: &Path,
    rows: usize,
) -> (f64, f64, Home, crate::daemon::Daemon) {
    let home = Home::new(bin);
    home.add_plugin(plugin, "product");
    crate::daemon::sync_disk();
    let d = home.serve(&[]);
    let mut conn = d.connect();
    let sampler = Sampler::start(d.pid());
    let body = serde_json::json!({"file": csv_path}).to_string();
    let id = conn.create("product", "import", &body);
    let task = conn.wait_completed(id, POLL);
    let rss = sampler.stop().rss_mib();
    let result: serde_json::Value =
        serde_json::from_str(task["result"].as_str().unwrap_or("{}")).unwrap_or_default();
    assert_eq!(result["created"], rows, "import result: {task}");
    let rate = rows as f64 / (task["duration_ms"].as_f64().unwrap() / 1000.0);
    (rate, rss, home, d)
}

/// Import, raw limit, export and download of `rows` products, `report.runs` times.
pub fn products(bin: &Binaries, report: &mut Report, rows: usize) {
    eprintln!("(L2, L3) product import and export of {rows} rows");
    let csv_dir = tempfile::tempdir().unwrap();
    let csv_path = csv_dir.path().join("products.csv");
    write_csv(&csv_path, rows);
    let csv_mib = std::fs::metadata(&csv_path).unwrap().len() as f64 / (1 << 20) as f64;
    let mut import_rate = Vec::new();
    let mut raw_rate = Vec::new();
    let mut import_rss = Vec::new();
    let mut before_rate = Vec::new();
    let before = crate::daemon::before();
    let mut export_secs = Vec::new();
    let mut export_rss = Vec::new();
    let mut download_secs = Vec::new();
    let mut download_rss = Vec::new();
    let mut download_mib = 0.0;
    for _ in 0..report.runs {
        crate::daemon::sync_disk();
        raw_rate.push(raw_import(&csv_path));
        if let Some(before) = &before {
            before_rate.push(import_once(bin, &before.product, &csv_path, rows).0);
        }
        let (rate, rss, _home, d) = import_once(bin, &bin.product, &csv_path, rows);
        import_rate.push(rate);
        import_rss.push(rss);
        let mut conn = d.connect();
        let sampler = Sampler::start(d.pid());
        let id = conn.create("product", "export", "{}");
        let task = conn.wait_completed(id, POLL);
        export_rss.push(sampler.stop().rss_mib());
        export_secs.push(task["duration_ms"].as_f64().unwrap() / 1000.0);

        let sampler = Sampler::start(d.pid());
        let (bytes, secs) = download(&d.addr, &d.token, id);
        download_rss.push(sampler.stop().rss_mib());
        download_secs.push(secs);
        download_mib = bytes as f64 / (1 << 20) as f64;
    }
    let config = format!("{rows} rows, {csv_mib:.0} MiB CSV, new SKUs, default settings");
    if before.is_some() {
        report.add(
            "(L2) product import, before",
            "rows/s",
            &format!("{config}, the plugin of STASK_BENCH_BEFORE"),
            before_rate,
        );
    }
    let plugin = report.add("(L2) product import", "rows/s", &config, import_rate);
    let raw = report.add(
        "(L2) raw rusqlite insert loop (the limit)",
        "rows/s",
        &format!(
            "same CSV read once, one prepared INSERT, {RAW_BATCH} rows per transaction, same schema and settings"
        ),
        raw_rate,
    );
    report.note(format!(
        "(L2) the import reaches {:.0} % of the raw insert loop (goal: at least 50 %)",
        plugin / raw * 100.0
    ));
    report.add(
        "(L2) RSS peak during the import",
        "MiB",
        &config,
        import_rss,
    );
    report.add(
        "(L3) product export",
        "s",
        &format!("{rows} rows, all columns"),
        export_secs,
    );
    report.add(
        "(L3) RSS peak during the export",
        "MiB",
        &config,
        export_rss,
    );
    report.add(
        "(L3) download of the export over HTTP",
        "s",
        &format!("GET /stask/tasks/{{id}}/download, {download_mib:.0} MiB, read in 64 KiB pieces"),
        download_secs,
    );
    report.add(
        "(L3) RSS peak during the download",
        "MiB",
        "must not grow with the file (streamed)",
        download_rss,
    );
}

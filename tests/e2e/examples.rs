//! The example workers end to end through the real daemon: `product` (CSV import and export
//! with download), `email_campaign` (templated messages into the outbox) and `system` (storage
//! clean-up that never leaves its folders).

use serde_json::{json, Value};
use stask_tests::{Daemon, Home};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A downloaded file: status, headers and bytes.
struct Download {
    status: u16,
    content_type: String,
    disposition: String,
    body: Vec<u8>,
}

fn download(d: &Daemon, id: i64) -> Download {
    let response = ureq::get(&format!("{}/stask/tasks/{id}/download", d.base))
        .set("Authorization", &format!("Bearer {}", d.token))
        .timeout(Duration::from_secs(30))
        .call();
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("download {id}: {e}"),
    };
    let status = response.status();
    let content_type = response.header("Content-Type").unwrap_or("").to_owned();
    let disposition = response
        .header("Content-Disposition")
        .unwrap_or("")
        .to_owned();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    Download {
        status,
        content_type,
        disposition,
        body,
    }
}

/// The task's `result` text parsed as JSON.
fn result_json(task: &Value) -> Value {
    let text = task["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no result text: {task}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("result {text:?} is not JSON: {e}"))
}

fn log_lines(d: &Daemon, id: i64) -> Vec<String> {
    d.get(&format!("/stask/tasks/{id}")).body["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str().map(str::to_owned))
        .collect()
}

fn completed(d: &Daemon, id: i64) -> Value {
    let done = d.wait_finished(id);
    assert_eq!(
        done["status"],
        "completed",
        "{done}\n{:#?}",
        log_lines(d, id)
    );
    done
}

/// One product as the test writes it into a CSV.
#[derive(Debug, Clone, PartialEq)]
struct Product {
    sku: &'static str,
    name: &'static str,
    price: f64,
    stock: i64,
    category_id: i64,
    active: bool,
}

fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) {
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(header).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.flush().unwrap();
}

/// Parses an exported CSV into (header, rows).
fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// Exports `fields` with `filters`, downloads the file and checks its headers.
fn export(d: &Daemon, filters: Value, fields: &[&str]) -> Vec<Vec<String>> {
    let id = d.create(
        "product",
        "export",
        json!({"format": "csv", "filters": filters, "fields": fields}),
    );
    let done = completed(d, id);
    let name = format!("products-export-{id}.csv");
    assert_eq!(done["result_file"], name, "{done}");
    assert_eq!(
        done["download_url"],
        format!("/stask/tasks/{id}/download"),
        "{done}"
    );
    let file = download(d, id);
    assert_eq!(file.status, 200, "{}", String::from_utf8_lossy(&file.body));
    assert!(
        file.content_type.starts_with("text/csv"),
        "Content-Type {:?}",
        file.content_type
    );
    assert_eq!(file.disposition, format!("attachment; filename=\"{name}\""));
    let (header, rows) = parse_csv(&file.body);
    assert_eq!(header, fields);
    assert_eq!(
        result_json(&done)["rows"],
        rows.len(),
        "the result counts the rows in the file"
    );
    rows
}

/// What an export of `sku,name,price,stock` should contain for these products.
fn expected_rows(products: &[&Product]) -> Vec<(String, String, f64, i64)> {
    products
        .iter()
        .map(|p| (p.sku.to_owned(), p.name.to_owned(), p.price, p.stock))
        .collect()
}

fn typed_rows(rows: &[Vec<String>]) -> Vec<(String, String, f64, i64)> {
    rows.iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].clone(),
                r[2].parse()
                    .unwrap_or_else(|_| panic!("price {:?} in {r:?}", r[2])),
                r[3].parse()
                    .unwrap_or_else(|_| panic!("stock {:?} in {r:?}", r[3])),
            )
        })
        .collect()
}

#[test]
fn product_csv_import_then_filtered_export_and_download() {
    let home = Home::with_workers(&["product"]);
    std::fs::create_dir_all(home.storage().join("uploads")).unwrap();
    let good = [
        Product {
            sku: "A-1",
            name: "Alpha",
            price: 9.5,
            stock: 3,
            category_id: 1,
            active: true,
        },
        Product {
            sku: "A-2",
            name: "Beta",
            price: 12.0,
            stock: 0,
            category_id: 2,
            active: true,
        },
        Product {
            sku: "B-1",
            name: "Gamma, large",
            price: 4.25,
            stock: 10,
            category_id: 1,
            active: true,
        },
        Product {
            sku: "B-2",
            name: "Delta \"quoted\"",
            price: 7.0,
            stock: 2,
            category_id: 1,
            active: false,
        },
        Product {
            sku: "C-1",
            name: "Epsilon",
            price: 0.5,
            stock: 8,
            category_id: 1,
            active: true,
        },
    ];
    let mut rows: Vec<Vec<String>> = good
        .iter()
        .map(|p| {
            vec![
                p.sku.to_owned(),
                p.name.to_owned(),
                p.price.to_string(),
                p.stock.to_string(),
                p.category_id.to_string(),
                if p.active { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    // Two bad rows among the good ones: no SKU, and a price that is not a number.
    rows.insert(
        2,
        ["", "Nameless", "1", "1", "1", "yes"]
            .map(str::to_owned)
            .to_vec(),
    );
    rows.push(
        ["Z-1", "Cheap", "cheap", "1", "1", "yes"]
            .map(str::to_owned)
            .to_vec(),
    );
    write_csv(
        &home.storage().join("uploads/products.csv"),
        &["sku", "name", "price", "stock", "category_id", "active"],
        &rows,
    );

    let d = home.serve();
    let id = d.create("product", "import", json!({"file": "uploads/products.csv"}));
    let done = completed(&d, id);
    assert_eq!(
        result_json(&done),
        json!({"created": good.len(), "updated": 0, "skipped": 0, "errors": 2})
    );
    assert_eq!(done["processed"], rows.len());
    let log = log_lines(&d, id);
    assert!(
        log.iter().any(|l| l.contains("missing sku")),
        "the row without a SKU is reported: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("\"cheap\"")),
        "the bad price is reported: {log:#?}"
    );

    // Filtered export: category 1 and active, four columns.
    let fields = ["sku", "name", "price", "stock"];
    let exported = export(&d, json!({"category_id": 1, "active": true}), &fields);
    let matching: Vec<&Product> = good
        .iter()
        .filter(|p| p.category_id == 1 && p.active)
        .collect();
    assert!(matching.len() >= 2 && matching.len() < good.len());
    assert_eq!(typed_rows(&exported), expected_rows(&matching));

    // A price range and a SKU prefix combine with AND.
    let exported = export(
        &d,
        json!({"sku_prefix": "B-", "min_price": 5}),
        &["sku", "name", "price", "stock"],
    );
    let matching: Vec<&Product> = good
        .iter()
        .filter(|p| p.sku.starts_with("B-") && p.price >= 5.0)
        .collect();
    assert_eq!(typed_rows(&exported), expected_rows(&matching));

    // Second import: existing SKUs may not be updated, new ones are created.
    write_csv(
        &home.storage().join("uploads/second.csv"),
        &["sku", "name", "price", "stock"],
        &[
            ["A-1", "Alpha renamed", "99", "50"]
                .map(str::to_owned)
                .to_vec(),
            ["N-1", "Newcomer", "3", "1"].map(str::to_owned).to_vec(),
        ],
    );
    let id = d.create(
        "product",
        "import",
        json!({"file": "uploads/second.csv", "update_existing": false, "create_new": true}),
    );
    assert_eq!(
        result_json(&completed(&d, id)),
        json!({"created": 1, "updated": 0, "skipped": 1, "errors": 0})
    );
    // Third import: updates allowed, new SKUs not; a partial row keeps the other columns.
    write_csv(
        &home.storage().join("uploads/third.csv"),
        &["sku", "stock"],
        &[
            ["A-2", "77"].map(str::to_owned).to_vec(),
            ["N-2", "5"].map(str::to_owned).to_vec(),
        ],
    );
    let id = d.create(
        "product",
        "import",
        json!({"file": "uploads/third.csv", "update_existing": true, "create_new": false}),
    );
    assert_eq!(
        result_json(&completed(&d, id)),
        json!({"created": 0, "updated": 1, "skipped": 1, "errors": 0})
    );

    let all = typed_rows(&export(&d, json!({}), &fields));
    let by_sku = |sku: &str| all.iter().find(|r| r.0 == sku).cloned();
    assert_eq!(
        by_sku("A-1"),
        Some(("A-1".into(), "Alpha".into(), 9.5, 3)),
        "update_existing=false left A-1 alone"
    );
    assert_eq!(
        by_sku("A-2"),
        Some(("A-2".into(), "Beta".into(), 12.0, 77)),
        "the stock-only row updated stock and kept name and price"
    );
    assert_eq!(
        by_sku("N-1"),
        Some(("N-1".into(), "Newcomer".into(), 3.0, 1))
    );
    assert_eq!(by_sku("N-2"), None, "create_new=false created nothing");
    assert_eq!(all.len(), good.len() + 1, "{all:#?}");
}

#[test]
fn product_import_of_a_missing_file_fails_at_once_with_a_clear_message() {
    let home = Home::with_workers(&["product"]);
    let d = home.serve();
    let id = d.create(
        "product",
        "import",
        json!({"file": "uploads/no-such-file.csv", "max_attempts": 3}),
    );
    let failed = d.wait_finished(id);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(
        failed["attempts"], 1,
        "a missing file is a permanent error: {failed}"
    );
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("cannot read") && message.contains("no-such-file.csv"),
        "{message}"
    );
    assert_eq!(
        download(&d, id).status,
        409,
        "a failed task offers no download"
    );
}

#[test]
fn email_campaign_renders_each_message_and_skips_the_invalid_address() {
    let home = Home::with_workers(&["email_campaign"]);
    let d = home.serve();
    let subject = "Spring news for {{name}}";
    let id = d.create(
        "email_campaign",
        "send",
        json!({
            "subject": subject,
            "body": "Hello {{name}}, your code is {{code}}.",
            "recipients": [
                {"email": "ada@example.com", "name": "Ada", "code": "A-100"},
                {"email": "not an address", "name": "Mallory", "code": "M-666"},
                {"email": "bob@example.com", "name": "Bob", "code": "B-200"},
            ],
        }),
    );
    let done = completed(&d, id);
    let result = result_json(&done);
    assert_eq!(
        (result["sent"].as_i64(), result["failed"].as_i64()),
        (Some(2), Some(1)),
        "{result}"
    );
    assert_eq!(result["transport"], "outbox");
    let log = log_lines(&d, id);
    assert!(
        log.iter()
            .any(|l| l.contains("recipient 2") && l.contains("not an address")),
        "the bad recipient is logged: {log:#?}"
    );

    let outbox = home.storage().join("workers/email_campaign/outbox");
    let mut messages: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("{}: {e}", outbox.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "one .eml per valid recipient");
    messages.sort_by_key(|m| !m.contains("ada@example.com"));
    for (message, (name, email, code)) in messages.iter().zip([
        ("Ada", "ada@example.com", "A-100"),
        ("Bob", "bob@example.com", "B-200"),
    ]) {
        assert!(
            message.contains(&format!("To: {name} <{email}>")),
            "{message}"
        );
        assert!(
            message.contains(&format!("Subject: Spring news for {name}")),
            "{message}"
        );
        assert!(
            message.contains(&format!("Hello {name}, your code is {code}.")),
            "{message}"
        );
        assert!(!message.contains("{{"), "unrendered placeholder: {message}");
        assert!(!message.contains("Mallory"), "{message}");
    }
}

/// Sets a file's modification time `days` days into the past.
fn age(path: &Path, days: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

fn write_aged(path: &Path, content: &str, days: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    age(path, days);
}

#[test]
fn system_cleanup_deletes_old_uploads_and_nothing_outside() {
    let home = Home::with_workers(&["system"]);
    let storage = home.storage();
    let uploads = storage.join("stask/uploads");
    let old = uploads.join("old.csv");
    let old_nested = uploads.join("batch/older.csv");
    let fresh = uploads.join("fresh.csv");
    write_aged(&old, "old upload", 10);
    write_aged(&old_nested, "older upload", 20);
    write_aged(&fresh, "fresh upload", 0);
    // Just as old, but outside the swept folders.
    let keep = storage.join("keep.txt");
    let beside = storage.join("stask/notes.txt");
    let worker_file = storage.join("workers/system/state.txt");
    write_aged(&keep, "keep me", 30);
    write_aged(&beside, "keep me too", 30);
    write_aged(&worker_file, "worker data", 30);
    // A link in uploads pointing outside: only the link itself may go.
    std::os::unix::fs::symlink(&keep, uploads.join("link-to-keep.txt")).unwrap();

    let d = home.serve();
    let id = d.create("system", "cleanup", json!({"older_than_days": 5}));
    let result = result_json(&completed(&d, id));
    assert_eq!(
        result["files_deleted"], 2,
        "the two files older than 5 days: {result}"
    );
    assert_eq!(
        result["bytes_freed"],
        "old upload".len() + "older upload".len(),
        "{result}"
    );
    assert!(!old.exists() && !old_nested.exists());
    assert!(
        !uploads.join("batch").exists(),
        "the folder the sweep emptied is removed"
    );
    assert!(fresh.exists(), "a file newer than the limit stays");
    assert!(uploads.join("link-to-keep.txt").symlink_metadata().is_ok());

    let id = d.create("system", "cleanup", json!({"older_than_days": 0}));
    let result = result_json(&completed(&d, id));
    assert!(
        result["files_deleted"].as_u64().unwrap_or(0) >= 1,
        "{result}"
    );
    assert!(!fresh.exists(), "with 0 days every upload is old");
    assert!(
        uploads.join("link-to-keep.txt").symlink_metadata().is_err(),
        "the link in uploads is removed"
    );
    for (path, content) in [
        (&keep, "keep me"),
        (&beside, "keep me too"),
        (&worker_file, "worker data"),
    ] {
        assert_eq!(
            std::fs::read_to_string(path).ok().as_deref(),
            Some(content),
            "{} must not be touched",
            path.display()
        );
    }
    assert!(uploads.is_dir(), "the swept folder itself stays");
}

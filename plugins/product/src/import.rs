//! `import`: CSV rows into the products table, upserted by SKU.
//!
//! The file is read twice: once to count rows (so progress has a total and an ETA), once to
//! import. Rows are written in transactions of [`BATCH_ROWS`]: a crash or cancellation loses at
//! most one batch, and SQLite is not asked to fsync after every row.

use crate::db::{self, Policy, ProductRow, Upserted};
use crate::input::{bool_or, opt_str};
use csv::{ByteRecord, ReaderBuilder, StringRecord};
use serde_json::{json, Value};
use stask_plugin_api::{Context, Output, TaskError, TaskOptions};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Rows per transaction: each commit is an fsync (the database keeps SQLite's default
/// synchronous), so batches of a few hundred rows spent most of an import waiting for the
/// disk; 10,000 rows are a fraction of a second of work to lose on a crash or a cancel.
const BATCH_ROWS: usize = 10_000;
/// Row errors logged one by one; past this only the count grows, so a completely wrong file
/// does not flood the task log.
const MAX_LOGGED_ERRORS: u64 = 20;
/// Column order when the file has no header row.
const POSITIONAL: &[&str] = &["sku", "name", "price", "stock", "category_id", "active"];

/// The `import` task data, validated.
#[derive(Debug, PartialEq)]
struct Options {
    path: PathBuf,
    delimiter: u8,
    skip_first_row: bool,
    policy: Policy,
    /// Where to send the "import finished" e-mail (`notify`), if anywhere.
    notify: Option<String>,
}

fn parse_options(data: &Value, storage_dir: &Path) -> Result<Options, TaskError> {
    let file = opt_str(data, "file")?
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| TaskError::permanent("file is required: the path of the CSV to import"))?;
    let path = resolve(Path::new(file), storage_dir)?;
    Ok(Options {
        path,
        delimiter: parse_delimiter(opt_str(data, "delimiter")?)?,
        skip_first_row: bool_or(data, "skip_first_row", true)?,
        policy: Policy {
            update_existing: bool_or(data, "update_existing", true)?,
            create_new: bool_or(data, "create_new", true)?,
        },
        notify: match opt_str(data, "notify")?.map(str::trim) {
            None => None,
            Some(address) if address.contains('@') && !address.contains(char::is_whitespace) => {
                Some(address.to_owned())
            }
            Some(other) => {
                return Err(TaskError::permanent(format!(
                    "notify must be an e-mail address, got '{other}'"
                )))
            }
        },
    })
}

/// The worker and action that deliver the "import finished" e-mail.
const NOTIFY_WORKER: (&str, &str) = ("email_campaign", "send");

/// Queues the "import finished" e-mail to `address` as a follow-up of this task (for the
/// `email_campaign` worker's `send`). Its unique key is this task's, held for a day: a
/// retried run of the same task does not send the e-mail twice. A refusal (say, no
/// `email_campaign` worker here) does not undo the import, which is committed: it is logged
/// and reported in the result.
fn notify(ctx: &Context<'_>, address: &str, counts: &Counts, file: &Path) -> Value {
    let body = format!(
        "The product import of {} finished: {} created, {} updated, {} skipped, {} errors.",
        file.display(),
        counts.created,
        counts.updated,
        counts.skipped,
        counts.errors
    );
    let data = json!({
        "subject": format!("Product import {} finished", ctx.task_id()),
        "body": body,
        "recipients": [{"email": address}],
    });
    let options = TaskOptions::default()
        .unique_key(format!("product-import-{}-notify", ctx.task_id()))
        .unique_for_secs(86_400);
    match ctx.create_task(NOTIFY_WORKER.0, NOTIFY_WORKER.1, data, &options) {
        Ok(id) => {
            ctx.log(&format!(
                "queued the notification to {address} as task {id}"
            ));
            json!({"notification_task": id})
        }
        Err(e) => {
            ctx.warn(&format!("cannot queue the notification to {address}: {e}"));
            json!({"notification_error": e.message()})
        }
    }
}

/// Relative paths name files in the host's storage folder (where uploads land), never in the
/// process's working directory.
fn resolve(file: &Path, storage_dir: &Path) -> Result<PathBuf, TaskError> {
    if file.is_absolute() {
        return Ok(file.to_path_buf());
    }
    if storage_dir.as_os_str().is_empty() {
        return Err(TaskError::permanent(format!(
            "file {} is relative but the host gave no storage folder; use an absolute path",
            file.display()
        )));
    }
    Ok(storage_dir.join(file))
}

/// One ASCII character (the csv crate splits on bytes); quotes and line breaks would make the
/// file unparsable.
fn parse_delimiter(text: Option<&str>) -> Result<u8, TaskError> {
    let Some(text) = text else { return Ok(b',') };
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() && !matches!(c, '"' | '\n' | '\r') => Ok(c as u8),
        _ => Err(TaskError::permanent(format!(
            "delimiter must be a single ASCII character other than a quote or line break, got {text:?}"
        ))),
    }
}

/// Where each known field sits in a row; `None` when the file has no such column.
#[derive(Debug, Clone, PartialEq)]
struct Columns {
    index: HashMap<&'static str, usize>,
}

impl Columns {
    /// Columns in [`POSITIONAL`] order, for files without a header row.
    fn positional() -> Self {
        Columns {
            index: POSITIONAL
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, i))
                .collect(),
        }
    }

    /// Maps header names (trimmed, case-insensitive) to columns. Returns the unknown names too,
    /// so the task log can say which columns were ignored.
    fn from_header(header: &StringRecord) -> Result<(Self, Vec<String>), TaskError> {
        if header.iter().all(|h| h.trim().is_empty()) {
            return Err(TaskError::permanent(
                "the CSV file is empty: expected a header row with at least a sku column",
            ));
        }
        let mut index = HashMap::new();
        let mut ignored = Vec::new();
        for (i, name) in header.iter().enumerate() {
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            match POSITIONAL.iter().find(|c| **c == name) {
                Some(column) => {
                    if index.insert(*column, i).is_some() {
                        return Err(TaskError::permanent(format!(
                            "the CSV header names column {column} twice"
                        )));
                    }
                }
                None => ignored.push(name),
            }
        }
        if !index.contains_key("sku") {
            return Err(TaskError::permanent(format!(
                "the CSV header has no sku column (columns: {}); known columns: {}",
                header.iter().collect::<Vec<_>>().join(", "),
                POSITIONAL.join(", ")
            )));
        }
        Ok((Columns { index }, ignored))
    }

    /// The trimmed cell of `column`, `None` when the column is absent or the cell empty.
    fn cell<'r>(&self, record: &'r StringRecord, column: &str) -> Option<&'r str> {
        let i = *self.index.get(column)?;
        record.get(i).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Parses one data row; the error says what is wrong with it.
    fn parse_row(&self, record: &StringRecord) -> Result<ProductRow, String> {
        let sku = self.cell(record, "sku").ok_or("missing sku")?;
        let price = self
            .cell(record, "price")
            .map(|v| match v.parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
                _ => Err(format!("price {v:?} is not a non-negative number")),
            })
            .transpose()?;
        let int = |column: &str| {
            self.cell(record, column)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{column} {v:?} is not a whole number"))
                })
                .transpose()
        };
        let active = self
            .cell(record, "active")
            .map(|v| parse_flag(v).ok_or_else(|| format!("active {v:?} is not a yes/no value")))
            .transpose()?;
        Ok(ProductRow {
            sku: sku.to_owned(),
            name: self.cell(record, "name").map(str::to_owned),
            price,
            stock: int("stock")?,
            category_id: int("category_id")?,
            active,
        })
    }
}

/// Spreadsheet exports write booleans in many ways.
fn parse_flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// What the import did, the task's result.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    created: u64,
    updated: u64,
    /// Valid rows the policy did not allow to be written.
    skipped: u64,
    /// Invalid rows (not written).
    errors: u64,
}

fn open_csv(options: &Options) -> Result<csv::Reader<File>, TaskError> {
    let unreadable = |e: std::io::Error| {
        TaskError::permanent(format!("cannot read {}: {e}", options.path.display()))
    };
    let meta = std::fs::metadata(&options.path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(TaskError::permanent(format!(
            "{} is not a file",
            options.path.display()
        )));
    }
    let file = File::open(&options.path).map_err(unreadable)?;
    Ok(csv_reader(file, options.delimiter, options.skip_first_row))
}

/// The CSV reader of an import: rows may have any number of cells.
fn csv_reader<R: Read>(input: R, delimiter: u8, has_header: bool) -> csv::Reader<R> {
    ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(has_header)
        .flexible(true)
        .from_reader(input)
}

/// The columns of a file: named by its header row, or in [`POSITIONAL`] order without one.
/// Also returns the header names that were ignored.
fn columns_of<R: Read>(
    reader: &mut csv::Reader<R>,
    has_header: bool,
) -> Result<(Columns, Vec<String>), TaskError> {
    if !has_header {
        return Ok((Columns::positional(), Vec::new()));
    }
    let header = reader
        .headers()
        .map_err(|e| TaskError::permanent(format!("cannot read the CSV header: {e}")))?
        .clone();
    Columns::from_header(&header)
}

/// What [`parse_csv`] found: data rows, valid and invalid.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CsvSummary {
    /// Rows counted the way the progress total counts them.
    pub counted: u64,
    /// Rows that would be written.
    pub valid: u64,
    /// Rows that would be skipped with an error.
    pub invalid: u64,
}

/// Runs the import's CSV parsing over `bytes` without a database (for the fuzz target): the
/// delimiter option, the header, every row. `Err` is the message the task would fail with.
pub fn parse_csv(
    bytes: &[u8],
    delimiter: Option<&str>,
    skip_first_row: bool,
) -> Result<CsvSummary, String> {
    let delimiter = parse_delimiter(delimiter).map_err(|e| e.to_string())?;
    let mut summary = CsvSummary::default();
    let mut counter = csv_reader(bytes, delimiter, skip_first_row);
    let mut record = ByteRecord::new();
    while counter
        .read_byte_record(&mut record)
        .map_err(|e| e.to_string())?
    {
        summary.counted += 1;
    }
    let mut reader = csv_reader(bytes, delimiter, skip_first_row);
    let (columns, _ignored) = columns_of(&mut reader, skip_first_row).map_err(|e| e.to_string())?;
    for record in reader.into_records() {
        match record
            .map_err(|e| e.to_string())
            .and_then(|r| columns.parse_row(&r))
        {
            Ok(_) => summary.valid += 1,
            Err(_) => summary.invalid += 1,
        }
    }
    Ok(summary)
}

/// Data rows in the file (the header excluded), for the progress total.
fn count_rows(options: &Options) -> Result<u64, TaskError> {
    let mut reader = open_csv(options)?;
    let mut record = ByteRecord::new();
    let mut rows = 0;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
    }
    Ok(rows)
}

/// Runs the `import` action.
pub fn run(ctx: &Context<'_>, data: &Value) -> Result<Output, TaskError> {
    let options = parse_options(data, ctx.storage_dir())?;
    let total = count_rows(&options)?;
    ctx.log(&format!(
        "importing {total} rows from {}",
        options.path.display()
    ));

    let mut reader = open_csv(&options)?;
    let (columns, ignored) = columns_of(&mut reader, options.skip_first_row)?;
    if !ignored.is_empty() {
        ctx.log(&format!("ignoring unknown columns: {}", ignored.join(", ")));
    }

    let mut conn = db::open(ctx.data_dir())?;
    let mut counts = Counts::default();
    let mut processed = 0u64;
    // One record buffer for the whole file: reading into it allocates nothing per row.
    let mut record = StringRecord::new();
    let mut more = true;
    while more {
        let tx = conn.transaction()?;
        for _ in 0..BATCH_ROWS {
            if ctx.is_cancelled() {
                ctx.log(&format!(
                    "cancelled after {processed} rows; batches committed before are kept"
                ));
                return Err(TaskError::cancelled());
            }
            let parsed = match reader.read_record(&mut record) {
                Ok(false) => {
                    more = false;
                    break;
                }
                Ok(true) => columns
                    .parse_row(&record)
                    .map_err(|reason| (line_of(&record), reason)),
                Err(e) => Err((
                    e.position().map(|p| p.line()),
                    format!("unreadable row: {e}"),
                )),
            };
            processed += 1;
            match parsed {
                Ok(row) => match db::upsert(&tx, &row, options.policy)? {
                    Upserted::Created => counts.created += 1,
                    Upserted::Updated => counts.updated += 1,
                    Upserted::Skipped => counts.skipped += 1,
                },
                Err((line, reason)) => {
                    counts.errors += 1;
                    if counts.errors <= MAX_LOGGED_ERRORS {
                        let at = line.map_or_else(|| "?".to_owned(), |l| l.to_string());
                        ctx.warn(&format!("line {at}: {reason}; row skipped"));
                    } else if counts.errors == MAX_LOGGED_ERRORS + 1 {
                        ctx.warn("more row errors; only counting them from here on");
                    }
                }
            }
            if processed % 100 == 0 {
                ctx.progress_items(processed, total.max(processed), "importing rows");
            }
        }
        tx.commit()?;
        ctx.progress_items(processed, total.max(processed), "importing rows");
    }

    ctx.log(&format!(
        "import done: {} created, {} updated, {} skipped, {} errors",
        counts.created, counts.updated, counts.skipped, counts.errors
    ));
    let mut result = json!({
        "created": counts.created,
        "updated": counts.updated,
        "skipped": counts.skipped,
        "errors": counts.errors,
    });
    if let Some(address) = &options.notify {
        if let (Value::Object(result), Value::Object(note)) =
            (&mut result, notify(ctx, address, &counts, &options.path))
        {
            result.extend(note);
        }
    }
    Ok(Output::json(&result))
}

fn line_of(record: &StringRecord) -> Option<u64> {
    record.position().map(|p| p.line())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[&str]) -> StringRecord {
        StringRecord::from(cells.to_vec())
    }

    #[test]
    fn options_have_defaults_and_resolve_relative_paths() {
        let options =
            parse_options(&json!({"file": "uploads/p.csv"}), Path::new("/srv/storage")).unwrap();
        assert_eq!(
            options,
            Options {
                path: PathBuf::from("/srv/storage/uploads/p.csv"),
                delimiter: b',',
                skip_first_row: true,
                policy: Policy {
                    update_existing: true,
                    create_new: true
                },
                notify: None,
            }
        );
        let notified = parse_options(
            &json!({"file": "p.csv", "notify": " ops@example.com "}),
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(notified.notify.as_deref(), Some("ops@example.com"));
        let absolute = parse_options(&json!({"file": "/tmp/p.csv"}), Path::new("/srv")).unwrap();
        assert_eq!(absolute.path, PathBuf::from("/tmp/p.csv"));
    }

    #[test]
    fn options_reject_bad_input() {
        let storage = Path::new("/srv");
        for data in [
            json!({}),
            json!({"file": ""}),
            json!({"file": 3}),
            json!({"file": "a.csv", "delimiter": ";;"}),
            json!({"file": "a.csv", "delimiter": ""}),
            json!({"file": "a.csv", "delimiter": "\""}),
            json!({"file": "a.csv", "delimiter": "§"}),
            json!({"file": "a.csv", "create_new": "no"}),
            json!({"file": "a.csv", "notify": "nobody"}),
            json!({"file": "a.csv", "notify": "a b@c"}),
            json!({"file": "a.csv", "notify": 5}),
        ] {
            assert!(parse_options(&data, storage).is_err(), "{data} accepted");
        }
        assert!(parse_options(&json!({"file": "a.csv"}), Path::new("")).is_err());
        assert_eq!(parse_delimiter(Some("\t")).unwrap(), b'\t');
        assert_eq!(parse_delimiter(Some(";")).unwrap(), b';');
    }

    #[test]
    fn header_maps_columns_by_name_in_any_order() {
        let (columns, ignored) =
            Columns::from_header(&record(&["\u{feff}Price", " SKU ", "colour", "stock"])).unwrap();
        assert_eq!(ignored, vec!["colour".to_owned()]);
        let row = columns
            .parse_row(&record(&["9.99", "A-1", "red", " 4 "]))
            .unwrap();
        assert_eq!(
            row,
            ProductRow {
                sku: "A-1".into(),
                price: Some(9.99),
                stock: Some(4),
                ..ProductRow::default()
            }
        );
    }

    #[test]
    fn header_needs_a_single_sku_column() {
        assert!(Columns::from_header(&record(&["name", "price"])).is_err());
        assert!(Columns::from_header(&record(&["sku", "SKU"])).is_err());
        assert!(Columns::from_header(&record(&[])).is_err());
    }

    #[test]
    fn positional_rows_and_short_rows() {
        let columns = Columns::positional();
        let row = columns
            .parse_row(&record(&["B-2", "Bag", "12.5", "3", "7", "no"]))
            .unwrap();
        assert_eq!(
            row,
            ProductRow {
                sku: "B-2".into(),
                name: Some("Bag".into()),
                price: Some(12.5),
                stock: Some(3),
                category_id: Some(7),
                active: Some(false),
            }
        );
        let short = columns.parse_row(&record(&["C-3", "Cup"])).unwrap();
        assert_eq!(short.price, None);
    }

    #[test]
    fn row_errors_name_the_problem() {
        let columns = Columns::positional();
        let error = |cells: &[&str]| columns.parse_row(&record(cells)).unwrap_err();
        assert_eq!(error(&["", "Nameless"]), "missing sku");
        assert!(error(&["A", "x", "cheap"]).contains("price"));
        assert!(error(&["A", "x", "-1"]).contains("price"));
        assert!(error(&["A", "x", "NaN"]).contains("price"));
        assert!(error(&["A", "x", "1", "many"]).contains("stock"));
        assert!(error(&["A", "x", "1", "1", "1", "maybe"]).contains("active"));
    }

    #[test]
    fn parse_csv_goes_through_every_row_like_the_import() {
        let file = b"sku;name;price\nA;\"multi\nline\";1\n;nameless;2\nB;b;cheap\nC;c;3\n";
        assert_eq!(
            parse_csv(file, Some(";"), true),
            Ok(CsvSummary {
                counted: 4,
                valid: 2,
                invalid: 2
            })
        );
        assert!(parse_csv(b"name\nx\n", None, true)
            .unwrap_err()
            .contains("no sku column"));
        assert!(parse_csv(file, Some(";;"), true).is_err());
        let positional = parse_csv(b"A,a,1\nB,b,x\n", None, false).unwrap();
        assert_eq!((positional.valid, positional.invalid), (1, 1));
    }

    #[test]
    fn counts_rows_without_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "sku;name\nA;\"multi\nline\"\nB;b\n").unwrap();
        let mut options =
            parse_options(&json!({"file": "p.csv", "delimiter": ";"}), dir.path()).unwrap();
        assert_eq!(count_rows(&options).unwrap(), 2);
        options.skip_first_row = false;
        assert_eq!(count_rows(&options).unwrap(), 3);
        options.path = dir.path().join("missing.csv");
        assert!(count_rows(&options).is_err());
    }
}

//! `product`: keeps a products table in the worker's own SQLite file and moves it in and out as
//! CSV.
//!
//! Actions:
//! - `import`: reads a CSV file (`file`, `delimiter`, `skip_first_row`, `update_existing`,
//!   `create_new`) and upserts its rows by SKU. Bad rows are skipped and reported, not fatal.
//!   With `notify` (an e-mail address), a finished import queues a follow-up task for the
//!   `email_campaign` worker that mails the counts there (once per task, even when retried).
//! - `export`: writes the (optionally filtered) table as CSV into the task's output folder
//!   (`format`, `filters`, `fields`).
//!
//! The database lives in `{data_dir}/products.db`, so it survives plugin reloads and belongs to
//! this worker alone.

pub mod db;
mod export;
mod import;
mod input;

/// The import's CSV parsing on bytes, for the fuzz target in `tests/fuzz/` (not an API).
#[doc(hidden)]
pub use import::{parse_csv, CsvSummary};

use serde_json::Value;
use stask_plugin_api::{export_worker, Context, Output, TaskError, Worker, WorkerInfo};

#[derive(Default)]
struct Product;

impl Worker for Product {
    fn info(&self) -> WorkerInfo {
        WorkerInfo::new("product", "Products")
            .scope("commerce")
            .description("Imports products from CSV into its own SQLite table and exports them.")
            .version(env!("CARGO_PKG_VERSION"))
            .action(
                "import",
                "Imports a CSV file: file, delimiter, skip_first_row, update_existing, create_new, \
                 notify (an e-mail address told when it finished)",
            )
            .action("export", "Exports products as CSV: format, filters, fields")
    }

    fn run(&self, ctx: &Context<'_>, action: &str, data: Value) -> Result<Output, TaskError> {
        match action {
            "import" => import::run(ctx, &data),
            "export" => export::run(ctx, &data),
            other => Err(TaskError::permanent(format!(
                "unknown action {other}; valid actions: import, export"
            ))),
        }
    }
}

export_worker!(Product);

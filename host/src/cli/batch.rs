//! `stask batch ...`: create a batch from a JSON file (the body `POST /stask/batches` takes)
//! and show one. A running daemon picks the new tasks up at its next look at the database.

use super::{engine, CliError, CliResult};
use crate::clock::now_ms;
use crate::http::batches::{parse_batch, BatchView};
use clap::Subcommand;
use std::path::PathBuf;

/// `stask batch ...`
#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Create a batch: every task of the file in one transaction, all or nothing.
    Create {
        /// A JSON file `{"tasks": [{identifier, action, data?, ...}], "on_complete"?: {...},
        /// "name"?: "..."}` (`-` reads stdin).
        #[arg(long)]
        file: PathBuf,
        /// Print the answer as JSON (the batch id, task ids, on_complete id).
        #[arg(long)]
        json: bool,
    },
    /// Show a batch: counts per status, progress, ETA, its on_complete task.
    Show {
        /// Batch id.
        #[arg(value_parser = super::task_id)]
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `stask batch` command.
pub fn run(home: Option<PathBuf>, cmd: BatchCommand) -> CliResult {
    match cmd {
        BatchCommand::Create { file, json } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| CliError::new(5, format!("cannot read {}: {e}", file.display())))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| CliError::new(5, format!("{} is not JSON: {e}", file.display())))?;
            let batch = parse_batch(Some(value), None).map_err(|e| CliError::new(5, e.message))?;
            let created = engine(home)?.create_batch(&batch)?;
            let ids: Vec<i64> = created.tasks.iter().map(|t| t.id).collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": created.id,
                        "task_ids": ids,
                        "on_complete_task_id": created.on_complete_task_id,
                    })
                );
            } else {
                eprintln!(
                    "batch {} created with {} tasks{}",
                    created.id,
                    created.tasks.iter().filter(|t| !t.duplicate).count(),
                    created
                        .on_complete_task_id
                        .map(|id| format!(", on_complete task {id}"))
                        .unwrap_or_default()
                );
                println!("{}", created.id);
            }
            Ok(())
        }
        BatchCommand::Show { id, json } => {
            let batch = engine(home)?.batch(id)?;
            let view = BatchView::of(&batch, now_ms());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&view).unwrap_or_default()
                );
                return Ok(());
            }
            let c = &view.counts;
            println!(
                "batch {}{}",
                view.id,
                view.name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
            println!("created      {}", view.created_at);
            println!("tasks        {}", view.total);
            println!(
                "finished     {} ({:.1} %){}",
                view.finished,
                view.progress,
                if view.done { ", done" } else { "" }
            );
            println!(
                "counts       pending {}, preparing {}, running {}, completed {}, failed {}, cancelled {}",
                c.pending, c.preparing, c.running, c.completed, c.failed, c.cancelled
            );
            if let Some(eta) = view.eta_seconds {
                println!("eta          {}", crate::clock::human_duration(eta));
            }
            if let Some(id) = view.on_complete_task_id {
                println!("on_complete  task {id}");
            }
            if let Some(at) = &view.cancelled_at {
                println!("cancelled    {at}");
            }
            Ok(())
        }
    }
}

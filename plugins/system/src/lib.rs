//! `system`: housekeeping of the host's storage folder.
//!
//! Actions:
//! - `cleanup`: deletes files older than `older_than_days` (default 30) under
//!   `storage/stask/results` and `storage/stask/uploads`, removing folders it emptied; with
//!   `clean_cache: true` it also empties `storage/cache`.
//! - `clean_cache`: only empties `storage/cache`.
//!
//! Both answer `{"files_deleted":N,"bytes_freed":N,"cache_cleared":bool}`. Nothing outside those
//! folders is touched and symbolic links are never followed (see [`sweep`]).

mod sweep;

use serde_json::{json, Value};
use stask_plugin_api::{export_worker, Context, Output, TaskError, Worker, WorkerInfo};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use sweep::{Plan, Prune, Root, Totals};

/// Folders under `storage/` that `cleanup` ages out.
const AGED_FOLDERS: &[&str] = &["stask/results", "stask/uploads"];
/// Folder under `storage/` that is emptied on request.
const CACHE_FOLDER: &str = "cache";
const DEFAULT_DAYS: u64 = 30;
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Default)]
struct System;

impl Worker for System {
    fn info(&self) -> WorkerInfo {
        WorkerInfo::new("system", "System maintenance")
            .scope("stask")
            .description("Deletes old task results and uploads, and empties the cache.")
            .version(env!("CARGO_PKG_VERSION"))
            .action(
                "cleanup",
                "Deletes results and uploads older than older_than_days (default 30); \
                 clean_cache also empties the cache",
            )
            .action("clean_cache", "Empties the cache folder")
    }

    fn run(&self, ctx: &Context<'_>, action: &str, data: Value) -> Result<Output, TaskError> {
        let storage = storage_dir(ctx)?;
        let options = match action {
            "cleanup" => parse_cleanup(&data)?,
            "clean_cache" => Options {
                older_than_days: None,
                clean_cache: true,
            },
            other => {
                return Err(TaskError::permanent(format!(
                    "unknown action {other}; valid actions: cleanup, clean_cache"
                )))
            }
        };
        sweep_storage(ctx, &storage, &options)
    }
}

/// What to sweep.
#[derive(Debug, PartialEq)]
struct Options {
    /// Age limit for results and uploads; `None` leaves them alone.
    older_than_days: Option<u64>,
    clean_cache: bool,
}

fn parse_cleanup(data: &Value) -> Result<Options, TaskError> {
    let older_than_days = match data.get("older_than_days") {
        None | Some(Value::Null) => DEFAULT_DAYS,
        Some(value) => value.as_u64().ok_or_else(|| {
            TaskError::permanent(format!(
                "older_than_days must be a whole number of days >= 0, got {value}"
            ))
        })?,
    };
    let clean_cache = match data.get("clean_cache") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(TaskError::permanent(format!(
                "clean_cache must be true or false, got {other}"
            )))
        }
    };
    Ok(Options {
        older_than_days: Some(older_than_days),
        clean_cache,
    })
}

/// The storage folder, which must be absolute: joining onto an empty path would sweep the
/// process's working directory instead.
fn storage_dir(ctx: &Context<'_>) -> Result<PathBuf, TaskError> {
    let storage = ctx.storage_dir();
    if storage.is_absolute() {
        Ok(storage.to_path_buf())
    } else {
        Err(TaskError::permanent(format!(
            "the host gave no absolute storage folder (got {:?}); nothing to clean",
            storage.display().to_string()
        )))
    }
}

/// The moment before which files count as old; `None` when nothing can be that old.
fn cutoff(now: SystemTime, days: u64) -> Option<SystemTime> {
    let age = DAY.checked_mul(u32::try_from(days).ok()?)?;
    now.checked_sub(age)
}

/// One folder to sweep, scanned.
struct Job {
    plan: Plan,
    cutoff: Option<SystemTime>,
    prune: Prune,
}

/// Scans `root` unless it is missing or not a plain folder.
fn plan_for(
    ctx: &Context<'_>,
    root: &Path,
    cutoff: Option<SystemTime>,
    prune: Prune,
) -> Result<Option<Job>, TaskError> {
    match sweep::root_kind(root)? {
        Root::Missing => Ok(None),
        Root::NotAFolder => {
            ctx.warn(&format!(
                "{} is not a plain folder (a link?); skipped",
                root.display()
            ));
            Ok(None)
        }
        Root::Folder => {
            let plan = sweep::scan(root, cutoff, &mut || ctx.check_cancelled())?;
            for warning in &plan.warnings {
                ctx.warn(warning);
            }
            Ok(Some(Job {
                plan,
                cutoff,
                prune,
            }))
        }
    }
}

fn sweep_storage(
    ctx: &Context<'_>,
    storage: &Path,
    options: &Options,
) -> Result<Output, TaskError> {
    let mut jobs = Vec::new();
    if let Some(days) = options.older_than_days {
        match cutoff(SystemTime::now(), days) {
            Some(cutoff) => {
                for folder in AGED_FOLDERS {
                    jobs.extend(plan_for(
                        ctx,
                        &storage.join(folder),
                        Some(cutoff),
                        Prune::Emptied,
                    )?);
                }
            }
            None => ctx.log(&format!("nothing can be older than {days} days")),
        }
    }
    // A missing cache counts as cleared; one that is a link, or keeps entries that could not
    // be read or deleted, does not.
    let mut cache_cleared = false;
    if options.clean_cache {
        let cache = storage.join(CACHE_FOLDER);
        cache_cleared = sweep::root_kind(&cache)? != Root::NotAFolder;
        if let Some(job) = plan_for(ctx, &cache, None, Prune::All)? {
            cache_cleared &= job.plan.warnings.is_empty();
            jobs.push(job);
        }
    }

    let total: u64 = jobs.iter().map(|job| job.plan.files.len() as u64).sum();
    ctx.log(&format!("{total} files to delete"));
    let mut totals = Totals::default();
    let mut offset = 0;
    for job in &jobs {
        let mut warnings = Vec::new();
        let done = sweep::delete(
            &job.plan,
            job.cutoff,
            job.prune,
            &mut warnings,
            &mut |done| {
                ctx.check_cancelled()?;
                let done = offset + done;
                if done % 100 == 0 {
                    ctx.progress_items(done, total, "deleting files");
                }
                Ok(())
            },
        )?;
        offset += job.plan.files.len() as u64;
        totals.files_deleted += done.files_deleted;
        totals.bytes_freed += done.bytes_freed;
        for warning in &warnings {
            ctx.warn(warning);
        }
        // Only the cache job prunes every folder.
        if job.prune == Prune::All && !warnings.is_empty() {
            cache_cleared = false;
        }
    }
    ctx.progress_items(total, total, "done");
    ctx.log(&format!(
        "deleted {} files, freed {} bytes",
        totals.files_deleted, totals.bytes_freed
    ));
    Ok(Output::json(&json!({
        "files_deleted": totals.files_deleted,
        "bytes_freed": totals.bytes_freed,
        "cache_cleared": cache_cleared,
    })))
}

export_worker!(System);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_options_default_and_validate() {
        assert_eq!(
            parse_cleanup(&json!({})).unwrap(),
            Options {
                older_than_days: Some(30),
                clean_cache: false
            }
        );
        assert_eq!(
            parse_cleanup(&json!({"older_than_days": 0, "clean_cache": true})).unwrap(),
            Options {
                older_than_days: Some(0),
                clean_cache: true
            }
        );
        for bad in [
            json!({"older_than_days": -1}),
            json!({"older_than_days": 1.5}),
            json!({"older_than_days": "7"}),
            json!({"clean_cache": "yes"}),
        ] {
            assert!(parse_cleanup(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cutoff_is_days_before_now_and_saturates() {
        let now = SystemTime::now();
        assert_eq!(cutoff(now, 0), Some(now));
        assert_eq!(cutoff(now, 2), Some(now - 2 * DAY));
        assert_eq!(cutoff(now, u64::MAX), None);
    }
}

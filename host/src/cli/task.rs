//! `stask task ...`

use super::log_tail::{self, LogTail};
use super::{engine, open_existing, CliError, CliResult};
use crate::clock::{human_duration, parse_time, rfc3339};
use crate::model::{
    NewTask, OnParentFailure, Priority, Task, TaskStatus, DEFAULT_MAX_ATTEMPTS, MAX_USER_ID,
};
use crate::store::TaskFilter;
use crate::views::TaskView;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// `stask task ...`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task; prints its id (with `--unique-key`, a held key prints the holder's id
    /// and says so on stderr).
    Create {
        /// Worker identifier.
        identifier: String,
        /// Action.
        action: String,
        /// Task data as a JSON object.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Priority: low, normal, high.
        #[arg(long, default_value = "normal")]
        priority: String,
        /// Scheduled start (RFC 3339, 'YYYY-MM-DD HH:MM:SS' UTC, or UNIX seconds).
        #[arg(long)]
        start_at: Option<String>,
        /// Attempts allowed.
        #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS)]
        max_attempts: u32,
        /// The CMS user the task is started for (stored as `started_by`).
        #[arg(long, value_parser = user_id)]
        user: Option<i64>,
        /// Create nothing while a task with this key is pending, claimed or running (1-191
        /// characters).
        #[arg(long)]
        unique_key: Option<String>,
        /// With --unique-key: hold the key this many seconds after creation, whatever the
        /// task's status.
        #[arg(long, requires = "unique_key")]
        unique_for: Option<i64>,
        /// Wait until these tasks finished (task ids, comma-separated); when one fails or is
        /// cancelled, this task is cancelled (see --on-parent-failure).
        #[arg(long, value_delimiter = ',', value_parser = super::task_id)]
        depends_on: Vec<i64>,
        /// What a failed or cancelled task of --depends-on does: cancel (this task is
        /// cancelled) or run (it runs once every one finished).
        #[arg(long, default_value = "cancel")]
        on_parent_failure: String,
    },
    /// Show one task.
    Show {
        /// Task id (a positive whole number).
        #[arg(value_parser = super::task_id)]
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tasks, newest first.
    List {
        /// Status name or code (comma-separated).
        #[arg(long)]
        status: Option<String>,
        /// Worker identifier.
        #[arg(long)]
        worker: Option<String>,
        /// Action.
        #[arg(long)]
        action: Option<String>,
        /// Only tasks started for this CMS user (`started_by`).
        #[arg(long, value_parser = user_id)]
        user: Option<i64>,
        /// Rows to show, 1-500 (as the API's `per_page`).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task (pending at once, running at its next check).
    Cancel {
        /// Task id (a positive whole number).
        #[arg(value_parser = super::task_id)]
        id: i64,
    },
    /// Queue a failed or cancelled task again.
    Retry {
        /// Task id (a positive whole number).
        #[arg(value_parser = super::task_id)]
        id: i64,
    },
    /// Follow a task with a progress bar until it finishes.
    Watch {
        /// Task id (a positive whole number).
        #[arg(value_parser = super::task_id)]
        id: i64,
    },
}

pub(super) fn run(home: Option<PathBuf>, cmd: TaskCommand) -> CliResult {
    match cmd {
        TaskCommand::Create {
            identifier,
            action,
            data,
            priority,
            start_at,
            max_attempts,
            user,
            unique_key,
            unique_for,
            depends_on,
            on_parent_failure,
        } => {
            let on_parent_failure: OnParentFailure =
                on_parent_failure.parse().map_err(|m| CliError::new(5, m))?;
            let data: Value = serde_json::from_str(&data)
                .map_err(|e| CliError::new(5, format!("--data is not valid JSON: {e}")))?;
            let priority: Priority = priority.parse().map_err(|m| CliError::new(5, m))?;
            let start_at = start_at
                .map(|t| parse_time(&t))
                .transpose()
                .map_err(|m| CliError::new(5, m))?;
            let engine = engine(home)?;
            super::discover::discover_if_unknown(&engine, &identifier)?;
            let id = engine.create_task(&NewTask {
                identifier,
                action,
                data,
                priority,
                start_at,
                max_attempts,
                started_by: user,
                // Not over the API: no token.
                token_id: None,
                unique_key: unique_key.clone(),
                unique_for_secs: unique_for,
                parent_id: None,
                depends_on,
                on_parent_failure,
            })?;
            if id.duplicate {
                eprintln!(
                    "not created: task {} holds the unique key {:?}",
                    id.id,
                    unique_key.unwrap_or_default()
                );
            }
            outln!("{}", id.id);
            Ok(())
        }
        TaskCommand::Show { id, json } => {
            let (_, store) = open_existing(home)?;
            let task = store
                .task(id)?
                .ok_or_else(|| CliError::new(3, format!("task {id} not found")))?;
            let waiting = crate::engine::waiting_in(&*store)?;
            let deps = store.task_dependencies(id)?;
            let view = TaskView::from(&task)
                .with_dependencies(&deps)
                .with_waiting(&waiting);
            if json {
                outln!("{}", serde_json::to_string(&view).unwrap_or_default());
            } else {
                print_task(&task, &view.message);
                print_children(&*store, id)?;
                print_dependencies(&deps);
                for line in store.task_logs(id, 20)? {
                    outln!("  log [{}] {}", rfc3339(line.at), line.line);
                }
            }
            Ok(())
        }
        TaskCommand::List {
            status,
            worker,
            action,
            user,
            limit,
            json,
        } => {
            let statuses = status
                .map(|s| {
                    s.split(',')
                        .map(|p| p.trim().parse::<TaskStatus>())
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()
                .map_err(|m| CliError::new(5, m))?
                .unwrap_or_default();
            let (_, store) = open_existing(home)?;
            let (tasks, total) = store.tasks(&TaskFilter {
                statuses,
                identifier: worker,
                action,
                started_by: user,
                limit,
                ..TaskFilter::default()
            })?;
            if json {
                let waiting = crate::engine::waiting_in(&*store)?;
                let list: Vec<TaskView> = tasks
                    .iter()
                    .map(|t| TaskView::from(t).with_waiting(&waiting))
                    .collect();
                outln!("{}", serde_json::json!({"tasks": list, "total": total}));
                return Ok(());
            }
            outln!(
                "{:<8} {:<16} {:<10} {:<10} {:<7} {:>4}% MESSAGE",
                "ID",
                "WORKER",
                "ACTION",
                "STATUS",
                "PRIO",
                ""
            );
            for t in &tasks {
                outln!(
                    "{:<8} {:<16} {:<10} {:<10} {:<7} {:>4}% {}",
                    t.id,
                    t.identifier,
                    t.action,
                    t.status.name(),
                    t.priority.name(),
                    t.progress,
                    t.message
                );
            }
            outln!("({} of {total} shown)", tasks.len());
            Ok(())
        }
        TaskCommand::Cancel { id } => {
            let task = engine(home)?.cancel(id)?;
            outln!("task {id}: {}", task.message);
            Ok(())
        }
        TaskCommand::Retry { id } => {
            engine(home)?.retry(id)?;
            outln!("task {id} queued again");
            Ok(())
        }
        TaskCommand::Watch { id } => watch(home, id),
    }
}

/// The follow-ups of task `id` for people: the first ones' ids and how many in all.
fn print_children(store: &dyn crate::store::Store, id: i64) -> Result<(), CliError> {
    let (children, total) = store.tasks(&crate::store::TaskFilter {
        parent_id: Some(id),
        limit: crate::engine::MAX_LISTED_CHILDREN,
        oldest_first: true,
        ..Default::default()
    })?;
    if total > 0 {
        let ids: Vec<String> = children.iter().map(|t| t.id.to_string()).collect();
        let more = total - children.len() as i64;
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        outln!("  follow-ups {total}: {}{more}", ids.join(", "));
    }
    Ok(())
}

/// A task for people; `message` is the view's (it says when the worker is paused or a limit
/// holds the task).
fn print_task(t: &Task, message: &str) {
    outln!("task {} {}:{}", t.id, t.identifier, t.action);
    outln!("  status    {} ({})", t.status.name(), t.status.code());
    outln!("  message   {message}");
    outln!("  progress  {}%", t.progress);
    outln!("  priority  {}", t.priority.name());
    outln!("  attempts  {} of {}", t.attempts, t.max_attempts);
    if let Some(user) = t.started_by {
        outln!("  user      {user}");
    }
    if let Some(token) = t.token_id {
        outln!("  token     {token}");
    }
    if let Some(parent) = t.parent_id {
        outln!("  parent    {parent}");
    }
    outln!("  created   {}", rfc3339(t.created_at));
    if let Some(at) = t.started_at {
        outln!("  started   {}", rfc3339(at));
    }
    if let Some(at) = t.finished_at {
        outln!("  finished  {}", rfc3339(at));
    }
    if let Some(r) = &t.result {
        outln!("  result    {r}");
    }
    if let Some(f) = &t.result_file {
        outln!("  file      {f} (GET /stask/tasks/{}/download)", t.id);
    }
    outln!("  data      {}", t.meta);
}

/// The dependency lines of `task show`: each related task with its status.
fn print_dependencies(deps: &crate::store::TaskDependencies) {
    let list = |related: &[crate::store::dependencies::Related], count: i64| {
        let mut items: Vec<String> = related
            .iter()
            .map(|r| {
                let status = r.status.map_or("deleted", TaskStatus::name);
                format!("{} ({status})", r.id)
            })
            .collect();
        if count > related.len() as i64 {
            items.push(format!("and {} more", count - related.len() as i64));
        }
        items.join(", ")
    };
    if deps.parent_count > 0 {
        outln!(
            "  depends   {} (on failure: {})",
            list(&deps.parents, deps.parent_count),
            deps.on_parent_failure.name()
        );
    }
    if deps.dependant_count > 0 {
        outln!(
            "  needed by {}",
            list(&deps.dependants, deps.dependant_count)
        );
    }
}

/// Polls the task and draws a bar; exits 0 when completed, 6 when failed or cancelled.
fn watch(home: Option<PathBuf>, id: i64) -> CliResult {
    let (_, store) = open_existing(home)?;
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{bar:40.cyan/blue} {pos:>3}% {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tail = LogTail::default();
    loop {
        let task = store
            .task(id)?
            .ok_or_else(|| CliError::new(3, format!("task {id} not found")))?;
        // The task's new log lines go above the bar, which stays on the last line.
        for line in tail.take_new(store.task_logs(id, log_tail::WINDOW)?) {
            // (`println` of a hidden bar, when stdout is not a terminal, prints nothing.)
            bar.suspend(|| outln!("{} {}", log_tail::level_label(line.level), line.line));
        }
        bar.set_position(task.progress.clamp(0, 100) as u64);
        let eta = task
            .eta_seconds
            .map(|s| format!(" (ETA {})", human_duration(s)))
            .unwrap_or_default();
        bar.set_message(format!("{} {}{eta}", task.status.name(), task.message));
        if task.status.is_finished() {
            bar.finish();
            return match task.status {
                TaskStatus::Completed => {
                    if let Some(r) = task.result {
                        outln!("{r}");
                    }
                    Ok(())
                }
                other => Err(CliError::new(
                    6,
                    format!("task {id} {other}: {}", task.message),
                )),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A CMS user id, in the range the API accepts for `started_by`.
fn user_id(raw: &str) -> Result<i64, String> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| (1..=MAX_USER_ID).contains(id))
        .ok_or_else(|| {
            format!("'{raw}' is not a user id (a whole number between 1 and {MAX_USER_ID})")
        })
}

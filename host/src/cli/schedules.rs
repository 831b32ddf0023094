//! `stask schedules ...`: list, create, update, delete, enable and disable recurring
//! schedules. Changes are written to the database; a running daemon sees them within
//! `engine::schedules::REREAD_MS` (those made over its API at once).

use super::{engine, CliError, CliResult};
use crate::engine::schedules::ScheduleState;
use crate::engine::Engine;
use crate::model::{Priority, DEFAULT_MAX_ATTEMPTS};
use crate::store::{ScheduleSource, ScheduleSpec};
use crate::views::ScheduleView;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `stask schedules ...`
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules with their last and next run.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a schedule.
    Create {
        /// Unique name.
        name: String,
        #[command(flatten)]
        fields: Fields,
        /// Print the schedule as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a schedule: the options given replace its values, the others stay.
    Update {
        /// Schedule id or name.
        schedule: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: Fields,
        /// Print the schedule as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a schedule (its tasks stay).
    Delete {
        /// Schedule id or name.
        schedule: String,
    },
    /// Enable a schedule: it fires from its next slot on.
    Enable {
        /// Schedule id or name.
        schedule: String,
    },
    /// Disable a schedule: no slot fires until it is enabled again.
    Disable {
        /// Schedule id or name.
        schedule: String,
    },
}

/// The values of a schedule, as options (all required by `create` but `--timezone` and the
/// task options).
#[derive(Debug, Args)]
pub struct Fields {
    /// Worker identifier.
    #[arg(long)]
    worker: Option<String>,
    /// One of the worker's actions.
    #[arg(long)]
    action: Option<String>,
    /// Cron expression: 5 fields, 6 with seconds first, or @hourly/@daily/@weekly/@monthly.
    #[arg(long)]
    cron: Option<String>,
    /// IANA time zone (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    /// Task data, a JSON object (default {}).
    #[arg(long)]
    data: Option<String>,
    /// low, normal (default) or high.
    #[arg(long)]
    priority: Option<String>,
    /// Attempts per task, 1-100 (default 3).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Unique key of its tasks.
    #[arg(long)]
    unique_key: Option<String>,
    /// Enable (true) or disable (false) it.
    #[arg(long)]
    enabled: Option<bool>,
    /// Whether a slot missed while no host ran runs once at the next start (default true).
    #[arg(long)]
    catch_up: Option<bool>,
}

impl Fields {
    /// `base` with the options given written over it.
    fn apply(self, mut base: ScheduleSpec) -> Result<ScheduleSpec, CliError> {
        let invalid = |m: String| CliError::new(5, m);
        if let Some(v) = self.worker {
            base.identifier = v;
        }
        if let Some(v) = self.action {
            base.action = v;
        }
        if let Some(v) = self.cron {
            base.cron = v;
        }
        if let Some(v) = self.timezone {
            base.timezone = v;
        }
        if let Some(v) = self.data {
            base.data = serde_json::from_str(&v)
                .map_err(|e| invalid(format!("--data is not valid JSON: {e}")))?;
        }
        if let Some(v) = self.priority {
            base.priority = v.parse::<Priority>().map_err(invalid)?;
        }
        if let Some(v) = self.max_attempts {
            base.max_attempts = v;
        }
        if let Some(v) = self.unique_key {
            base.unique_key = Some(v).filter(|k| !k.is_empty());
        }
        if let Some(v) = self.enabled {
            base.enabled = v;
        }
        if let Some(v) = self.catch_up {
            base.catch_up = v;
        }
        base.source = ScheduleSource::Api;
        Ok(base)
    }
}

/// The schedule `key` names: an id, or else a name.
fn find(engine: &Engine, key: &str) -> Result<ScheduleState, CliError> {
    if let Ok(id) = key.parse::<i64>() {
        return Ok(engine.schedule(id)?);
    }
    engine
        .schedules()?
        .into_iter()
        .find(|s| s.row.spec.name == key)
        .ok_or_else(|| CliError::new(3, format!("unknown schedule '{key}'")))
}

fn print(state: &ScheduleState, json: bool, what: &str) {
    if json {
        outln!(
            "{}",
            serde_json::to_string(&ScheduleView::from(state)).unwrap_or_default()
        );
    } else {
        let next = ScheduleView::from(state).next_run_at;
        outln!(
            "schedule {} '{}' {what} (next run: {})",
            state.row.id,
            state.row.spec.name,
            next.as_deref().unwrap_or("none")
        );
    }
}

pub(super) fn schedules(home: Option<PathBuf>, cmd: SchedulesCommand) -> CliResult {
    let engine = engine(home)?;
    match cmd {
        SchedulesCommand::List { json } => {
            let list = engine.schedules()?;
            let views: Vec<ScheduleView> = list.iter().map(ScheduleView::from).collect();
            if json {
                outln!("{}", serde_json::to_string(&views).unwrap_or_default());
                return Ok(());
            }
            outln!(
                "{:<5} {:<20} {:<16} {:<18} {:<16} {:<8} {:<7} {:<25} NEXT",
                "ID",
                "NAME",
                "WORKER/ACTION",
                "CRON",
                "TIMEZONE",
                "ENABLED",
                "SOURCE",
                "LAST"
            );
            for v in views {
                outln!(
                    "{:<5} {:<20} {:<16} {:<18} {:<16} {:<8} {:<7} {:<25} {}",
                    v.id,
                    v.name,
                    format!("{}/{}", v.identifier, v.action),
                    v.cron,
                    v.timezone,
                    if v.enabled { "yes" } else { "no" },
                    v.source,
                    v.last_run_at.as_deref().unwrap_or("-"),
                    v.next_run_at.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        SchedulesCommand::Create { name, fields, json } => {
            let missing = [
                ("--worker", fields.worker.is_none()),
                ("--action", fields.action.is_none()),
                ("--cron", fields.cron.is_none()),
            ];
            let missing: Vec<&str> = missing.iter().filter(|m| m.1).map(|m| m.0).collect();
            if !missing.is_empty() {
                return Err(CliError::new(
                    5,
                    format!("schedules create needs {}", missing.join(", ")),
                ));
            }
            let spec = fields.apply(ScheduleSpec {
                name,
                identifier: String::new(),
                action: String::new(),
                cron: String::new(),
                timezone: "UTC".into(),
                data: serde_json::json!({}),
                priority: Priority::Normal,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                unique_key: None,
                enabled: true,
                catch_up: true,
                source: ScheduleSource::Api,
            })?;
            print(&engine.create_schedule(&spec)?, json, "created");
            Ok(())
        }
        SchedulesCommand::Update {
            schedule,
            name,
            fields,
            json,
        } => {
            let current = find(&engine, &schedule)?;
            let mut spec = fields.apply(current.row.spec.clone())?;
            if let Some(name) = name {
                spec.name = name;
            }
            print(
                &engine.update_schedule(current.row.id, &spec)?,
                json,
                "saved",
            );
            Ok(())
        }
        SchedulesCommand::Delete { schedule } => {
            let current = find(&engine, &schedule)?;
            engine.delete_schedule(current.row.id)?;
            outln!(
                "schedule {} '{}' deleted (its tasks stay)",
                current.row.id,
                current.row.spec.name
            );
            Ok(())
        }
        SchedulesCommand::Enable { schedule } => {
            let current = find(&engine, &schedule)?;
            print(
                &engine.set_schedule_enabled(current.row.id, true)?,
                false,
                "enabled",
            );
            Ok(())
        }
        SchedulesCommand::Disable { schedule } => {
            let current = find(&engine, &schedule)?;
            print(
                &engine.set_schedule_enabled(current.row.id, false)?,
                false,
                "disabled",
            );
            Ok(())
        }
    }
}

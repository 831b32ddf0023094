//! Configuration: defaults, then `stask.toml` in the home folder (or `STASK_CONFIG`), then
//! environment variables, then command-line flags (applied by the CLI).

use crate::alerts::AlertThresholds;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Largest `memory_limit_mb` (a worker setting, and `STASK_ISOLATION_MEMORY_MB`): 1 TiB, far
/// beyond any machine this runs on, and small enough that the limit in bytes cannot overflow.
pub const MAX_MEMORY_LIMIT_MB: u64 = 1 << 20;

/// Everything the host needs to know about its installation.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder holding `storage/` and `plugins.d/` (`STASK_HOME`, default: current directory).
    pub home: PathBuf,
    /// The drop folder (`STASK_PLUGINS_DIR`, default `<home>/plugins.d`).
    pub plugins_dir: PathBuf,
    /// Database URL (`STASK_DATABASE_URL`, default `sqlite://<home>/storage/stask.db`).
    pub database_url: String,
    /// HTTP listen address (`STASK_BIND`, default `127.0.0.1:7878`).
    pub bind: String,
    /// Pool size: tasks running at once (`STASK_WORKERS`, default: CPU cores).
    pub workers: usize,
    /// Most tasks claimed beyond the free pool slots while tasks are short, to claim in larger
    /// batches (`STASK_PREFETCH`, default 32; 0 = claim only for free slots).
    pub prefetch: usize,
    /// Lease length of a running task in ms; heartbeats renew it (`STASK_LEASE_MS`).
    pub lease_ms: i64,
    /// First retry delay in ms, doubled per attempt, with jitter (`STASK_RETRY_BASE_MS`).
    pub retry_base_ms: i64,
    /// Longest retry delay in ms (`STASK_RETRY_MAX_MS`).
    pub retry_max_ms: i64,
    /// Age after which snapshots of finished tasks are removed (`STASK_SNAPSHOT_MAX_AGE_SECS`).
    pub snapshot_max_age_secs: u64,
    /// Whether newly discovered workers start active (`STASK_ACTIVATE_NEW_WORKERS`).
    pub activate_new_workers: bool,
    /// Largest accepted request body in bytes (`STASK_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Largest accepted upload in bytes (`STASK_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
    /// Largest file of plugins.d/ the host reads as a library, in bytes
    /// (`STASK_MAX_PLUGIN_BYTES`, default 256 MiB); larger files are refused unread.
    pub max_plugin_bytes: u64,
    /// Seconds running tasks get to finish on shutdown (`STASK_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// Seconds a client gets to send a request's headers; also how long an idle keep-alive
    /// connection stays open (`STASK_HEADER_TIMEOUT_SECS`, default 30).
    pub header_timeout_secs: u64,
    /// Seconds a request may take, reading its body included, before it is answered with
    /// 408 (`STASK_REQUEST_TIMEOUT_SECS`, default 120). Event streams are not limited by it.
    pub request_timeout_secs: u64,
    /// Days the audit log keeps an entry (`STASK_AUDIT_KEEP_DAYS`, default 90; 0 keeps
    /// every entry), cleaned by the janitor tick.
    pub audit_keep_days: u32,
    /// Health alerts: thresholds, how often they are checked, where they are sent.
    pub alerts: AlertsConfig,
    /// Run tasks in a child process by default (`STASK_ISOLATION=process`; default
    /// `in_process`). A worker's `isolation` setting overrides it.
    pub isolate_by_default: bool,
    /// Address-space limit of an isolated run's process in MiB (`STASK_ISOLATION_MEMORY_MB`,
    /// default 2048; 0 = none). A worker's `memory_limit_mb` setting overrides it.
    pub isolation_memory_mb: u64,
    /// When the session cookie carries `Secure` (`STASK_SECURE_COOKIES`: `auto`, the default,
    /// when the login came through a TLS proxy that says `X-Forwarded-Proto: https`; `always`;
    /// `never`).
    pub secure_cookies: SecureCookies,
    /// SQLite's `synchronous` mode (`STASK_SQLITE_SYNC`: `normal`, the default, or `full`;
    /// any case; other values are refused).
    pub sqlite_sync: crate::store::sqlite::SqliteSync,
    /// The prefix of every table of ours (`STASK_TABLE_PREFIX`, default empty), so sTask can
    /// live in a CMS's own database: `evo_` makes `evo_s_tasks`, `evo_s_workers`, ...
    pub table_prefix: crate::store::TablePrefix,
    /// PostgreSQL connection threads per host (`STASK_PG_CONNECTIONS`, 1-64; unset: the
    /// driver's default, 4).
    pub pg_connections: Option<usize>,
    /// Most pooled MySQL connections per host (`STASK_MYSQL_CONNECTIONS`, 1-64; unset: the
    /// driver's default, 8).
    pub mysql_connections: Option<usize>,
    /// How often each host reads MySQL's wake-up counters, in ms (`STASK_MYSQL_WAKE_POLL_MS`,
    /// 1-10000; unset: the driver's default, 10).
    pub mysql_wake_poll_ms: Option<u64>,
    /// The `[[schedules]]` of `stask.toml`, stored by name when the daemon starts (their
    /// expressions and time zones checked here; their workers when they are stored).
    pub schedules: Vec<ScheduleConfig>,
}

/// `normal` (or nothing) → NORMAL, `full` → FULL, under the rule of every enumerated setting
/// ([`parse_choice`]).
fn parse_sqlite_sync(
    value: Option<String>,
) -> Result<crate::store::sqlite::SqliteSync, ConfigError> {
    use crate::store::sqlite::SqliteSync;
    match parse_choice("STASK_SQLITE_SYNC", value, &["normal", "full"])? {
        Some("full") => Ok(SqliteSync::Full),
        _ => Ok(SqliteSync::Normal),
    }
}

/// When the session cookie is marked `Secure` (sent back only over HTTPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureCookies {
    /// When the login request came over HTTPS as a reverse proxy reports it. Plain
    /// `http://127.0.0.1` keeps working, where browsers would drop a `Secure` cookie.
    Auto,
    /// Always: for a host reached only through HTTPS.
    Always,
    /// Never.
    Never,
}

fn parse_secure_cookies(value: Option<String>) -> Result<SecureCookies, ConfigError> {
    match parse_choice("STASK_SECURE_COOKIES", value, &["auto", "always", "never"])? {
        None | Some("auto") => Ok(SecureCookies::Auto),
        Some("always") => Ok(SecureCookies::Always),
        _ => Ok(SecureCookies::Never),
    }
}

/// One of `choices` for the enumerated setting `name` (an environment variable; its
/// `stask.toml` key is named with it in the error). The rule for every enumerated setting:
/// case-insensitive, surrounding spaces ignored, empty = unset (`None`); anything else is
/// refused with the accepted values. Returns the matching choice as written in `choices`.
pub fn parse_choice(
    name: &str,
    value: Option<String>,
    choices: &[&'static str],
) -> Result<Option<&'static str>, ConfigError> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    choices
        .iter()
        .find(|c| c.eq_ignore_ascii_case(trimmed))
        .map(|c| Some(*c))
        .ok_or_else(|| {
            let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
            ConfigError::of_setting(
                name,
                format!(
                    "{} must be one of {} (any case), got '{raw}'",
                    setting_name(name),
                    list.join(", ")
                ),
            )
        })
}

/// `STASK_X (x in stask.toml)`, or `STASK_ALERT_X (x in [alerts] of stask.toml)`: how a
/// setting is named in errors, so the operator finds it wherever it was set.
fn setting_name(env: &str) -> String {
    if let Some(key) = env.strip_prefix("STASK_ALERT_") {
        let key = match key {
            "CHECK_SECS" => "check_every_secs".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        return format!("{env} ({key} in [alerts] of stask.toml)");
    }
    match env.strip_prefix("STASK_") {
        Some(key) => format!("{env} ({} in stask.toml)", key.to_ascii_lowercase()),
        None => env.to_owned(),
    }
}

/// A value type of the configuration, parsed from an environment variable's text.
trait ConfigValue: Sized {
    /// What the setting accepts, for errors.
    const ACCEPTS: &'static str;
    /// The value, or `None` when the text is not one.
    fn parse_text(text: &str) -> Option<Self>;
}

macro_rules! whole_numbers {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            const ACCEPTS: &'static str = "a whole number";
            fn parse_text(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}
whole_numbers!(usize, u32, u64, i64);

impl ConfigValue for f64 {
    const ACCEPTS: &'static str = "a number";
    fn parse_text(text: &str) -> Option<Self> {
        text.parse().ok().filter(|v: &f64| v.is_finite())
    }
}

/// Booleans follow the enumerated rule: `true` or `false`, any case.
impl ConfigValue for bool {
    const ACCEPTS: &'static str = "true or false (any case)";
    fn parse_text(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

impl ConfigValue for String {
    const ACCEPTS: &'static str = "text";
    fn parse_text(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl ConfigValue for PathBuf {
    const ACCEPTS: &'static str = "a path";
    fn parse_text(text: &str) -> Option<Self> {
        Some(PathBuf::from(text))
    }
}

/// Refuses `value` of the numeric setting `env` below `min`, naming the setting.
fn at_least<T: PartialOrd + std::fmt::Display + ConfigValue>(
    env: &str,
    value: T,
    min: T,
) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::of_setting(
            env,
            format!(
                "{} must be {} of at least {min}, got {value}",
                setting_name(env),
                T::ACCEPTS
            ),
        ));
    }
    Ok(())
}

/// Refuses `value` of the numeric setting `env` outside `min..=max`, naming the setting and
/// its range.
fn in_range<T: PartialOrd + std::fmt::Display + ConfigValue>(
    env: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::of_setting(
            env,
            format!(
                "{} must be {} between {min} and {max}, got {value}",
                setting_name(env),
                T::ACCEPTS
            ),
        ));
    }
    Ok(())
}

/// The `[alerts]` table of `stask.toml`, or the `STASK_ALERT_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// When each alert fires (`STASK_ALERT_MIN_SUCCESS_RATE`, `..._MIN_FINISHED`,
    /// `..._MAX_AVERAGE_DURATION_SECS`, `..._MAX_MEMORY_BYTES`, `..._MAX_QUEUE_WAIT_SECS`).
    pub thresholds: AlertThresholds,
    /// Seconds between two checks by the daemon's alert monitor, which logs alerts as they
    /// start and end and sends them to the webhook (`STASK_ALERT_CHECK_SECS`, default 30).
    pub check_every_secs: u64,
    /// An `http://` or `https://` URL that receives a JSON POST when an alert starts or ends
    /// (`STASK_ALERT_WEBHOOK_URL`; none by default).
    pub webhook_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    min_success_rate: Option<f64>,
    min_finished: Option<i64>,
    max_average_duration_secs: Option<f64>,
    max_memory_bytes: Option<i64>,
    max_queue_wait_secs: Option<i64>,
    check_every_secs: Option<u64>,
    webhook_url: Option<String>,
}

/// `process` → true, `in_process` (or nothing) → false.
fn parse_isolation(value: Option<String>) -> Result<bool, ConfigError> {
    Ok(parse_choice("STASK_ISOLATION", value, &["in_process", "process"])? == Some("process"))
}

impl AlertsConfig {
    fn load(file: FileAlerts) -> Result<AlertsConfig, ConfigError> {
        let d = AlertThresholds::default();
        let alerts = AlertsConfig {
            thresholds: AlertThresholds {
                min_success_rate: env_parse("STASK_ALERT_MIN_SUCCESS_RATE")?
                    .or(file.min_success_rate)
                    .unwrap_or(d.min_success_rate),
                min_finished_for_success_rate: env_parse("STASK_ALERT_MIN_FINISHED")?
                    .or(file.min_finished)
                    .unwrap_or(d.min_finished_for_success_rate),
                max_average_duration_secs: env_parse("STASK_ALERT_MAX_AVERAGE_DURATION_SECS")?
                    .or(file.max_average_duration_secs)
                    .unwrap_or(d.max_average_duration_secs),
                max_memory_bytes: env_parse("STASK_ALERT_MAX_MEMORY_BYTES")?
                    .or(file.max_memory_bytes)
                    .unwrap_or(d.max_memory_bytes),
                max_queue_wait_secs: env_parse("STASK_ALERT_MAX_QUEUE_WAIT_SECS")?
                    .or(file.max_queue_wait_secs)
                    .unwrap_or(d.max_queue_wait_secs),
            },
            check_every_secs: env_parse("STASK_ALERT_CHECK_SECS")?
                .or(file.check_every_secs)
                .unwrap_or(30),
            webhook_url: env_parse::<String>("STASK_ALERT_WEBHOOK_URL")?.or(file.webhook_url),
        };
        let t = &alerts.thresholds;
        in_range(
            "STASK_ALERT_MIN_SUCCESS_RATE",
            t.min_success_rate,
            0.0,
            100.0,
        )?;
        at_least(
            "STASK_ALERT_MIN_FINISHED",
            t.min_finished_for_success_rate,
            1,
        )?;
        at_least(
            "STASK_ALERT_MAX_AVERAGE_DURATION_SECS",
            t.max_average_duration_secs,
            0.0,
        )?;
        at_least("STASK_ALERT_MAX_MEMORY_BYTES", t.max_memory_bytes, 0)?;
        at_least("STASK_ALERT_MAX_QUEUE_WAIT_SECS", t.max_queue_wait_secs, 0)?;
        in_range(
            "STASK_ALERT_CHECK_SECS",
            alerts.check_every_secs,
            1,
            MAX_SECS,
        )?;
        if let Some(url) = &alerts.webhook_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::of_setting(
                    "STASK_ALERT_WEBHOOK_URL",
                    format!("alerts: webhook_url '{url}' must start with http:// or https://"),
                ));
            }
        }
        Ok(alerts)
    }
}

/// The optional `stask.toml`: same keys as the environment variables, lowercase, without the
/// `STASK_` prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    plugins_dir: Option<PathBuf>,
    database_url: Option<String>,
    bind: Option<String>,
    workers: Option<usize>,
    prefetch: Option<usize>,
    lease_ms: Option<i64>,
    retry_base_ms: Option<i64>,
    retry_max_ms: Option<i64>,
    snapshot_max_age_secs: Option<u64>,
    activate_new_workers: Option<bool>,
    max_body_bytes: Option<usize>,
    max_upload_bytes: Option<u64>,
    max_plugin_bytes: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    audit_keep_days: Option<u32>,
    alerts: Option<FileAlerts>,
    isolation: Option<String>,
    isolation_memory_mb: Option<u64>,
    secure_cookies: Option<String>,
    sqlite_sync: Option<String>,
    table_prefix: Option<String>,
    pg_connections: Option<usize>,
    mysql_connections: Option<usize>,
    mysql_wake_poll_ms: Option<u64>,
    #[serde(default)]
    schedules: Vec<ScheduleConfig>,
}

/// One `[[schedules]]` entry of `stask.toml`: a recurring task, stored by name at start
/// (an entry of the same name made over the API is rewritten).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name.
    pub name: String,
    /// Worker identifier.
    pub identifier: String,
    /// Action of that worker.
    pub action: String,
    /// Cron expression: 5 fields, 6 with seconds first, or `@hourly`/`@daily`/`@weekly`/
    /// `@monthly`.
    pub cron: String,
    /// IANA time zone (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Task data (a table; default empty).
    #[serde(default = "empty_object")]
    pub data: serde_json::Value,
    /// Task priority (default `normal`).
    #[serde(default)]
    pub priority: crate::model::Priority,
    /// Attempts per task (default 3).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Unique key of its tasks.
    pub unique_key: Option<String>,
    /// Whether it fires (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether a slot missed while no host ran runs once at start (default true).
    #[serde(default = "yes")]
    pub catch_up: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

fn default_attempts() -> u32 {
    crate::model::DEFAULT_MAX_ATTEMPTS
}

fn yes() -> bool {
    true
}

/// Longest duration setting in seconds: a week (longer ones are typos, and would overflow
/// timers).
const MAX_SECS: u64 = 7 * 24 * 3600;

/// Longest duration setting in milliseconds: a week.
const MAX_MS: i64 = 7 * 24 * 3600 * 1000;

/// A configuration problem, with the setting it concerns.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {message}{}", .line.as_ref().map(|l| format!(" ({l})")).unwrap_or_default())]
pub struct ConfigError {
    message: String,
    /// The environment variable of the setting the problem is about, when there is one.
    setting: Option<String>,
    /// Where in the configuration file the refused value was written (`stask.toml line 3`),
    /// when it came from there.
    line: Option<String>,
}

impl ConfigError {
    /// A problem of the configuration as a whole.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            setting: None,
            line: None,
        }
    }

    /// A problem with one setting's value (`env`: its variable, `STASK_...`).
    fn of_setting(env: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            setting: Some(env.to_owned()),
            line: None,
        }
    }

    /// Names the file's line when the refused value came from the file: its variable is
    /// unset and the file sets its key.
    fn located(mut self, file: &Path, text: &str) -> ConfigError {
        let Some(env) = &self.setting else {
            return self;
        };
        if std::env::var(env).is_ok_and(|v| !v.trim().is_empty()) {
            return self;
        }
        let (table, key) = file_key(env);
        if let Some(n) = line_of(text, table, &key) {
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            self.line = Some(format!("{name} line {n}"));
        }
        self
    }
}

/// The `stask.toml` table and key of a variable: `STASK_WORKERS` is `workers`,
/// `STASK_ALERT_CHECK_SECS` is `check_every_secs` in `[alerts]`.
fn file_key(env: &str) -> (Option<&'static str>, String) {
    if let Some(key) = env.strip_prefix("STASK_ALERT_") {
        let key = match key {
            "CHECK_SECS" => "check_every_secs".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        return (Some("alerts"), key);
    }
    let key = env.strip_prefix("STASK_").unwrap_or(env);
    (None, key.to_ascii_lowercase())
}

/// The 1-based line of `key = ...` in `table` (`None`: before any table header) of a TOML
/// text. Our file is flat (plain keys, one `[alerts]` table), which is all this reads.
fn line_of(text: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = Some(
                header
                    .trim_matches(|c| c == '[' || c == ']' || c == ' ')
                    .to_owned(),
            );
            continue;
        }
        let Some(rest) = line.strip_prefix(key) else {
            continue;
        };
        if current.as_deref() == table && rest.trim_start().starts_with('=') {
            return Some(i + 1);
        }
    }
    None
}

/// The environment variable `name` parsed as `T`: `None` when unset or empty (spaces
/// ignored), an error naming the variable and what it accepts when it is not a `T` (or not
/// Unicode).
fn env_parse<T: ConfigValue>(name: &str) -> Result<Option<T>, ConfigError> {
    let v = match std::env::var(name) {
        Ok(v) => v,
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(ConfigError::new(format!("{name} is not valid UTF-8")))
        }
    };
    if v.trim().is_empty() {
        return Ok(None);
    }
    T::parse_text(v.trim()).map(Some).ok_or_else(|| {
        ConfigError::new(format!(
            "{} must be {}, got '{v}'",
            setting_name(name),
            T::ACCEPTS
        ))
    })
}

impl Config {
    /// Reads the configuration for `home` (or `STASK_HOME`, or the current directory).
    pub fn load(home: Option<PathBuf>) -> Result<Config, ConfigError> {
        let home = match home.or_else(|| std::env::var_os("STASK_HOME").map(PathBuf::from)) {
            Some(h) => h,
            None => std::env::current_dir()
                .map_err(|e| ConfigError::new(format!("cannot read the current directory: {e}")))?,
        };
        let home = absolute(&home);
        let file_path = std::env::var_os("STASK_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("stask.toml"));
        let text = match std::fs::read_to_string(&file_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ConfigError::new(format!("{}: {e}", file_path.display()))),
        };
        // Unknown keys and values of the wrong type: toml's message names the line.
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| ConfigError::new(format!("{}: {e}", file_path.display())))?;
        Self::from_sources(home, file).map_err(|e| e.located(&file_path, &text))
    }

    /// The configuration from the environment over the file's values over the defaults.
    fn from_sources(home: PathBuf, file: FileConfig) -> Result<Config, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let plugins_dir = env_parse::<PathBuf>("STASK_PLUGINS_DIR")?
            .or(file.plugins_dir)
            .map(|p| if p.is_absolute() { p } else { home.join(p) })
            .unwrap_or_else(|| home.join("plugins.d"));
        let default_db = format!(
            "sqlite://{}",
            home.join("storage").join("stask.db").display()
        );
        let config = Config {
            plugins_dir,
            database_url: env_parse("STASK_DATABASE_URL")?
                .or(file.database_url)
                .unwrap_or(default_db),
            bind: env_parse("STASK_BIND")?
                .or(file.bind)
                .unwrap_or_else(|| "127.0.0.1:7878".into()),
            workers: env_parse("STASK_WORKERS")?
                .or(file.workers)
                .unwrap_or(cores),
            prefetch: env_parse("STASK_PREFETCH")?.or(file.prefetch).unwrap_or(32),
            lease_ms: env_parse("STASK_LEASE_MS")?
                .or(file.lease_ms)
                .unwrap_or(30_000),
            retry_base_ms: env_parse("STASK_RETRY_BASE_MS")?
                .or(file.retry_base_ms)
                .unwrap_or(5_000),
            retry_max_ms: env_parse("STASK_RETRY_MAX_MS")?
                .or(file.retry_max_ms)
                .unwrap_or(3_600_000),
            snapshot_max_age_secs: env_parse("STASK_SNAPSHOT_MAX_AGE_SECS")?
                .or(file.snapshot_max_age_secs)
                .unwrap_or(3_600),
            activate_new_workers: env_parse("STASK_ACTIVATE_NEW_WORKERS")?
                .or(file.activate_new_workers)
                .unwrap_or(true),
            max_body_bytes: env_parse("STASK_MAX_BODY_BYTES")?
                .or(file.max_body_bytes)
                .unwrap_or(1 << 20),
            max_upload_bytes: env_parse("STASK_MAX_UPLOAD_BYTES")?
                .or(file.max_upload_bytes)
                .unwrap_or(100 << 20),
            max_plugin_bytes: env_parse("STASK_MAX_PLUGIN_BYTES")?
                .or(file.max_plugin_bytes)
                .unwrap_or(256 << 20),
            shutdown_grace_secs: env_parse("STASK_SHUTDOWN_GRACE_SECS")?
                .or(file.shutdown_grace_secs)
                .unwrap_or(10),
            header_timeout_secs: env_parse("STASK_HEADER_TIMEOUT_SECS")?
                .or(file.header_timeout_secs)
                .unwrap_or(30),
            request_timeout_secs: env_parse("STASK_REQUEST_TIMEOUT_SECS")?
                .or(file.request_timeout_secs)
                .unwrap_or(120),
            audit_keep_days: env_parse("STASK_AUDIT_KEEP_DAYS")?
                .or(file.audit_keep_days)
                .unwrap_or(90),
            alerts: AlertsConfig::load(file.alerts.unwrap_or_default())?,
            isolate_by_default: parse_isolation(
                env_parse::<String>("STASK_ISOLATION")?.or(file.isolation),
            )?,
            isolation_memory_mb: env_parse("STASK_ISOLATION_MEMORY_MB")?
                .or(file.isolation_memory_mb)
                .unwrap_or(2048),
            secure_cookies: parse_secure_cookies(
                env_parse::<String>("STASK_SECURE_COOKIES")?.or(file.secure_cookies),
            )?,
            sqlite_sync: parse_sqlite_sync(
                env_parse::<String>("STASK_SQLITE_SYNC")?.or(file.sqlite_sync),
            )?,
            table_prefix: crate::store::TablePrefix::new(
                &env_parse::<String>("STASK_TABLE_PREFIX")?
                    .or(file.table_prefix)
                    .unwrap_or_default(),
            )
            .map_err(|e| ConfigError::new(format!("STASK_TABLE_PREFIX: {e}")))?,
            pg_connections: env_parse("STASK_PG_CONNECTIONS")?.or(file.pg_connections),
            mysql_connections: env_parse("STASK_MYSQL_CONNECTIONS")?.or(file.mysql_connections),
            mysql_wake_poll_ms: env_parse("STASK_MYSQL_WAKE_POLL_MS")?.or(file.mysql_wake_poll_ms),
            schedules: file.schedules,
            home,
        };
        config.validate()?;
        Ok(config)
    }

    /// How the store is opened: the options of the configuration beside its URL.
    pub fn open_options(&self) -> crate::store::OpenOptions {
        crate::store::OpenOptions {
            sqlite_sync: self.sqlite_sync,
            table_prefix: self.table_prefix.clone(),
            pg_connections: self.pg_connections,
            mysql_connections: self.mysql_connections,
            mysql_wake_poll: self
                .mysql_wake_poll_ms
                .map(std::time::Duration::from_millis),
        }
    }

    /// Every numeric setting has a range; a value outside it is refused (naming the setting
    /// and the range), never clamped or ignored.
    fn validate(&self) -> Result<(), ConfigError> {
        for s in &self.schedules {
            crate::cron::CronSchedule::parse(&s.cron, &s.timezone).map_err(|e| {
                ConfigError::new(format!("schedule '{}' in stask.toml: {e}", s.name))
            })?;
        }
        in_range("STASK_WORKERS", self.workers, 1, 1024)?;
        in_range("STASK_PREFETCH", self.prefetch, 0, 100_000)?;
        in_range("STASK_LEASE_MS", self.lease_ms, 1_000, MAX_MS)?;
        in_range("STASK_RETRY_BASE_MS", self.retry_base_ms, 0, MAX_MS)?;
        in_range(
            "STASK_RETRY_MAX_MS",
            self.retry_max_ms,
            self.retry_base_ms,
            MAX_MS,
        )?;
        in_range(
            "STASK_SNAPSHOT_MAX_AGE_SECS",
            self.snapshot_max_age_secs,
            0,
            MAX_SECS,
        )?;
        in_range("STASK_MAX_BODY_BYTES", self.max_body_bytes, 1, 1 << 30)?;
        in_range("STASK_MAX_UPLOAD_BYTES", self.max_upload_bytes, 1, 1 << 40)?;
        in_range(
            "STASK_SHUTDOWN_GRACE_SECS",
            self.shutdown_grace_secs,
            0,
            MAX_SECS,
        )?;
        in_range(
            "STASK_HEADER_TIMEOUT_SECS",
            self.header_timeout_secs,
            1,
            MAX_SECS,
        )?;
        in_range(
            "STASK_REQUEST_TIMEOUT_SECS",
            self.request_timeout_secs,
            1,
            MAX_SECS,
        )?;
        in_range("STASK_MAX_PLUGIN_BYTES", self.max_plugin_bytes, 1, 1 << 40)?;
        in_range(
            "STASK_ISOLATION_MEMORY_MB",
            self.isolation_memory_mb,
            0,
            MAX_MEMORY_LIMIT_MB,
        )?;
        if let Some(n) = self.pg_connections {
            in_range("STASK_PG_CONNECTIONS", n, 1, 64)?;
        }
        if let Some(n) = self.mysql_connections {
            in_range("STASK_MYSQL_CONNECTIONS", n, 1, 64)?;
        }
        if let Some(ms) = self.mysql_wake_poll_ms {
            in_range("STASK_MYSQL_WAKE_POLL_MS", ms, 1, 10_000)?;
        }
        Ok(())
    }

    /// `<home>/storage`.
    pub fn storage_dir(&self) -> PathBuf {
        self.home.join("storage")
    }

    /// `<home>/storage/stask`: progress snapshots `{id}.json`.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.storage_dir().join("stask")
    }

    /// `<home>/storage/stask/results`: result files, one folder per task.
    pub fn results_dir(&self) -> PathBuf {
        self.snapshot_dir().join("results")
    }

    /// `<home>/storage/stask/uploads`.
    pub fn uploads_dir(&self) -> PathBuf {
        self.snapshot_dir().join("uploads")
    }

    /// `<home>/storage/workers/{identifier}`: a worker's own data.
    pub fn worker_data_dir(&self, identifier: &str) -> PathBuf {
        self.storage_dir().join("workers").join(identifier)
    }

    /// `<home>/storage/plugins-loaded`: the copies of the libraries this host loaded, kept
    /// while mapped (until the daemon exits; must allow execution).
    pub fn loaded_copies_dir(&self) -> PathBuf {
        self.storage_dir().join("plugins-loaded")
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../docs/stask.example.toml");

    /// The example with its commented-out keys (`# key = value`) set.
    fn example_with_every_key() -> String {
        EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest == "[[schedules]]" => rest,
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// docs/stask.example.toml names every key the parser knows (the destructuring below
    /// stops compiling when a key is added), none it does not know (unknown keys are refused),
    /// and the defaults it writes are the defaults.
    #[test]
    fn the_example_file_has_every_key_and_the_defaults() {
        let every: FileConfig = toml::from_str(&example_with_every_key()).unwrap();
        let FileConfig {
            plugins_dir,
            database_url,
            bind,
            workers,
            prefetch,
            lease_ms,
            retry_base_ms,
            retry_max_ms,
            snapshot_max_age_secs,
            activate_new_workers,
            max_body_bytes,
            max_upload_bytes,
            max_plugin_bytes,
            shutdown_grace_secs,
            header_timeout_secs,
            request_timeout_secs,
            audit_keep_days,
            alerts,
            isolation,
            isolation_memory_mb,
            secure_cookies,
            sqlite_sync,
            table_prefix,
            pg_connections,
            mysql_connections,
            mysql_wake_poll_ms,
            schedules,
        } = every;
        let present = [
            plugins_dir.is_some(),
            database_url.is_some(),
            bind.is_some(),
            workers.is_some(),
            prefetch.is_some(),
            lease_ms.is_some(),
            retry_base_ms.is_some(),
            retry_max_ms.is_some(),
            snapshot_max_age_secs.is_some(),
            activate_new_workers.is_some(),
            max_body_bytes.is_some(),
            max_upload_bytes.is_some(),
            max_plugin_bytes.is_some(),
            shutdown_grace_secs.is_some(),
            header_timeout_secs.is_some(),
            request_timeout_secs.is_some(),
            audit_keep_days.is_some(),
            isolation.is_some(),
            isolation_memory_mb.is_some(),
            secure_cookies.is_some(),
            sqlite_sync.is_some(),
            table_prefix.is_some(),
            pg_connections.is_some(),
            mysql_connections.is_some(),
            mysql_wake_poll_ms.is_some(),
        ];
        assert!(present.iter().all(|p| *p), "{present:?}");
        // The example schedule, every key of it set, is one the parser takes.
        let [schedule] = schedules.as_slice() else {
            panic!("one example schedule: {schedules:?}");
        };
        assert_eq!(schedule.name, "nightly-export");
        assert_eq!(schedule.unique_key.as_deref(), Some("nightly-export"));
        let FileAlerts {
            min_success_rate,
            min_finished,
            max_average_duration_secs,
            max_memory_bytes,
            max_queue_wait_secs,
            check_every_secs,
            webhook_url,
        } = alerts.expect("[alerts]");
        let present = [
            min_success_rate.is_some(),
            min_finished.is_some(),
            max_average_duration_secs.is_some(),
            max_memory_bytes.is_some(),
            max_queue_wait_secs.is_some(),
            check_every_secs.is_some(),
            webhook_url.is_some(),
        ];
        assert!(present.iter().all(|p| *p), "{present:?}");

        let home = PathBuf::from("/srv/stask");
        let from_example =
            Config::from_sources(home.clone(), toml::from_str(EXAMPLE).unwrap()).unwrap();
        let defaults = Config::from_sources(home, FileConfig::default()).unwrap();
        assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
    }

    /// A value the file sets and the configuration refuses names the file's line, in the
    /// top level and in [alerts]; an unknown key is refused with its line too.
    #[test]
    fn a_refused_value_from_the_file_names_its_line() {
        let home = tempfile::tempdir().unwrap();
        let refused = |text: &str| {
            std::fs::write(home.path().join("stask.toml"), text).unwrap();
            Config::load(Some(home.path().to_owned()))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused("bind = \"127.0.0.1:1\"\n\n  workers = 0\n"),
            "configuration: STASK_WORKERS (workers in stask.toml) must be a whole number \
             between 1 and 1024, got 0 (stask.toml line 3)"
        );
        assert!(
            refused("isolation = \"maybe\"\n").ends_with("got 'maybe' (stask.toml line 1)"),
            "{}",
            refused("isolation = \"maybe\"\n")
        );
        let alerts = refused("workers = 2\n[alerts]\ncheck_every_secs = 0\n");
        assert!(alerts.ends_with("got 0 (stask.toml line 3)"), "{alerts}");
        let unknown = refused("workers = 2\nwrokers = 3\n");
        assert!(
            unknown.contains("line 2") && unknown.contains("wrokers"),
            "{unknown}"
        );
    }

    #[test]
    fn enumerated_values_are_case_insensitive_and_unknown_ones_refused_with_the_choices() {
        let choices = &["in_process", "process"];
        let parse = |v: &str| parse_choice("STASK_ISOLATION", Some(v.to_owned()), choices);
        assert_eq!(parse("process").unwrap(), Some("process"));
        assert_eq!(parse(" Process ").unwrap(), Some("process"));
        assert_eq!(parse("IN_PROCESS").unwrap(), Some("in_process"));
        assert_eq!(parse("").unwrap(), None, "empty is unset");
        assert_eq!(
            parse("bogus").unwrap_err().to_string(),
            "configuration: STASK_ISOLATION (isolation in stask.toml) must be one of \
             'in_process', 'process' (any case), got 'bogus'"
        );
    }

    #[test]
    fn values_are_parsed_by_type_and_checked_against_their_range() {
        assert_eq!(bool::parse_text("TRUE"), Some(true));
        assert_eq!(bool::parse_text("False"), Some(false));
        assert_eq!(bool::parse_text("yes"), None);
        assert_eq!(u64::parse_text("-1"), None);
        assert_eq!(f64::parse_text("inf"), None);
        assert!(in_range("STASK_WORKERS", 4usize, 1, 1024).is_ok());
        assert_eq!(
            in_range("STASK_WORKERS", 0usize, 1, 1024)
                .unwrap_err()
                .to_string(),
            "configuration: STASK_WORKERS (workers in stask.toml) must be a whole number \
             between 1 and 1024, got 0"
        );
        assert_eq!(
            at_least("STASK_ALERT_MAX_MEMORY_BYTES", -1i64, 0)
                .unwrap_err()
                .to_string(),
            "configuration: STASK_ALERT_MAX_MEMORY_BYTES (max_memory_bytes in [alerts] of \
             stask.toml) must be a whole number of at least 0, got -1"
        );
        assert_eq!(
            setting_name("STASK_ALERT_CHECK_SECS"),
            "STASK_ALERT_CHECK_SECS (check_every_secs in [alerts] of stask.toml)"
        );
    }
}

//! `demo`: a worker whose behaviour is chosen by its task data, for tests, demos and benchmarks.
//!
//! Actions:
//! - `noop`: completes at once (the benchmark workload).
//! - `stamp`: completes at once with its start time (µs since the epoch) as the result.
//! - `run`: `steps` steps of `sleep_ms` each with progress; optional failure modes:
//!   `fail_attempts` (attempts 1..=N fail, retryably), `fail_permanent`, `panic_at_step`,
//!   `ignore_cancel`, and a `result` text or a `result_file` written to the output folder
//!   (`content`, or `result_file_mb` MiB whose byte `i` is `i % 251`).
//!   `escape_file` (a path) misbehaves on purpose: it returns that path as the result file, to
//!   prove the host refuses result files outside the task's output folder.
//!   With `ledger` (a file path), every run appends `start <id> <attempt>` and, when it
//!   completes, `done <id> <attempt>`: tests use it to prove that nothing ran twice.
//!   Costs, for the analytics tests: `burn_cpu_ms` spins until the run's thread has used that
//!   much CPU time; `hold_mb` allocates (and touches) that many MiB for the whole run.
//!   Crashes that no in-process guard can catch, for the process-isolation tests (run them
//!   only with the worker's `isolation` setting at `process`: in the host they end the host):
//!   `crash` = `segfault`, `abort`, `exit` (code 3), or `leak` (allocates 16 MiB blocks and
//!   never frees them, up to `leak_mb`, default 8192).
//!   Follow-ups: `follow_up` (`{"identifier", "action", "data", "options"}`, the options as
//!   `stask_plugin_api::TaskOptions`) queues that task through `Context::create_task` before
//!   anything else can fail (so with `fail_attempts` every attempt queues it again, which a
//!   `unique_key` makes one task); the run's result is then `follow-up <id>` unless `result`
//!   is given, and a refused create fails the run with the host's message.
//! - `hammer`: the cost of the progress and log calls, for the long-job benchmark:
//!   `progress_calls` calls of `progress_items` (default 10,000,000), then `log_calls` calls of
//!   `log` (default 0), each loop timed with `Instant`; the result is JSON with the calls made
//!   and `progress_ns` / `log_ns`, the nanoseconds per call (`log_first_ns` over the first
//!   10,000 log calls, the lines the host stores, and `log_rest_ns` over the others). It
//!   checks for cancellation once every 1,048,576 calls (so that the check does not weigh on
//!   the figure).

use serde_json::Value;
use stask_plugin_api::{
    export_worker, Context, Output, TaskError, TaskOptions, Worker, WorkerInfo,
};
use std::time::{Duration, Instant};

/// Which build this is: the `v2` feature makes a second version for hot-reload tests.
const VARIANT: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };

#[derive(Default)]
struct Demo;

impl Worker for Demo {
    fn info(&self) -> WorkerInfo {
        WorkerInfo::new("demo", "Demo worker")
            .scope("stask")
            .description("Configurable steps, sleeps, failures and panics for tests and demos.")
            .version(if cfg!(feature = "v2") {
                concat!(env!("CARGO_PKG_VERSION"), "-v2")
            } else {
                env!("CARGO_PKG_VERSION")
            })
            .action("noop", "Completes at once")
            .action(
                "stamp",
                "Completes at once with the wall-clock start time in µs (latency benchmarks)",
            )
            .action(
                "run",
                "Runs steps with progress; see the data keys in the docs",
            )
            .action(
                "hammer",
                "Times progress_calls progress and log_calls log calls (benchmarks)",
            )
            .setting("timeout", 0)
    }

    fn run(&self, ctx: &Context<'_>, action: &str, data: Value) -> Result<Output, TaskError> {
        match action {
            "noop" => Ok(Output::none()),
            "stamp" => Ok(Output::text(now_micros().to_string())),
            "run" => run_steps(ctx, &data),
            "hammer" => hammer(ctx, &data),
            other => Err(TaskError::permanent(format!("unknown action {other}"))),
        }
    }
}

fn run_steps(ctx: &Context<'_>, data: &Value) -> Result<Output, TaskError> {
    let int = |key: &str, default: u64| data.get(key).and_then(Value::as_u64).unwrap_or(default);
    let flag = |key: &str| data.get(key).and_then(Value::as_bool).unwrap_or(false);
    let steps = int("steps", 10);
    let sleep = Duration::from_millis(int("sleep_ms", 50));
    let fail_attempts = int("fail_attempts", 0);
    let panic_at = data.get("panic_at_step").and_then(Value::as_u64);

    let ledger = data.get("ledger").and_then(Value::as_str);
    if let Some(path) = ledger {
        append_line(path, &format!("start {} {}", ctx.task_id(), ctx.attempt()))?;
    }
    ctx.log(&format!(
        "attempt {} of {}",
        ctx.attempt(),
        ctx.max_attempts()
    ));
    let follow_up = match data.get("follow_up") {
        Some(spec) => Some(create_follow_up(ctx, spec)?),
        None => None,
    };
    if u64::from(ctx.attempt()) <= fail_attempts {
        return Err(TaskError::new(format!(
            "planned failure on attempt {}",
            ctx.attempt()
        )));
    }
    if flag("fail_permanent") {
        return Err(TaskError::permanent("planned permanent failure"));
    }
    match data.get("crash").and_then(Value::as_str) {
        Some("segfault") => {
            // SAFETY: none; this is the point. A write through a null pointer.
            unsafe { std::ptr::null_mut::<u8>().write_volatile(1) }
        }
        Some("abort") => std::process::abort(),
        Some("exit") => std::process::exit(3),
        Some("leak") => {
            for _ in 0..int("leak_mb", 8_192) / 16 {
                std::hint::black_box(Box::leak(vec![7u8; 16 << 20].into_boxed_slice()));
            }
        }
        Some(other) => return Err(TaskError::permanent(format!("unknown crash mode {other}"))),
        None => {}
    }
    let held = vec![1u8; (int("hold_mb", 0) << 20) as usize];
    burn_cpu(Duration::from_millis(int("burn_cpu_ms", 0)));
    for step in 1..=steps {
        if !flag("ignore_cancel") {
            ctx.check_cancelled()?;
        }
        if panic_at == Some(step) {
            panic!("planned panic at step {step}");
        }
        std::thread::sleep(sleep);
        ctx.progress_items(step, steps, &format!("step {step} of {steps}"));
        if flag("log_steps") {
            ctx.log(&format!("step {step} done"));
        }
    }
    std::hint::black_box(&held);
    drop(held);
    if let Some(path) = ledger {
        append_line(path, &format!("done {} {}", ctx.task_id(), ctx.attempt()))?;
    }
    if let Some(path) = data.get("escape_file").and_then(Value::as_str) {
        return Ok(Output::file(path));
    }
    if let Some(name) = data.get("result_file").and_then(Value::as_str) {
        let name = std::path::Path::new(name)
            .file_name()
            .ok_or_else(|| TaskError::permanent("result_file must be a file name"))?;
        let path = ctx.output_dir().join(name);
        match data.get("result_file_mb").and_then(Value::as_u64) {
            Some(mb) => write_mebibytes(&path, mb)?,
            None => {
                let content = data
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or("demo result\n");
                std::fs::write(&path, content)?;
            }
        }
        return Ok(Output::file(path).with_text(format!("wrote {}", name.to_string_lossy())));
    }
    match (data.get("result").and_then(Value::as_str), follow_up) {
        (Some(text), _) => Ok(Output::text(text)),
        (None, Some(id)) => Ok(Output::text(format!("follow-up {id}"))),
        (None, None) => Ok(Output::text(format!("done by {VARIANT}"))),
    }
}

/// The first log calls `hammer` times on their own (what the host keeps of a run's log).
const HAMMER_LOG_FIRST: u64 = 10_000;
/// Calls between two cancellation checks of `hammer` (a power of two: the test is a mask).
const HAMMER_CHECK_EVERY: u64 = 1 << 20;

/// The `hammer` action: times `progress_calls` progress calls, then `log_calls` log lines.
fn hammer(ctx: &Context<'_>, data: &Value) -> Result<Output, TaskError> {
    let int = |key: &str, default: u64| data.get(key).and_then(Value::as_u64).unwrap_or(default);
    let progress_calls = int("progress_calls", 10_000_000);
    let log_calls = int("log_calls", 0);
    let started = Instant::now();
    for i in 1..=progress_calls {
        if i & (HAMMER_CHECK_EVERY - 1) == 0 {
            ctx.check_cancelled()?;
        }
        ctx.progress_items(i, progress_calls, "hammering");
    }
    let progress_ns = per_call_ns(started.elapsed(), progress_calls);
    let mut first_elapsed = Duration::ZERO;
    // Timed in two parts: the host stores the first lines and only counts the later ones.
    let first = log_calls.min(HAMMER_LOG_FIRST);
    let started = Instant::now();
    for i in 1..=log_calls {
        if i & (HAMMER_CHECK_EVERY - 1) == 0 {
            ctx.check_cancelled()?;
        }
        ctx.log("hammer line");
        if i == first {
            first_elapsed = started.elapsed();
        }
    }
    let log_elapsed = started.elapsed();
    let log_ns = per_call_ns(log_elapsed, log_calls);
    let log_first_ns = per_call_ns(first_elapsed, first);
    let log_rest_ns = per_call_ns(log_elapsed - first_elapsed, log_calls - first);
    Ok(Output::json(&serde_json::json!({
        "progress_calls": progress_calls,
        "progress_ns": progress_ns,
        "log_calls": log_calls,
        "log_ns": log_ns,
        "log_first_ns": log_first_ns,
        "log_rest_ns": log_rest_ns,
    })))
}

/// Nanoseconds per call (0 for no calls).
fn per_call_ns(elapsed: Duration, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        elapsed.as_nanos() as f64 / calls as f64
    }
}

/// Queues the follow-up `spec` describes (see the module docs) and returns its id.
fn create_follow_up(ctx: &Context<'_>, spec: &Value) -> Result<i64, TaskError> {
    let text = |key: &str| {
        spec.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| TaskError::permanent(format!("follow_up.{key} must be a string")))
    };
    let options: TaskOptions = match spec.get("options") {
        None | Some(Value::Null) => TaskOptions::default(),
        Some(o) => serde_json::from_value(o.clone())
            .map_err(|e| TaskError::permanent(format!("follow_up.options: {e}")))?,
    };
    let data = spec.get("data").cloned().unwrap_or(Value::Null);
    let id = ctx.create_task(text("identifier")?, text("action")?, data, &options)?;
    ctx.log(&format!("queued follow-up task {id}"));
    Ok(id)
}

/// Writes `mb` MiB to `path`, one MiB at a time (never the whole file in memory): byte `i` of
/// the file is `i % 251`, so a reader can check any range it got.
fn write_mebibytes(path: &std::path::Path, mb: u64) -> std::io::Result<()> {
    use std::io::Write;
    const MIB: usize = 1 << 20;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; MIB];
    for block in 0..mb as usize {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = ((block * MIB + i) % 251) as u8;
        }
        file.write_all(&chunk)?;
    }
    file.flush()
}

/// CPU time this thread has used (the clock the host measures a run's CPU time with).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec and a constant clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spins until this thread has used `amount` more CPU time, however busy the machine is.
fn burn_cpu(amount: Duration) {
    let until = thread_cpu_time() + amount;
    let mut x = 0u64;
    while thread_cpu_time() < until {
        for _ in 0..1_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}

/// Wall-clock time in µs since the epoch: comparable across processes on one machine.
fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Appends one line with a single `write` call (O_APPEND), so concurrent runs never interleave.
fn append_line(path: &str, line: &str) -> Result<(), TaskError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

export_worker!(Demo);

#[cfg(test)]
mod tests {
    use super::*;
    use stask_plugin_api::testing::TestHost;

    #[test]
    fn hammer_makes_the_calls_it_was_asked_for_and_times_them() {
        let host = TestHost::new();
        let output = host
            .run(
                &Demo,
                "hammer",
                serde_json::json!({"progress_calls": 1_000, "log_calls": 10}),
            )
            .unwrap();
        let result: Value = serde_json::from_str(output.result_text().unwrap()).unwrap();
        assert_eq!(result["progress_calls"], 1_000);
        assert_eq!(result["log_calls"], 10);
        assert!(result["progress_ns"].as_f64().unwrap() > 0.0, "{result}");
        assert!(result["log_ns"].as_f64().unwrap() > 0.0, "{result}");
        let progress = host.progress();
        assert_eq!(progress.len(), 1_000);
        assert_eq!(progress.last().unwrap().processed, Some(1_000));
        assert_eq!(host.logs().len(), 10);
    }

    #[test]
    fn hammer_stops_when_cancelled() {
        let host = TestHost::new();
        host.cancel();
        let data = serde_json::json!({"progress_calls": HAMMER_CHECK_EVERY * 2});
        let error = host.run(&Demo, "hammer", data).unwrap_err();
        assert!(error.is_cancelled(), "{error}");
        assert_eq!(host.progress().len() as u64, HAMMER_CHECK_EVERY - 1);
    }
}

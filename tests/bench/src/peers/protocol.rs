//! Driving a scripted peer (huey, BullMQ, graphile-worker) through the three phases of the
//! [`Workload`]. Each script speaks the same line protocol (described at the top of
//! `tests/bench/peers/node/common.mjs`): one process per role and phase, one answer line per
//! step, so that producers and the consumer are separate processes as in real use.

use super::{PeerRun, Workload};
use crate::daemon::sync_disk;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound on any single short step (reset, fill, settings, a consumer becoming ready).
const STEP: Duration = Duration::from_secs(120);
/// The end of a process's stderr kept for error messages.
const STDERR_TAIL: usize = 1_500;

/// How to start one peer's script: program, leading arguments and environment.
pub struct Script {
    /// The interpreter (`node`, the venv's `python`).
    pub program: PathBuf,
    /// Arguments before the role (the script's path, or `-c` and its text).
    pub lead: Vec<OsString>,
    /// Extra environment (e.g. the store's location).
    pub env: Vec<(String, String)>,
    /// Working directory (where `node_modules` is found).
    pub dir: PathBuf,
}

/// A running role: its answer lines arrive on a channel; killed on drop.
pub struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    /// Starts one role (`work 2 drain 10000`, ...).
    pub fn spawn(&self, args: &[String]) -> Result<Proc, String> {
        let what = args.join(" ");
        let mut child = Command::new(&self.program)
            .args(&self.lead)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{} {what}: {e}", self.program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Only the end is shown, so only the end is kept.
                if s.len() > 4 * STDERR_TAIL {
                    let cut = s.len() - STDERR_TAIL;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.drain(..cut);
                }
            }
        });
        Ok(Proc {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// Runs a role to its answer `word`; returns the fields after it.
    pub fn once(
        &self,
        args: &[String],
        word: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        let mut p = self.spawn(args)?;
        let fields = p.expect(word, timeout)?;
        let _ = p.child.wait();
        Ok(fields)
    }
}

impl Proc {
    /// Waits for the line starting with `word`; returns the fields after it. Other lines are
    /// skipped; the process ending first, or the timeout, is an error with its stderr's end.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let mut fields = line.split_whitespace().map(str::to_owned);
                    if fields.next().as_deref() == Some(word) {
                        return Ok(fields.collect());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("no {word} within {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    // The stderr reader may still be copying the last bytes.
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(self.failure(&format!("ended before {word}")));
                }
            }
        }
    }

    /// Sends one line on the process's stdin.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| self.failure(&format!("write {line}: {e}")))
    }

    fn failure(&self, why: &str) -> String {
        let stderr = self.stderr.lock().unwrap();
        let tail: String = stderr
            .trim()
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .join(" | ");
        format!("`{}` {why}: {tail}", self.what)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing stdin ends a consumer by itself; the kill covers one that hangs.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn num(fields: &[String], i: usize, what: &str) -> Result<f64, String> {
    fields
        .get(i)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("{what}: no number in {fields:?}"))
}

fn args(parts: &[&dyn ToString]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// The store's durability settings as the script reads them from the server.
pub fn settings(script: &Script) -> Result<String, String> {
    Ok(script
        .once(&args(&[&"settings"]), "SETTINGS", STEP)?
        .join(" "))
}

/// One run of the three phases, each on an emptied store.
pub fn run_phases(script: &Script, w: &Workload) -> Result<PeerRun, String> {
    let pool = w.pool;
    // Phase 1: a pre-filled queue drained by the consumer, timed by the consumer itself.
    script.once(&args(&[&"reset"]), "RESET", STEP)?;
    script.once(&args(&[&"fill", &w.drain_tasks]), "FILLED", STEP * 5)?;
    sync_disk();
    let drain_timeout = STEP + Duration::from_secs(w.drain_tasks as u64 / 20);
    let mut consumer = script.spawn(&args(&[&"work", &pool, &"drain", &w.drain_tasks]))?;
    let drain_per_s = num(&consumer.expect("DRAIN", drain_timeout)?, 0, "DRAIN")?;
    drop(consumer);

    // Phase 2: producers create for the window; the consumer's count is read at its end.
    script.once(&args(&[&"reset"]), "RESET", STEP)?;
    let mut consumer = script.spawn(&args(&[&"work", &pool, &"count"]))?;
    consumer.expect("READY", STEP)?;
    let mut producer = script.spawn(&args(&[&"produce", &w.producers, &w.sustained_secs]))?;
    let created = producer.expect("CREATED", STEP + Duration::from_secs(w.sustained_secs))?;
    consumer.send("COUNT")?;
    let completed = num(&consumer.expect("COMPLETED", STEP)?, 0, "COMPLETED")?;
    drop(consumer);
    drop(producer);
    let window = num(&created, 1, "CREATED")?;
    let sustained_created_per_s = num(&created, 0, "CREATED")? / window;
    let sustained_completed_per_s = completed / window;

    // Phase 3: one producer, one task at a time; the consumer reports the percentiles.
    script.once(&args(&[&"reset"]), "RESET", STEP)?;
    let mut consumer = script.spawn(&args(&[&"work", &pool, &"latency", &w.latency_tasks]))?;
    consumer.expect("READY", STEP)?;
    let gap_ms = w.latency_gap.as_secs_f64() * 1_000.0;
    let mut producer = script.spawn(&args(&[&"stamp", &w.latency_tasks, &gap_ms]))?;
    // Each create costs the gap plus the create itself (milliseconds on a durable store).
    let latency_timeout =
        STEP + (w.latency_gap + Duration::from_millis(50)) * w.latency_tasks as u32;
    let latency = consumer.expect("LATENCY", latency_timeout)?;
    producer.expect("SENT", STEP)?;
    Ok(PeerRun {
        drain_per_s,
        sustained_created_per_s,
        sustained_completed_per_s,
        latency_p50_ms: num(&latency, 0, "LATENCY")?,
        latency_p99_ms: num(&latency, 1, "LATENCY")?,
    })
}

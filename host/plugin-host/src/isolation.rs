//! Running one task in a child process, so that what no in-process guard can catch — a
//! segfault, an `abort`, an `exit`, runaway memory — ends only that task.
//!
//! The child is the `stask` binary itself (`stask isolated-run --library FILE`): it loads the
//! registry's checked copy of the library ([`super::loader::load_checked_copy`], with the
//! `abi_stable` layout checks) and runs the task with a
//! [`TaskHooks`] that forwards over pipes. One JSON document per line:
//!
//! - parent → child (stdin): `{"t":"run","request":{...}}`, later maybe `{"t":"cancel"}`, and
//!   one `{"t":"answer","id":N,"ok":"..."}` (or `"err"`) per host-service call;
//! - child → parent (the child's original stdout; the plugin's own prints are sent to stderr
//!   first, so they cannot corrupt the protocol): `progress`, `log`,
//!   `{"t":"call","id":N,"method":"tasks.create","args":"..."}` (a host-service call, which
//!   the parent serves through its own hooks, so the run's task id is the parent's, and
//!   answers; the plugin thread that called waits for it), and at the end `outcome`;
//! - the child's stderr goes to the task log as `worker output:` lines.
//!
//! The parent reads at most [`MAX_LINE_BYTES`] per line; a longer line, or one that is not a
//! message of the protocol, ends that run (the child is killed, the task fails with the
//! reason), never the host.
//!
//! Limits: the address space (`RLIMIT_AS`, so an allocation beyond it fails inside the child),
//! and time: when the task is cancelled or its timeout fires, the child is asked to stop and
//! killed (SIGKILL) if it has not within the grace period. The child dies with the host
//! (`PR_SET_PDEATHSIG`), so a killed host leaves no orphan running a task whose lease will be
//! recovered elsewhere. CPU time and peak resident memory come from the child's `rusage`:
//! exact for the run, whatever else the host does.

use super::host_context::TaskHooks;
use serde::{Deserialize, Serialize};
use stask_plugin_api::protocol::{CallError, CallErrorKind, RunOutcome, RunRequest};
use stask_plugin_api::LogLevel;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines of the child's stderr copied into the task log (the rest is counted, not kept).
const MAX_OUTPUT_LINES: usize = 200;
/// Lines of the child's last output quoted when it dies without an outcome.
const TAIL_LINES: usize = 3;
/// Longest protocol line the parent reads from the child (bytes, without the newline): a
/// call's arguments (at most `services::MAX_ARGS_BYTES`) fit, escaped, with room to spare.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// What bounds one isolated run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Address-space limit of the child in bytes (`None`: unlimited).
    pub memory_bytes: Option<u64>,
    /// How long a cancelled (or timed-out) child may take to stop before it is killed.
    pub kill_grace: Duration,
}

/// How an isolated run ended, with its measured cost.
#[derive(Debug, Clone)]
pub struct IsolatedRun {
    /// The worker's outcome, or a failure describing how the process ended.
    pub outcome: RunOutcome,
    /// CPU time of the child (user + system), ms.
    pub cpu_ms: Option<i64>,
    /// Peak resident memory of the child, bytes.
    pub max_rss_bytes: Option<i64>,
}

/// Parent → child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum ToChild {
    Run {
        request: Box<RunRequest>,
    },
    Cancel,
    /// The answer to the child's call `id`: exactly one of `ok` (the answer document) and
    /// `err` (a `CallError` document).
    Answer {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<String>,
    },
}

/// Child → parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum ToParent {
    Progress {
        percent: i32,
        processed: i64,
        total: i64,
        message: String,
    },
    Log {
        level: LogLevel,
        line: String,
    },
    /// A host-service call of the plugin, answered by [`ToChild::Answer`] with the same id.
    Call {
        id: u64,
        method: String,
        args: String,
    },
    Outcome {
        outcome: RunOutcome,
    },
}

/// What the parent's protocol reader hands to the run loop.
enum Incoming {
    Message(ToParent),
    /// The child broke the protocol (the reason): the run ends.
    Broken(String),
}

/// Reads one line of at most `max` bytes into `buf` (without its newline): `Ok(false)` at
/// EOF, an `InvalidData` error for a longer line (what was read of it is discarded).
fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let read = std::io::Read::take(&mut *reader, limit).read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a protocol line longer than {max} bytes"),
        ));
    }
    Ok(true)
}

/// The parent's reader of the child's protocol pipe: each line as a message, until EOF or
/// the first line that breaks the protocol.
fn read_protocol(input: impl std::io::Read, messages: crossbeam_channel::Sender<Incoming>) {
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    loop {
        match read_bounded_line(&mut reader, &mut buf, MAX_LINE_BYTES) {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                let _ = messages.send(Incoming::Broken(e.to_string()));
                return;
            }
        }
        match serde_json::from_slice::<ToParent>(&buf) {
            Ok(message) => {
                if messages.send(Incoming::Message(message)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let start: String = String::from_utf8_lossy(&buf).chars().take(80).collect();
                let _ = messages.send(Incoming::Broken(format!(
                    "an unreadable protocol line ({e}): {start}"
                )));
                return;
            }
        }
    }
}

/// Sets up the child between fork and exec: it dies with its parent, and its address space is
/// limited to `memory` bytes when given. A failed step fails the spawn with the OS error, so a
/// limit that could not be applied never lets the run start without it.
fn restrict_child(memory: Option<u64>) -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    os_result(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) })?;
    if let Some(bytes) = memory {
        set_rlimit(
            libc::RLIMIT_AS,
            libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            },
        )?;
    }
    Ok(())
}

/// `setrlimit(resource, limit)`, its failure as the OS error.
fn set_rlimit(resource: libc::__rlimit_resource_t, limit: libc::rlimit) -> std::io::Result<()> {
    // SAFETY: `limit` is a valid rlimit that outlives the call, which only reads it.
    os_result(unsafe { libc::setrlimit(resource, &limit) })
}

/// A libc return code: 0 is success, anything else a failure described by `errno`.
fn os_result(code: libc::c_int) -> std::io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `request` with the library at `library` in a child process of `exe`.
pub fn run(
    exe: &Path,
    library: &Path,
    request: &RunRequest,
    hooks: &dyn TaskHooks,
    limits: Limits,
) -> IsolatedRun {
    let failed = |message: String| IsolatedRun {
        outcome: RunOutcome::Failed {
            message,
            retryable: true,
        },
        cpu_ms: None,
        max_rss_bytes: None,
    };
    let mut command = Command::new(exe);
    command
        .arg("isolated-run")
        .arg("--library")
        .arg(library)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let memory = limits.memory_bytes;
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (prctl, setrlimit, reading errno); it allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || restrict_child(memory));
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return failed(match memory {
                Some(bytes) => format!(
                "cannot start the worker process or apply its memory limit of {bytes} bytes: {e}"
            ),
                None => format!("cannot start the worker process: {e}"),
            })
        }
    };
    let pid = child.id() as libc::pid_t;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return failed("the worker process has no pipes".into());
    };
    let run = ToChild::Run {
        request: Box::new(request.clone()),
    };
    let _ = send(&mut stdin, &run);

    let tail = parking_lot::Mutex::new(VecDeque::with_capacity(TAIL_LINES));
    let (messages_tx, messages) = crossbeam_channel::unbounded::<Incoming>();
    let mut outcome = None;
    let mut broken: Option<String> = None;
    let mut killed_after: Option<Duration> = None;
    let mut status = 0;
    // SAFETY: rusage is plain integers and timevals, for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    std::thread::scope(|scope| {
        scope.spawn(move || read_protocol(stdout, messages_tx));
        let tail = &tail;
        scope.spawn(move || {
            let mut copied = 0usize;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if copied < MAX_OUTPUT_LINES {
                    hooks.log(LogLevel::Warning, &format!("worker output: {line}"));
                    copied += 1;
                }
                let mut tail = tail.lock();
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });

        let mut cancel_sent_at: Option<Instant> = None;
        loop {
            match messages.recv_timeout(Duration::from_millis(20)) {
                Ok(Incoming::Message(ToParent::Call { id, method, args })) => {
                    let (ok, err) = match hooks.call(&method, &args) {
                        Ok(answer) => (Some(answer), None),
                        Err(error) => (None, Some(error)),
                    };
                    let _ = send(&mut stdin, &ToChild::Answer { id, ok, err });
                }
                Ok(Incoming::Message(message)) => handle(hooks, message, &mut outcome),
                Ok(Incoming::Broken(reason)) => {
                    if broken.is_none() {
                        // SAFETY: signalling our own child, which we have not reaped yet.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        broken = Some(reason);
                    }
                }
                Err(_) => {}
            }
            if cancel_sent_at.is_none() && hooks.is_cancelled() {
                let _ = send(&mut stdin, &ToChild::Cancel);
                cancel_sent_at = Some(Instant::now());
            }
            if let Some(at) = cancel_sent_at {
                if killed_after.is_none() && at.elapsed() >= limits.kill_grace {
                    // SAFETY: signalling our own child, which we have not reaped yet.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    killed_after = Some(limits.kill_grace);
                }
            }
            // SAFETY: waiting for our own child; `status` and `usage` are valid out-pointers.
            let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if reaped == pid || reaped < 0 {
                break;
            }
        }
        drop(stdin);
        // The readers end at EOF now that the child is gone; take what was still queued.
        // A call still queued has no one left to answer it.
        for incoming in messages.iter() {
            match incoming {
                Incoming::Message(message) => handle(hooks, message, &mut outcome),
                Incoming::Broken(reason) => {
                    broken.get_or_insert(reason);
                }
            }
        }
    });
    let cpu = usage.ru_utime.tv_sec * 1_000
        + usage.ru_utime.tv_usec / 1_000
        + usage.ru_stime.tv_sec * 1_000
        + usage.ru_stime.tv_usec / 1_000;
    let tail: Vec<String> = tail.into_inner().into_iter().collect();
    if let Some(reason) = broken {
        // Whatever it reported before, a child that broke the protocol is not believed.
        outcome = Some(RunOutcome::Failed {
            message: format!("the worker process broke the protocol and was killed: {reason}"),
            retryable: true,
        });
    }
    let outcome = outcome.unwrap_or_else(|| {
        let message = match killed_after {
            Some(grace) if hooks.is_cancelled() => format!(
                "the worker process did not stop within {}s of being asked and was killed",
                grace.as_secs()
            ),
            _ => describe_exit(status, memory, &tail),
        };
        RunOutcome::Failed {
            message,
            retryable: true,
        }
    });
    IsolatedRun {
        outcome,
        cpu_ms: Some(cpu),
        max_rss_bytes: Some(usage.ru_maxrss * 1024),
    }
}

/// A message of the child other than a call, applied to the run.
fn handle(hooks: &dyn TaskHooks, message: ToParent, outcome: &mut Option<RunOutcome>) {
    match message {
        ToParent::Progress {
            percent,
            processed,
            total,
            message,
        } => hooks.progress(percent, processed, total, &message),
        ToParent::Log { level, line } => hooks.log(level, &line),
        ToParent::Outcome { outcome: o } => *outcome = Some(o),
        // Answered in the run loop; one that arrives after the child ended waits for nobody.
        ToParent::Call { .. } => {}
    }
}

fn send(stdin: &mut std::process::ChildStdin, message: &ToChild) -> std::io::Result<()> {
    let mut line = serde_json::to_string(message).map_err(std::io::Error::other)?;
    line.push('\n');
    stdin.write_all(line.as_bytes())?;
    stdin.flush()
}

/// One line on how a child that sent no outcome ended.
fn describe_exit(status: libc::c_int, memory_limit: Option<u64>, tail: &[String]) -> String {
    let mut message = if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let name = match signal {
            libc::SIGSEGV => "segmentation fault",
            libc::SIGABRT => "aborted",
            libc::SIGBUS => "bus error",
            libc::SIGILL => "illegal instruction",
            libc::SIGFPE => "arithmetic fault",
            libc::SIGKILL => "killed",
            _ => "killed by a signal",
        };
        format!("the worker process crashed: {name} (signal {signal})")
    } else if libc::WIFEXITED(status) {
        format!(
            "the worker process exited with code {} before reporting an outcome",
            libc::WEXITSTATUS(status)
        )
    } else {
        "the worker process ended without an outcome".to_owned()
    };
    let out_of_memory = tail
        .iter()
        .any(|l| l.contains("memory allocation of") || l.contains("out of memory"));
    if let (true, Some(limit)) = (out_of_memory, memory_limit) {
        message.push_str(&format!(
            "; it ran out of its memory limit of {} MiB",
            limit >> 20
        ));
    }
    if !tail.is_empty() {
        message.push_str(&format!("; last output: {}", tail.join(" | ")));
    }
    message
}

/// The child's side, behind `stask isolated-run --library FILE`: loads the library, runs the
/// task the parent sends, reports over the protocol; returns the exit code.
pub fn child_main(library: &Path) -> i32 {
    use std::os::fd::FromRawFd;
    // The protocol keeps the original stdout; fd 1 becomes stderr, so the plugin's prints
    // land in the task log instead of in the protocol.
    // SAFETY: plain descriptor duplication at the start of a single-threaded process.
    let protocol = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return 70;
        }
        std::fs::File::from_raw_fd(fd)
    };
    let out = Arc::new(parking_lot::Mutex::new(protocol));
    let report = |message: &ToParent| {
        if let Ok(mut line) = serde_json::to_string(message) {
            line.push('\n');
            let mut out = out.lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    };
    let mut lines = BufReader::new(std::io::stdin()).lines();
    let request = match lines
        .next()
        .map(|l| l.map(|l| serde_json::from_str::<ToChild>(&l)))
    {
        Some(Ok(Ok(ToChild::Run { request }))) => request,
        _ => return 64,
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(PendingCalls::default());
    let flag = cancelled.clone();
    let answers = calls.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            match serde_json::from_str(&line) {
                Ok(ToChild::Cancel) => flag.store(true, Ordering::Relaxed),
                Ok(ToChild::Answer { id, ok, err }) => {
                    answers.answer(id, ok.ok_or_else(|| err.unwrap_or_default()))
                }
                _ => {}
            }
        }
        // The parent closed the pipe: it is gone or done with us.
        flag.store(true, Ordering::Relaxed);
        answers.close();
    });
    let outcome = match load(library) {
        Ok(worker) => {
            let hooks = ChildHooks {
                report: &report,
                cancelled,
                calls,
            };
            worker.run(&request, &hooks)
        }
        Err(reason) => RunOutcome::Failed {
            message: format!("the worker process cannot load the library: {reason}"),
            retryable: false,
        },
    };
    report(&ToParent::Outcome { outcome });
    0
}

/// The registry checked these bytes (ELF completeness, hash) when it loaded them and wrote
/// this copy under a name of its own that nothing rewrites: open it where it is.
fn load(library: &Path) -> Result<super::loader::LoadedWorker, String> {
    super::loader::load_checked_copy(library).map_err(|e| e.reason)
}

struct ChildHooks<'a> {
    report: &'a (dyn Fn(&ToParent) + Sync),
    cancelled: Arc<AtomicBool>,
    calls: Arc<PendingCalls>,
}

/// The child's host-service calls waiting for the parent's answer, by call id. `None` once
/// the parent closed the pipe: no answer can come any more.
struct PendingCalls {
    waiting: parking_lot::Mutex<Option<WaitingCalls>>,
}

struct WaitingCalls {
    next_id: u64,
    by_id: std::collections::HashMap<u64, crossbeam_channel::Sender<Result<String, String>>>,
}

impl Default for PendingCalls {
    fn default() -> Self {
        PendingCalls {
            waiting: parking_lot::Mutex::new(Some(WaitingCalls {
                next_id: 1,
                by_id: std::collections::HashMap::new(),
            })),
        }
    }
}

impl PendingCalls {
    /// A new call's id and where its answer arrives; `None` when the parent is gone.
    fn open(&self) -> Option<(u64, crossbeam_channel::Receiver<Result<String, String>>)> {
        let mut waiting = self.waiting.lock();
        let calls = waiting.as_mut()?;
        let id = calls.next_id;
        calls.next_id += 1;
        let (tx, rx) = crossbeam_channel::bounded(1);
        calls.by_id.insert(id, tx);
        Some((id, rx))
    }

    /// Hands the parent's answer to the call waiting for it (an unknown id is ignored).
    fn answer(&self, id: u64, result: Result<String, String>) {
        if let Some(tx) = self
            .waiting
            .lock()
            .as_mut()
            .and_then(|calls| calls.by_id.remove(&id))
        {
            let _ = tx.send(result);
        }
    }

    /// The parent is gone: every waiting call ends (its sender dropped), and so do later ones.
    fn close(&self) {
        self.waiting.lock().take();
    }
}

impl TaskHooks for ChildHooks<'_> {
    fn progress(&self, percent: i32, processed: i64, total: i64, message: &str) {
        (self.report)(&ToParent::Progress {
            percent,
            processed,
            total,
            message: message.to_owned(),
        });
    }

    fn log(&self, level: LogLevel, line: &str) {
        (self.report)(&ToParent::Log {
            level,
            line: line.to_owned(),
        });
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Forwarded to the parent, which serves it as an in-process call of this run would be.
    fn call(&self, method: &str, args_json: &str) -> Result<String, String> {
        let gone = || {
            CallError::new(
                CallErrorKind::Unavailable,
                format!("{method}: the host ended the run before answering"),
            )
            .to_json()
        };
        let Some((id, answer)) = self.calls.open() else {
            return Err(gone());
        };
        (self.report)(&ToParent::Call {
            id,
            method: method.to_owned(),
            args: args_json.to_owned(),
        });
        answer.recv().unwrap_or_else(|_| Err(gone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit whose soft value exceeds its hard value: refused by the kernel, even for root,
    /// and without changing the limits of the process that asks.
    const INVALID_LIMIT: libc::rlimit = libc::rlimit {
        rlim_cur: 2 << 30,
        rlim_max: 1 << 30,
    };

    #[test]
    fn a_limit_the_kernel_refuses_is_an_error_not_ignored() {
        let e = set_rlimit(libc::RLIMIT_AS, INVALID_LIMIT).expect_err("cur > max is refused");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        assert!(os_result(0).is_ok());
    }

    #[test]
    fn a_failed_limit_between_fork_and_exec_fails_the_spawn() {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("true");
        // SAFETY: set_rlimit makes one async-signal-safe call and allocates nothing.
        unsafe {
            command.pre_exec(|| set_rlimit(libc::RLIMIT_AS, INVALID_LIMIT));
        }
        let e = command
            .spawn()
            .expect_err("the child must not start without its limit");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    }

    #[test]
    fn exits_are_described_by_signal_or_code() {
        // Encoded as wait(2) does: signal in the low bits, exit code in the second byte.
        assert_eq!(
            describe_exit(libc::SIGSEGV, None, &[]),
            "the worker process crashed: segmentation fault (signal 11)"
        );
        assert_eq!(
            describe_exit(3 << 8, None, &["bye".into()]),
            "the worker process exited with code 3 before reporting an outcome; last output: bye"
        );
        let oom = describe_exit(
            libc::SIGABRT,
            Some(256 << 20),
            &["memory allocation of 1048576 bytes failed".into()],
        );
        assert!(
            oom.starts_with("the worker process crashed: aborted (signal 6); it ran out of its memory limit of 256 MiB"),
            "{oom}"
        );
    }

    #[test]
    fn lines_are_read_up_to_the_bound_and_a_longer_one_is_an_error() {
        let mut input: &[u8] = b"short\n0123456789\nlast";
        let mut buf = Vec::new();
        assert!(read_bounded_line(&mut input, &mut buf, 10).unwrap());
        assert_eq!(buf, b"short");
        assert!(read_bounded_line(&mut input, &mut buf, 10).unwrap());
        assert_eq!(buf, b"0123456789");
        assert!(read_bounded_line(&mut input, &mut buf, 10).unwrap());
        assert_eq!(buf, b"last");
        assert!(!read_bounded_line(&mut input, &mut buf, 10).unwrap());
        let mut long: &[u8] = b"0123456789A\n";
        let e = read_bounded_line(&mut long, &mut buf, 10).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_reader_ends_at_the_first_line_that_breaks_the_protocol() {
        let input: &[u8] = b"{\"t\":\"log\",\"level\":0,\"line\":\"a\"}\nnot json\n{\"t\":\"log\",\"level\":0,\"line\":\"b\"}\n";
        let (tx, rx) = crossbeam_channel::unbounded();
        read_protocol(input, tx);
        let got: Vec<Incoming> = rx.iter().collect();
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Incoming::Message(ToParent::Log { line, .. }) if line == "a"));
        assert!(
            matches!(&got[1], Incoming::Broken(reason) if reason.contains("not json")),
            "the bad line is quoted"
        );
    }

    #[test]
    fn a_call_waits_for_its_answer_and_ends_when_the_parent_goes() {
        let calls = PendingCalls::default();
        let (id, answer) = calls.open().unwrap();
        let (other, unanswered) = calls.open().unwrap();
        assert_ne!(id, other);
        calls.answer(99, Ok("ignored".into()));
        calls.answer(id, Ok("{\"id\":5}".into()));
        assert_eq!(answer.recv().unwrap(), Ok("{\"id\":5}".into()));
        calls.close();
        assert!(unanswered.recv().is_err(), "the parent is gone");
        assert!(calls.open().is_none());
        let answer = serde_json::to_string(&ToChild::Answer {
            id: 3,
            ok: None,
            err: Some("e".into()),
        })
        .unwrap();
        assert_eq!(answer, r#"{"t":"answer","id":3,"err":"e"}"#);
    }

    #[test]
    fn messages_are_one_tagged_json_document_each() {
        let text = serde_json::to_string(&ToParent::Log {
            level: LogLevel::Error,
            line: "x".into(),
        })
        .unwrap();
        assert_eq!(text, r#"{"t":"log","level":2,"line":"x"}"#);
        assert!(matches!(
            serde_json::from_str::<ToChild>(r#"{"t":"cancel"}"#).unwrap(),
            ToChild::Cancel
        ));
    }
}

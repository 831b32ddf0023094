//! Crash storm: many short tasks, the daemon killed with SIGKILL at random moments and restarted
//! on the same home each time, while a client keeps creating tasks. At the end every task is
//! finished, none is lost, none completed twice, and the only re-runs are of attempts a kill
//! interrupted, proven from the `demo` worker's ledger (one `start <id> <attempt>` line when a
//! run starts, one `done <id> <attempt>` line when it completes) and from the API.
//!
//! Bounded for CI (1,000 tasks, 12 kills); a longer storm:
//! `STASK_CRASH_STORM_TASKS=5000 STASK_CRASH_STORM_KILLS=60 cargo test -p stask-tests --test
//! crash_storm -- --nocapture`. `STASK_CRASH_STORM_SEED=N` replays a storm (the seed is printed).
//!
//! Kill moments are chosen by waiting for the ledger to reach a random number of lines, never by
//! sleeping.

use serde_json::{json, Value};
use stask_tests::Home;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The highest `max_attempts` the API accepts: kills can only exhaust it past 99 kills.
const MAX_ATTEMPTS: u32 = 100;

/// Tasks created ahead of the ledger: creates are spread over the storm.
const BACKLOG: usize = 64;

/// SplitMix64: a small seeded generator, so a storm can be replayed from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

/// The daemon clients should talk to now (`None` while it is down), with a generation number
/// that grows at every restart.
#[derive(Default)]
struct Current {
    state: Mutex<(Option<String>, u64)>,
    changed: Condvar,
}

impl Current {
    fn set(&self, base: Option<String>) {
        let mut s = self.state.lock().unwrap();
        s.0 = base;
        s.1 += 1;
        self.changed.notify_all();
    }

    /// The base URL and generation, waiting while the daemon is down.
    fn get(&self) -> (String, u64) {
        let mut s = self.state.lock().unwrap();
        loop {
            if let Some(base) = &s.0 {
                return (base.clone(), s.1);
            }
            s = self.changed.wait(s).unwrap();
        }
    }

    /// Waits until the generation moves past `generation`.
    fn wait_past(&self, generation: u64) {
        let mut s = self.state.lock().unwrap();
        while s.1 <= generation {
            s = self.changed.wait(s).unwrap();
        }
    }
}

/// What the creating client saw.
#[derive(Default, Debug)]
struct Created {
    /// Ids answered with 201: these must all exist and complete.
    accepted: Vec<i64>,
    /// Requests whose answer was lost to a kill: each may or may not have created a task.
    unanswered: usize,
    /// Clear refusals (503 while the daemon was busy) that were retried.
    refused: usize,
}

/// Creates `n` tasks, one request at a time, through every restart.
fn create_tasks(current: &Current, token: &str, ledger: &Path, n: usize, mut rng: Rng) -> Created {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let mut created = Created::default();
    while created.accepted.len() < n {
        // Keep the backlog short so that creates go on through the whole storm (and some meet a
        // kill): wait for the ledger (two lines per finished run) to catch up.
        while created.accepted.len() > BACKLOG + ledger_lines(ledger) / 2 {
            std::thread::sleep(Duration::from_millis(2));
        }
        // 0-40 ms of work per task: 0-4 steps of 0-10 ms.
        let body = json!({
            "steps": rng.below(5),
            "sleep_ms": rng.below(11),
            "ledger": ledger,
            "max_attempts": MAX_ATTEMPTS,
        })
        .to_string();
        let (base, generation) = current.get();
        let answer = agent
            .post(&format!("{base}/stask/workers/demo/tasks/run"))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/json")
            .send_string(&body);
        match answer {
            Ok(r) => {
                assert_eq!(r.status(), 201);
                let v: Value = r.into_json().expect("JSON answer");
                created.accepted.push(v["id"].as_i64().expect("id"));
            }
            Err(ureq::Error::Status(503, r)) => {
                let v: Value = r.into_json().expect("a 503 is a JSON error");
                assert_eq!(v["success"], false, "{v}");
                created.refused += 1;
            }
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "create answered {code}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(ureq::Error::Transport(_)) => {
                // Killed under us: the task may exist or not; ask the next daemon.
                created.unanswered += 1;
                current.wait_past(generation);
            }
        }
    }
    created
}

/// One ledger line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Entry {
    Start { id: i64, attempt: u32 },
    Done { id: i64, attempt: u32 },
}

fn read_ledger(path: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let (id, attempt) = match parts.as_slice() {
                [_, id, attempt] => (id.parse().unwrap(), attempt.parse().unwrap()),
                _ => panic!("malformed ledger line {line:?}"),
            };
            match parts[0] {
                "start" => Entry::Start { id, attempt },
                "done" => Entry::Done { id, attempt },
                other => panic!("unknown ledger entry {other:?}"),
            }
        })
        .collect()
}

fn ledger_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

/// Waits until the ledger has at least `lines` lines (it only grows while tasks run).
fn wait_ledger(path: &Path, lines: usize, deadline: Instant) {
    while ledger_lines(path) < lines {
        assert!(
            Instant::now() < deadline,
            "the ledger stopped at {} lines, waiting for {lines}",
            ledger_lines(path)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every task of the home, from the API.
fn all_tasks(d: &stask_tests::Daemon) -> BTreeMap<i64, Value> {
    let mut tasks = BTreeMap::new();
    for page in 1.. {
        let r = d.get(&format!("/stask/tasks?per_page=500&page={page}"));
        assert_eq!(r.status, 200, "{:?}", r.body);
        let batch = r.body["tasks"].as_array().unwrap().clone();
        if batch.is_empty() {
            break;
        }
        for t in batch {
            tasks.insert(t["id"].as_i64().unwrap(), t);
        }
    }
    tasks
}

/// What one task's ledger lines say, with the daemon instance (segment) that wrote each line.
#[derive(Debug, Default)]
struct Runs {
    starts: Vec<(u32, usize)>,
    dones: Vec<(u32, usize)>,
}

/// Figures of a checked storm.
#[derive(Debug, Default)]
struct Figures {
    interrupted_mid_run: usize,
    completed_but_unrecorded: usize,
    /// Attempts with no `start` line: the host recorded the start, then the kill came before
    /// the plugin wrote its line (microseconds). At most one per pool thread per kill.
    started_unlogged: usize,
}

/// Checks one task against its ledger lines and its row; returns what its re-runs were.
fn check_task(id: i64, task: &Value, runs: &Runs, kills: usize, figures: &mut Figures) {
    let attempts = task["attempts"].as_u64().unwrap() as u32;
    let status = task["status"].as_str().unwrap();
    let context = || format!("task {id}: {runs:?}\n{task}");
    if status != "completed" {
        // Only possible when kills alone used up every attempt.
        assert!(
            status == "failed" && attempts == MAX_ATTEMPTS && kills >= MAX_ATTEMPTS as usize,
            "not completed: {}",
            context()
        );
        return;
    }
    assert!(
        !runs.starts.is_empty(),
        "completed but never started: {}",
        context()
    );
    // `attempts` counts runs that started (a claim alone does not count).
    assert!(
        attempts as usize <= kills + 1,
        "more started runs than daemon instances: {}",
        context()
    );
    // Attempt numbers only grow: no started run ran twice.
    assert!(
        runs.starts.windows(2).all(|w| w[0].0 < w[1].0),
        "an attempt number started twice or went back: {}",
        context()
    );
    let (last_attempt, last_segment) = *runs.starts.last().unwrap();
    assert_eq!(
        last_attempt,
        attempts,
        "the completing run must be the last started one: {}",
        context()
    );
    // Completed exactly once: one `done` of the final attempt, written by the instance that ran it.
    let final_dones: Vec<_> = runs.dones.iter().filter(|(a, _)| *a == attempts).collect();
    assert_eq!(
        final_dones,
        vec![&(attempts, last_segment)],
        "the final attempt must be done exactly once: {}",
        context()
    );
    // Before the first start line, each earlier started run needs an instance of its own.
    let (first_attempt, first_segment) = runs.starts[0];
    assert!(
        first_attempt as usize <= first_segment + 1,
        "more started runs before the first start line than instances: {}",
        context()
    );
    figures.started_unlogged += first_attempt as usize - 1;
    for pair in runs.starts.windows(2) {
        let ((attempt, segment), (next_attempt, next_segment)) = (pair[0], pair[1]);
        // A re-run only after a kill: the next run is in a later daemon instance, and each
        // instance in between started the task at most once.
        assert!(
            next_segment > segment,
            "attempt {attempt} was re-run by the same daemon instance: {}",
            context()
        );
        assert!(
            (next_attempt - attempt) as usize <= next_segment - segment,
            "more started runs between two start lines than kills: {}",
            context()
        );
        figures.started_unlogged += (next_attempt - attempt - 1) as usize;
        // An interrupted attempt either did not finish its work, or finished it just before the
        // kill, too late for its outcome to be stored (at-least-once: the work is re-run).
        match runs.dones.iter().filter(|(a, _)| *a == attempt).count() {
            0 => figures.interrupted_mid_run += 1,
            1 => {
                assert!(
                    runs.dones.contains(&(attempt, segment)),
                    "a done line outside its run's daemon instance: {}",
                    context()
                );
                figures.completed_but_unrecorded += 1;
            }
            _ => panic!("attempt {attempt} done twice: {}", context()),
        }
    }
    assert!(
        runs.dones
            .iter()
            .all(|(a, _)| runs.starts.iter().any(|(s, _)| s == a)),
        "a done line without its start: {}",
        context()
    );
}

/// The recovery lines in a task's log: "interrupted" ones (one per started attempt lost to a
/// kill), and the ones of claims that had not started (no attempt used).
fn recovery_lines(d: &stask_tests::Daemon, id: i64) -> (usize, usize) {
    let r = d.get(&format!("/stask/tasks/{id}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let lines = r.body["log"].as_array().unwrap();
    let count = |what: &str| {
        lines
            .iter()
            .filter(|l| {
                let line = l["line"].as_str().unwrap_or("");
                line.starts_with("host: ") && line.contains(what)
            })
            .count()
    };
    (
        count("was interrupted"),
        count("stopped before starting it"),
    )
}

#[test]
fn a_crash_storm_loses_nothing_and_reruns_only_interrupted_attempts() {
    let tasks = env_number("STASK_CRASH_STORM_TASKS", 1_000) as usize;
    let kills = env_number("STASK_CRASH_STORM_KILLS", 12) as usize;
    let seed = env_number(
        "STASK_CRASH_STORM_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    println!(
        "crash storm: {tasks} tasks, {kills} kills, seed {seed} (replay with STASK_CRASH_STORM_SEED={seed})"
    );
    assert!(tasks > 0);
    let began = Instant::now();
    let mut rng = Rng(seed);
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "4");
    let token = home.token();
    let ledger: PathBuf = home.path().join("ledger.txt");

    // Kill moments: random ledger sizes below the least the storm writes (a start and a done
    // line per task), so each is reached.
    let mut kill_at: Vec<usize> = (0..kills)
        .map(|_| 1 + rng.below((2 * tasks as u64 * 9 / 10).max(1)) as usize)
        .collect();
    kill_at.sort_unstable();

    let current = Arc::new(Current::default());
    let creator = {
        let current = current.clone();
        let token = token.clone();
        let ledger = ledger.clone();
        let rng = Rng(rng.next());
        std::thread::spawn(move || create_tasks(&current, &token, &ledger, tasks, rng))
    };

    let deadline = began + Duration::from_secs(600);
    // Ledger line counts at each kill: lines before boundary k were written by instance k.
    let mut boundaries = Vec::with_capacity(kills);
    let mut daemon = home.serve_with_token(token.clone());
    // The storm's own duration, without building the workspace.
    let storm = Instant::now();
    current.set(Some(daemon.base.clone()));
    for target in &kill_at {
        wait_ledger(&ledger, *target, deadline);
        current.set(None);
        daemon.kill9();
        boundaries.push(ledger_lines(&ledger));
        daemon = home.serve_with_token(token.clone());
        current.set(Some(daemon.base.clone()));
    }
    let created = creator.join().expect("the creating client failed");
    let d = daemon;

    // Everything finishes after the last restart.
    let stats = loop {
        let stats = d.get("/stask/stats").body;
        let open = ["pending", "preparing", "running"]
            .iter()
            .map(|k| stats[k].as_i64().unwrap())
            .sum::<i64>();
        if open == 0 {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "tasks still open: {stats}\n{}",
            d.log.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let storm_secs = storm.elapsed().as_secs_f64();
    let rows = all_tasks(&d);
    assert_eq!(stats["total"].as_u64().unwrap() as usize, rows.len());

    // None lost: every accepted create exists; the extra rows are creates whose answer a kill
    // swallowed.
    let accepted: HashSet<i64> = created.accepted.iter().copied().collect();
    assert_eq!(accepted.len(), tasks, "ids answered twice: {created:?}");
    let missing: Vec<_> = accepted
        .iter()
        .filter(|id| !rows.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "accepted tasks lost: {missing:?}");
    let extra = rows.len() - tasks;
    assert!(
        extra <= created.unanswered,
        "{extra} tasks nobody was told about, but only {} answers were lost",
        created.unanswered
    );

    // The ledger, split by daemon instance.
    let entries = read_ledger(&ledger);
    let mut runs: BTreeMap<i64, Runs> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let segment = boundaries.partition_point(|b| *b <= i);
        match *entry {
            Entry::Start { id, attempt } => {
                runs.entry(id).or_default().starts.push((attempt, segment))
            }
            Entry::Done { id, attempt } => {
                runs.entry(id).or_default().dones.push((attempt, segment))
            }
        }
    }
    let strangers: Vec<_> = runs.keys().filter(|id| !rows.contains_key(id)).collect();
    assert!(
        strangers.is_empty(),
        "ledger lines of unknown tasks: {strangers:?}"
    );

    let mut figures = Figures::default();
    let empty = Runs::default();
    for (id, task) in &rows {
        check_task(
            *id,
            task,
            runs.get(id).unwrap_or(&empty),
            kills,
            &mut figures,
        );
    }
    // The database agrees: every started run but the last ended in a recovery after a kill;
    // claims that had not started were given back without an attempt.
    let mut rerun_tasks = 0;
    let mut claims_given_back = 0;
    for (id, task) in &rows {
        let attempts = task["attempts"].as_u64().unwrap() as usize;
        let (interrupted, not_started) = recovery_lines(&d, *id);
        claims_given_back += not_started;
        if attempts > 1 {
            rerun_tasks += 1;
        }
        assert_eq!(
            interrupted,
            attempts - 1,
            "task {id}: one recovery per lost attempt: {task}"
        );
    }
    // A kill can catch each of the 4 pool threads between recording a start and the plugin's
    // first line, and nothing else leaves an attempt without its start line.
    assert!(
        figures.started_unlogged <= 4 * kills,
        "{} attempts counted without a start line in {kills} kills",
        figures.started_unlogged
    );
    let starts = entries
        .iter()
        .filter(|e| matches!(e, Entry::Start { .. }))
        .count();
    println!(
        "crash storm survived: {} kills, {} tasks checked ({} accepted; {} answers lost to a kill, {} of those created their task), \
         {} ledger lines, {starts} runs started, {rerun_tasks} tasks re-run; interrupted attempts: \
         {} mid-run, {} after the work but before its outcome was stored, {} started but killed \
         before the plugin's first line; {claims_given_back} claims given back without an \
         attempt (claimed, not started); {} creates refused with 503; storm {:.1} s, with \
         checks {:.1} s",
        boundaries.len(),
        rows.len(),
        tasks,
        created.unanswered,
        extra,
        entries.len(),
        figures.interrupted_mid_run,
        figures.completed_but_unrecorded,
        figures.started_unlogged,
        created.refused,
        storm_secs,
        storm.elapsed().as_secs_f64()
    );
    assert_eq!(boundaries.len(), kills);
    assert_eq!(
        stats["completed"].as_u64().unwrap() as usize,
        rows.len(),
        "every task completed: {stats}"
    );
}

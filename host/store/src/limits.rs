//! Concurrency and rate limits of workers, shared by every driver.
//!
//! A worker's settings `concurrency` (most of its tasks leased at once, on all hosts),
//! `action_concurrency` (the same per action) and `rate_limit` (most claims per second, minute
//! or hour, on all hosts) become a [`WorkerLimit`], parsed by the host from its cached worker
//! rows and passed in [`crate::ClaimRequest::limits`].
//!
//! How a claim keeps them (each driver supplies the statements through [`LimitedClaim`], and
//! [`claim_with_limits`] decides): in one transaction, the limited workers' rows of
//! `s_worker_limits` are locked in identifier order (created on demand), their leased tasks
//! (`preparing` or `running`) are counted, and each limited worker is claimed alone with its
//! allowance (`min(cap - leased, rate allowance, free pool slots)`); the unlimited workers get
//! the rest of the request's budget; the rate state moves by what was claimed. A claim that
//! names no limited worker is the driver's plain claim statement, untouched.
//!
//! The rate limit is GCRA: a theoretical arrival time `tat` (µs) moves by the emission
//! interval `e = per / count` per claimed task; a claim at `now` may take tasks while
//! `tat - now <= tolerance`, with a tolerance of a burst of `max(1, count / 10)` tasks.
//! Invariant: over any window of length `w`, at most `w / e + burst` tasks are claimed.

use crate::{ClaimRequest, ClaimedTask, StoreResult};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Most tasks a `rate_limit` may allow per unit.
pub const MAX_RATE_COUNT: u64 = 1_000_000;

/// A rate: at most `count` claims per `per_ms` milliseconds (`"100/s"`, `"600/min"`,
/// `"1000/h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Claims per period (1 to [`MAX_RATE_COUNT`]).
    pub count: u64,
    /// The period in milliseconds (1,000, 60,000 or 3,600,000).
    pub per_ms: u64,
}

/// Why a rate could not be read (see [`RateLimit`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rate \"N/s\", \"N/min\" or \"N/h\" (N a whole number from 1 to {MAX_RATE_COUNT}), got \"{0}\"")]
pub struct RateParseError(pub String);

impl FromStr for RateLimit {
    type Err = RateParseError;

    fn from_str(text: &str) -> Result<RateLimit, RateParseError> {
        let bad = || RateParseError(text.to_owned());
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count: u64 = count.parse().map_err(|_| bad())?;
        if !(1..=MAX_RATE_COUNT).contains(&count) {
            return Err(bad());
        }
        let per_ms = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => 1_000,
            "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            _ => return Err(bad()),
        };
        Ok(RateLimit { count, per_ms })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per_ms {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            _ => return write!(f, "{}/{}ms", self.count, self.per_ms),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl RateLimit {
    /// The emission interval in microseconds (at least 1).
    pub fn interval_us(&self) -> i64 {
        ((self.per_ms as i64 * 1_000) / self.count.max(1) as i64).max(1)
    }

    /// Claims allowed at once from idle: a tenth of the rate, at least one.
    pub fn burst(&self) -> u64 {
        (self.count / 10).max(1)
    }

    fn tolerance_us(&self) -> i64 {
        (self.burst() as i64 - 1) * self.interval_us()
    }

    /// How many claims the rate allows at `now_ms` with the stored `tat` (µs, `None`: never
    /// claimed).
    pub fn allowance(&self, tat_us: Option<i64>, now_ms: i64) -> u64 {
        let now = now_ms.saturating_mul(1_000);
        let ahead = tat_us.unwrap_or(now).max(now) - now;
        let tolerance = self.tolerance_us();
        if ahead > tolerance {
            0
        } else {
            ((tolerance - ahead) / self.interval_us()) as u64 + 1
        }
    }

    /// When (UNIX ms, rounded up) the next claim is allowed with the stored `tat`.
    pub fn next_allowed_ms(&self, tat_us: Option<i64>, now_ms: i64) -> i64 {
        let Some(tat) = tat_us else { return now_ms };
        let at_us = tat - self.tolerance_us();
        let at_ms = at_us.div_euclid(1_000) + i64::from(at_us.rem_euclid(1_000) != 0);
        at_ms.max(now_ms)
    }

    /// The stored `tat` after `claimed` claims at `now_ms`.
    pub fn advance(&self, tat_us: Option<i64>, now_ms: i64, claimed: u64) -> i64 {
        let now = now_ms.saturating_mul(1_000);
        tat_us
            .unwrap_or(now)
            .max(now)
            .saturating_add(self.interval_us().saturating_mul(claimed as i64))
    }
}

/// The limits of one worker, as a claim applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLimit {
    /// The worker.
    pub identifier: String,
    /// Most tasks leased at once on all hosts (0: no limit).
    pub concurrency: u64,
    /// Most tasks of an action leased at once, by action (the worker-wide cap applies too).
    pub action_concurrency: BTreeMap<String, u64>,
    /// Most claims per period on all hosts.
    pub rate: Option<RateLimit>,
}

impl WorkerLimit {
    /// The limits `settings` set for `identifier`, `None` when it sets none. Values the host's
    /// settings check would refuse are ignored (they cannot be stored through the API).
    pub fn from_settings(identifier: &str, settings: &Value) -> Option<WorkerLimit> {
        let concurrency = settings
            .get("concurrency")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let action_concurrency: BTreeMap<String, u64> = settings
            .get("action_concurrency")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(action, cap)| Some((action.clone(), cap.as_u64()?)))
                    .filter(|(_, cap)| *cap > 0)
                    .collect()
            })
            .unwrap_or_default();
        let rate = settings
            .get("rate_limit")
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok());
        let limit = WorkerLimit {
            identifier: identifier.to_owned(),
            concurrency,
            action_concurrency,
            rate,
        };
        limit.is_limited().then_some(limit)
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.concurrency > 0 || !self.action_concurrency.is_empty() || self.rate.is_some()
    }
}

/// Why a claim left a worker's due tasks pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldReason {
    /// `running` of the worker's tasks are leased, its cap is `cap`.
    Concurrency {
        /// Leased now (after this claim).
        running: u64,
        /// The `concurrency` setting.
        cap: u64,
    },
    /// The action's cap is reached (other actions of the worker may still be claimed).
    ActionConcurrency {
        /// The action.
        action: String,
        /// Leased now (after this claim).
        running: u64,
        /// Its `action_concurrency` cap.
        cap: u64,
    },
    /// The rate limit allows no claim before `next_at` (UNIX ms).
    Rate {
        /// When the next claim is allowed.
        next_at: i64,
    },
}

/// A worker whose tasks a claim left pending because of a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The worker.
    pub identifier: String,
    /// Which limit.
    pub reason: HeldReason,
}

impl Held {
    /// Whether the whole worker is held (not only one of its actions).
    pub fn whole_worker(&self) -> bool {
        !matches!(self.reason, HeldReason::ActionConcurrency { .. })
    }
}

/// What a claim took, and which workers' tasks it left pending because of their limits.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The claimed tasks, in claim order (priority, due time, id).
    pub tasks: Vec<ClaimedTask>,
    /// The limited workers the claim could take nothing more of (at a cap, or rate-limited),
    /// whether or not they have due tasks. Empty when the request named no limited worker.
    pub held: Vec<Held>,
}

/// How many tasks of a limited worker are leased now, and its rate state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitUsage {
    /// The worker.
    pub identifier: String,
    /// Its tasks `preparing` or `running`.
    pub leased: u64,
    /// The same per action (actions with none leased are left out).
    pub leased_by_action: BTreeMap<String, u64>,
    /// The rate limit's theoretical arrival time (µs), if it ever claimed under one.
    pub rate_tat_us: Option<i64>,
}

impl LimitUsage {
    /// Why `limit` holds this worker's tasks at `now`, if it does (the worker-wide reasons
    /// first, then each full action).
    pub fn held(&self, limit: &WorkerLimit, now: i64) -> Vec<Held> {
        let held = |reason| Held {
            identifier: limit.identifier.clone(),
            reason,
        };
        let mut out = Vec::new();
        if limit.concurrency > 0 && self.leased >= limit.concurrency {
            out.push(held(HeldReason::Concurrency {
                running: self.leased,
                cap: limit.concurrency,
            }));
        }
        if let Some(rate) = limit.rate {
            if rate.allowance(self.rate_tat_us, now) == 0 {
                out.push(held(HeldReason::Rate {
                    next_at: rate.next_allowed_ms(self.rate_tat_us, now),
                }));
            }
        }
        for (action, cap) in &limit.action_concurrency {
            let running = self.leased_by_action.get(action).copied().unwrap_or(0);
            if running >= *cap {
                out.push(held(HeldReason::ActionConcurrency {
                    action: action.clone(),
                    running,
                    cap: *cap,
                }));
            }
        }
        out
    }
}

/// The statements a driver runs inside one claim transaction of limited workers.
pub(crate) trait LimitedClaim {
    /// Locks the `s_worker_limits` rows of `identifiers` (sorted), creating missing ones, and
    /// returns each one's `rate_tat`.
    fn lock_limits(&mut self, identifiers: &[String])
        -> StoreResult<BTreeMap<String, Option<i64>>>;
    /// Leased tasks (`preparing`, `running`) of `identifiers`: `(identifier, action, count)`.
    fn leased(&mut self, identifiers: &[String]) -> StoreResult<Vec<(String, String, u64)>>;
    /// The driver's claim statement for `identifiers`, leaving out tasks of the actions in
    /// `skip_actions`, up to `limit` tasks.
    fn claim_some(
        &mut self,
        identifiers: &[String],
        skip_actions: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ClaimedTask>>;
    /// Stores a worker's new `rate_tat`.
    fn set_rate_tat(&mut self, identifier: &str, tat_us: i64) -> StoreResult<()>;
}

/// The limited workers of a request that it may claim (named in `identifiers` too), sorted.
pub(crate) fn limited_in<'a>(request: &'a ClaimRequest<'_>) -> Vec<&'a WorkerLimit> {
    let mut limited: Vec<&WorkerLimit> = request
        .limits
        .iter()
        .filter(|l| l.is_limited() && request.identifiers.contains(&l.identifier))
        .collect();
    limited.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    limited.dedup_by(|a, b| a.identifier == b.identifier);
    limited
}

/// Usage rows from the driver's `(identifier, action, count)` counts and `rate_tat`s.
pub(crate) fn usage_of(
    identifiers: &[String],
    leased: Vec<(String, String, u64)>,
    tats: &BTreeMap<String, Option<i64>>,
) -> BTreeMap<String, LimitUsage> {
    let mut usage: BTreeMap<String, LimitUsage> = identifiers
        .iter()
        .map(|id| {
            let usage = LimitUsage {
                identifier: id.clone(),
                rate_tat_us: tats.get(id).copied().flatten(),
                ..LimitUsage::default()
            };
            (id.clone(), usage)
        })
        .collect();
    for (identifier, action, count) in leased {
        if let Some(u) = usage.get_mut(&identifier) {
            u.leased += count;
            *u.leased_by_action.entry(action).or_insert(0) += count;
        }
    }
    usage
}

/// Claims within the limits (see the module's text), inside the driver's open transaction.
/// The caller checked that `request` names at least one limited worker.
pub(crate) fn claim_with_limits(
    tx: &mut impl LimitedClaim,
    request: &ClaimRequest<'_>,
) -> StoreResult<Claim> {
    let limited = limited_in(request);
    let ids: Vec<String> = limited.iter().map(|l| l.identifier.clone()).collect();
    let tats = tx.lock_limits(&ids)?;
    let leased = tx.leased(&ids)?;
    let mut usage = usage_of(&ids, leased, &tats);
    let now = request.now;
    // Limited workers' tasks are never claimed ahead: a task waiting in one host's ready queue
    // would hold a slot of the limit while another host is idle.
    let mut slots = request.slots.min(request.limit);
    let mut claim = Claim::default();
    for limit in &limited {
        let Some(u) = usage.get_mut(&limit.identifier) else {
            continue;
        };
        let before = claim.tasks.len();
        claim_one(tx, limit, u, now, &mut slots, &mut claim.tasks)?;
        let taken = (claim.tasks.len() - before) as u64;
        if let Some(rate) = limit.rate {
            if taken > 0 {
                let tat = rate.advance(u.rate_tat_us, now, taken);
                tx.set_rate_tat(&limit.identifier, tat)?;
                u.rate_tat_us = Some(tat);
            }
        }
        claim.held.extend(u.held(limit, now));
    }
    let unlimited: Vec<String> = request
        .identifiers
        .iter()
        .filter(|id| !ids.contains(id))
        .cloned()
        .collect();
    let left = request.limit.saturating_sub(claim.tasks.len());
    if left > 0 && !unlimited.is_empty() {
        claim.tasks.extend(tx.claim_some(&unlimited, &[], left)?);
    }
    claim
        .tasks
        .sort_by_key(|t| (-t.priority_rank, t.run_at, t.id));
    Ok(claim)
}

/// Claims one limited worker's tasks: rounds of its claim statement, each taking at most what
/// every cap still allows, so that priority order holds across its actions and no cap is
/// passed; ends when a round finds fewer tasks than it asked for or nothing is allowed.
fn claim_one(
    tx: &mut impl LimitedClaim,
    limit: &WorkerLimit,
    usage: &mut LimitUsage,
    now: i64,
    slots: &mut usize,
    out: &mut Vec<ClaimedTask>,
) -> StoreResult<()> {
    let mut rate_left = limit
        .rate
        .map_or(u64::MAX, |r| r.allowance(usage.rate_tat_us, now));
    let identifiers = std::slice::from_ref(&limit.identifier);
    loop {
        let cap_left = if limit.concurrency > 0 {
            limit.concurrency.saturating_sub(usage.leased)
        } else {
            u64::MAX
        };
        let mut ask = cap_left.min(rate_left).min(*slots as u64);
        let mut skip: Vec<String> = Vec::new();
        for (action, cap) in &limit.action_concurrency {
            let left = cap.saturating_sub(usage.leased_by_action.get(action).copied().unwrap_or(0));
            if left == 0 {
                skip.push(action.clone());
            } else {
                ask = ask.min(left);
            }
        }
        if ask == 0 {
            return Ok(());
        }
        let got = tx.claim_some(identifiers, &skip, ask as usize)?;
        let n = got.len() as u64;
        for task in &got {
            usage.leased += 1;
            *usage
                .leased_by_action
                .entry(task.action.clone())
                .or_insert(0) += 1;
        }
        rate_left = rate_left.saturating_sub(n);
        *slots -= got.len();
        out.extend(got);
        if n < ask {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_parse_in_three_units_and_refuse_the_rest() {
        let r: RateLimit = "100/s".parse().unwrap();
        assert_eq!(
            r,
            RateLimit {
                count: 100,
                per_ms: 1_000
            }
        );
        assert_eq!("600/min".parse::<RateLimit>().unwrap().per_ms, 60_000);
        assert_eq!(" 1000 / h ".parse::<RateLimit>().unwrap().per_ms, 3_600_000);
        assert_eq!("5/Sec".parse::<RateLimit>().unwrap().to_string(), "5/s");
        for bad in [
            "",
            "100",
            "0/s",
            "-1/s",
            "1.5/s",
            "100/d",
            "x/s",
            "1000001/s",
            "/s",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let r: RateLimit = "100/s".parse().unwrap(); // e = 10 ms, burst 10
        assert_eq!(r.interval_us(), 10_000);
        assert_eq!(r.allowance(None, 1_000), 10);
        let tat = r.advance(None, 1_000, 10);
        assert_eq!(r.allowance(Some(tat), 1_000), 0);
        assert_eq!(r.next_allowed_ms(Some(tat), 1_000), 1_010);
        assert_eq!(r.allowance(Some(tat), 1_009), 0);
        assert_eq!(r.allowance(Some(tat), 1_010), 1);
        assert_eq!(r.allowance(Some(tat), 1_030), 3);
        // Idle for long: back to one burst, never more.
        assert_eq!(r.allowance(Some(tat), 100_000), 10);
        let slow: RateLimit = "3/s".parse().unwrap(); // burst 1
        assert_eq!(slow.allowance(None, 0), 1);
        let tat = slow.advance(None, 0, 1);
        assert_eq!(slow.allowance(Some(tat), 333), 0);
        assert_eq!(slow.allowance(Some(tat), 334), 1);
    }

    #[test]
    fn limits_come_from_the_settings_the_host_reads() {
        assert_eq!(
            WorkerLimit::from_settings("w", &json!({"timeout": 3})),
            None
        );
        assert_eq!(
            WorkerLimit::from_settings("w", &json!({"concurrency": 0})),
            None
        );
        let l = WorkerLimit::from_settings(
            "w",
            &json!({"concurrency": 2, "action_concurrency": {"import": 1}, "rate_limit": "5/min"}),
        )
        .unwrap();
        assert_eq!(l.concurrency, 2);
        assert_eq!(l.action_concurrency.get("import"), Some(&1));
        assert_eq!(
            l.rate,
            Some(RateLimit {
                count: 5,
                per_ms: 60_000
            })
        );
    }

    #[test]
    fn usage_says_which_limit_holds() {
        let l = WorkerLimit::from_settings(
            "w",
            &json!({"concurrency": 2, "action_concurrency": {"a": 1}}),
        )
        .unwrap();
        let mut u = LimitUsage {
            identifier: "w".into(),
            leased: 1,
            leased_by_action: [("a".to_owned(), 1)].into(),
            rate_tat_us: None,
        };
        let held = u.held(&l, 0);
        assert_eq!(held.len(), 1);
        assert!(!held[0].whole_worker());
        u.leased = 2;
        assert!(u.held(&l, 0)[0].whole_worker());
    }
}

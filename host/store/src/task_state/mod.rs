//! The task state machine: the only place that decides a task's next status, its guard and
//! its message. The drivers execute what it decides; they never write a status code or a
//! message of their own.
//!
//! ```text
//!            create                claim (lease)       start (pool thread)
//!   ─────────────────► pending ───────────────► preparing ─────────────────► running
//!                        ▲ │  ◄──── give back ────── │                          │
//!        retry (backoff) │ │ cancel pending          │  heartbeat, request      │ progress,
//!        or lost lease   │ ▼                         │  cancel (flag only)      │ heartbeat,
//!                        │ cancelled                 │                          │ request cancel
//!                        │    ▲                      └────────────┬─────────────┘
//!                        │    └──── finish: cancelled ────────────┤ finish (after_run) /
//!                        └──── finish: retryable, attempts left ──┤ recover (after_lost_lease)
//!                              or host stopping; recover          │
//!                                     completed ◄── finish: completed
//!                                     failed    ◄── finish / recover: no attempts left,
//!                                                   permanent error
//!   release dependant: pending (waiting for its parents) ──► pending (due)
//!   cancel for parent: pending (waiting, a parent failed or was cancelled) ──► cancelled
//!   retry (user): failed | cancelled ──► pending (fresh attempts)
//!   delete (user, retention): completed | failed | cancelled ──► removed
//! ```
//!
//! [`RULES`] is this diagram as data: per [`Event`], the statuses it applies from, where it
//! goes and its message; [`transition`] answers for one `(status, event)` pair, and [`sql`]
//! turns the rules into statement fragments so that every driver applies the same guards.
//! A finish and a recovery go to a status decided from the run ([`after_run`],
//! [`after_lost_lease`]), which the driver writes as the [`Finish`] says.
//!
//! `attempts` counts runs that started (`preparing` → `running`, written before the plugin is
//! called), not claims: a task claimed ahead whose host died or stopped goes back to pending
//! without using one, and so does a run that stopped early because its host was stopping.
//! The store applies these decisions fenced by the run's lease token, so a run whose lease was
//! taken over can never overwrite the newer run's outcome.
//!
//! This module depends only on `model`, `clock` and the plugin protocol (not on the drivers
//! or the engine): it lives in the storage crate so that the drivers build their SQL from it,
//! and the engine uses it as `stask_store::task_state`.

mod decide;
pub mod sql;
mod table;

pub use decide::{
    after_lost_lease, after_run, created_message, parent_ended_message, paused_message,
    waiting_for_message, Backoff, ExpiredLease, Finish, RunEnd,
};
pub use table::{
    rule, transition, Event, Message, Outcome, Rule, To, CANCELLED_BEFORE_START, CANCEL_REQUESTED,
    FINISHED, LEASED, RETRYABLE, RETRY_REQUESTED, RULES, RUNNING, STARTED, STARTING,
    WAITING_FOR_PARENTS, WAITING_TO_RUN,
};

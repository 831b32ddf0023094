//! The state machine's decisions, as the engine has always named them. They live in
//! [`crate::task_state`] (beside the transition table, below the store); this path stays so
//! that code written against it keeps compiling.

pub use crate::task_state::{after_lost_lease, after_run, Backoff, RunEnd};

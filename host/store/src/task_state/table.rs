//! The transition table: for every [`Event`], the statuses it applies from (its guard), the
//! status it goes to and the message it writes. The drivers build their statements from it
//! (see [`super::sql`]); [`transition`] answers for one `(from, event)` pair.

use crate::model::TaskStatus;

/// Something that happens to a task, from its creation to its deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A client creates the task (there is no status before: no existing task can be created).
    Create,
    /// A host takes a due pending task and gets its lease.
    Claim,
    /// A host gives back a task it claimed ahead and did not start (prefetch give-back,
    /// stopping host).
    GiveBack,
    /// A pool thread starts the run: from here its attempt counts.
    Start,
    /// A running worker reports progress (a run whose start is not flushed yet is started by
    /// it).
    Progress,
    /// The lease holder renews its leases.
    Heartbeat,
    /// A user cancels a task that has not been claimed.
    CancelPending,
    /// A user cancels a claimed or running task: only its cancel flag is set; the run ends as
    /// cancelled by [`Event::Finish`].
    RequestCancel,
    /// A run ended: its outcome is decided by [`super::after_run`].
    Finish,
    /// A lease expired (its host died or hung): decided by [`super::after_lost_lease`].
    Recover,
    /// A user asks for a failed or cancelled task to run again, with fresh attempts.
    Retry,
    /// A user deletes a finished task, or retention deletes it.
    Delete,
    /// The last task a waiting dependant depends on finished (completed, or any end with
    /// `on_parent_failure = run`): it becomes due (`run_at` = its start time or now). Guarded
    /// by pending and still waiting (`waiting_parents` was above 0), so it applies once.
    ReleaseDependant,
    /// A task a waiting dependant depends on failed or was cancelled and the dependant has
    /// `on_parent_failure = cancel`: it is cancelled, with a message naming that task
    /// ([`super::parent_ended_message`]). Its own dependants then follow the same rule.
    CancelForParent,
}

impl Event {
    /// Every event, in the order of the table.
    pub const ALL: [Event; 14] = [
        Event::Create,
        Event::Claim,
        Event::GiveBack,
        Event::Start,
        Event::Progress,
        Event::Heartbeat,
        Event::CancelPending,
        Event::RequestCancel,
        Event::Finish,
        Event::Recover,
        Event::Retry,
        Event::Delete,
        Event::ReleaseDependant,
        Event::CancelForParent,
    ];
}

/// Where an event takes a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Always this status.
    Status(TaskStatus),
    /// The status does not change (a flag or the lease does).
    Same,
    /// One of these, chosen by a decision function from the run's outcome.
    OneOf(&'static [TaskStatus]),
    /// The row is deleted.
    Removed,
}

/// The status message an event writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Always this text.
    Fixed(&'static str),
    /// Composed by a decision function ([`super::after_run`], [`super::after_lost_lease`],
    /// [`super::created_message`]).
    Decided,
    /// The worker's latest progress message.
    FromWorker,
    /// The message does not change.
    Same,
    /// None: the row is gone.
    Gone,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The event.
    pub event: Event,
    /// The statuses it applies from (its guard); any other status refuses it.
    pub from: &'static [TaskStatus],
    /// Where it goes.
    pub to: To,
    /// What message it writes.
    pub message: Message,
}

impl Rule {
    /// Whether the event applies to a task in `status`.
    pub fn allows(&self, status: TaskStatus) -> bool {
        self.from.contains(&status)
    }

    /// The one status the event goes to, if it always goes to the same one.
    pub fn target(&self) -> Option<TaskStatus> {
        match self.to {
            To::Status(status) => Some(status),
            _ => None,
        }
    }

    /// The fixed message the event writes, if it always writes the same one.
    pub fn fixed_message(&self) -> Option<&'static str> {
        match self.message {
            Message::Fixed(text) => Some(text),
            _ => None,
        }
    }
}

/// Message of a new task that is due now, and of a claimed task given back.
pub const WAITING_TO_RUN: &str = "Waiting to run";
/// Message of a claimed task.
pub const STARTING: &str = "Starting";
/// Message of a started run until its worker reports progress.
pub const RUNNING: &str = "Running";
/// Message of a task cancelled while pending.
pub const CANCELLED_BEFORE_START: &str = "Cancelled before it started";
/// Message of a claimed or running task whose cancel flag a user set.
pub const CANCEL_REQUESTED: &str = "Cancel requested";
/// Message of a task a user asked to run again.
pub const RETRY_REQUESTED: &str = "Retry requested";
/// Message of a new task that waits for the tasks it depends on (the task view names them).
pub const WAITING_FOR_PARENTS: &str = "Waiting for the tasks it depends on";

/// Statuses that hold a lease (a host claimed them): the guard of every write of a run.
pub const LEASED: &[TaskStatus] = &[TaskStatus::Preparing, TaskStatus::Running];
/// The status of a run that started (its attempt counts); `preparing` has not.
pub const STARTED: &[TaskStatus] = &[TaskStatus::Running];
/// Statuses where nothing runs any more (until a retry); they have a `finished_at`.
pub const FINISHED: &[TaskStatus] = &[
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
];
/// Statuses a user may retry.
pub const RETRYABLE: &[TaskStatus] = &[TaskStatus::Failed, TaskStatus::Cancelled];

/// The table, one rule per event in [`Event::ALL`] order.
pub const RULES: [Rule; 14] = [
    Rule {
        event: Event::Create,
        from: &[],
        to: To::Status(TaskStatus::Pending),
        message: Message::Decided,
    },
    Rule {
        event: Event::Claim,
        from: &[TaskStatus::Pending],
        to: To::Status(TaskStatus::Preparing),
        message: Message::Fixed(STARTING),
    },
    Rule {
        event: Event::GiveBack,
        from: &[TaskStatus::Preparing],
        to: To::Status(TaskStatus::Pending),
        message: Message::Fixed(WAITING_TO_RUN),
    },
    Rule {
        event: Event::Start,
        from: &[TaskStatus::Preparing],
        to: To::Status(TaskStatus::Running),
        message: Message::Fixed(RUNNING),
    },
    Rule {
        event: Event::Progress,
        from: LEASED,
        to: To::Status(TaskStatus::Running),
        message: Message::FromWorker,
    },
    Rule {
        event: Event::Heartbeat,
        from: LEASED,
        to: To::Same,
        message: Message::Same,
    },
    Rule {
        event: Event::CancelPending,
        from: &[TaskStatus::Pending],
        to: To::Status(TaskStatus::Cancelled),
        message: Message::Fixed(CANCELLED_BEFORE_START),
    },
    Rule {
        event: Event::RequestCancel,
        from: LEASED,
        to: To::Same,
        message: Message::Fixed(CANCEL_REQUESTED),
    },
    Rule {
        event: Event::Finish,
        from: LEASED,
        to: To::OneOf(&[
            TaskStatus::Pending,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ]),
        message: Message::Decided,
    },
    Rule {
        event: Event::Recover,
        from: LEASED,
        to: To::OneOf(&[TaskStatus::Pending, TaskStatus::Failed]),
        message: Message::Decided,
    },
    Rule {
        event: Event::Retry,
        from: RETRYABLE,
        to: To::Status(TaskStatus::Pending),
        message: Message::Fixed(RETRY_REQUESTED),
    },
    Rule {
        event: Event::Delete,
        from: FINISHED,
        to: To::Removed,
        message: Message::Gone,
    },
    Rule {
        event: Event::ReleaseDependant,
        from: &[TaskStatus::Pending],
        to: To::Status(TaskStatus::Pending),
        message: Message::Decided,
    },
    Rule {
        event: Event::CancelForParent,
        from: &[TaskStatus::Pending],
        to: To::Status(TaskStatus::Cancelled),
        message: Message::Decided,
    },
];

/// The rule of an event.
pub fn rule(event: Event) -> &'static Rule {
    // `RULES` is in `Event::ALL` order (checked by a test), so the discriminant indexes it.
    &RULES[event as usize]
}

/// What an event does to a task in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The guard holds: the task goes `to`, with `message`.
    Allowed {
        /// Where it goes.
        to: To,
        /// What message it writes.
        message: Message,
    },
    /// The guard does not hold: nothing changes.
    Refused,
}

/// What `event` does to a task in status `from`.
pub fn transition(from: TaskStatus, event: Event) -> Outcome {
    let rule = rule(event);
    if rule.allows(from) {
        Outcome::Allowed {
            to: rule.to,
            message: rule.message,
        }
    } else {
        Outcome::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::{Cancelled, Completed, Failed, Pending, Preparing, Running};

    #[test]
    fn rules_are_in_event_order() {
        for (i, event) in Event::ALL.into_iter().enumerate() {
            assert_eq!(RULES[i].event, event);
            assert_eq!(rule(event).event, event);
        }
    }

    /// Every (from, event) pair, to be read against the diagram in the module doc.
    #[test]
    fn every_status_and_event_has_the_outcome_of_the_diagram() {
        use Message::{Decided, FromWorker, Gone, Same as Kept};
        use To::{OneOf, Removed, Same, Status};
        let ok = |to, message| Outcome::Allowed { to, message };
        let no = Outcome::Refused;
        let run_end = OneOf(&[Pending, Completed, Failed, Cancelled]);
        let lost = OneOf(&[Pending, Failed]);
        let fixed = Message::Fixed;
        #[rustfmt::skip]
        let table: [(Event, [Outcome; 6]); 14] = [
            //                     pending                               preparing                               running                                 completed                 failed                                 cancelled
            (Event::Create,        [no,                                  no,                                     no,                                     no,                       no,                                    no]),
            (Event::Claim,         [ok(Status(Preparing), fixed(STARTING)), no,                                  no,                                     no,                       no,                                    no]),
            (Event::GiveBack,      [no,                                  ok(Status(Pending), fixed(WAITING_TO_RUN)), no,                                 no,                       no,                                    no]),
            (Event::Start,         [no,                                  ok(Status(Running), fixed(RUNNING)),    no,                                     no,                       no,                                    no]),
            (Event::Progress,      [no,                                  ok(Status(Running), FromWorker),        ok(Status(Running), FromWorker),        no,                       no,                                    no]),
            (Event::Heartbeat,     [no,                                  ok(Same, Kept),                         ok(Same, Kept),                         no,                       no,                                    no]),
            (Event::CancelPending, [ok(Status(Cancelled), fixed(CANCELLED_BEFORE_START)), no,                    no,                                     no,                       no,                                    no]),
            (Event::RequestCancel, [no,                                  ok(Same, fixed(CANCEL_REQUESTED)),      ok(Same, fixed(CANCEL_REQUESTED)),      no,                       no,                                    no]),
            (Event::Finish,        [no,                                  ok(run_end, Decided),                   ok(run_end, Decided),                   no,                       no,                                    no]),
            (Event::Recover,       [no,                                  ok(lost, Decided),                      ok(lost, Decided),                      no,                       no,                                    no]),
            (Event::Retry,         [no,                                  no,                                     no,                                     no,                       ok(Status(Pending), fixed(RETRY_REQUESTED)), ok(Status(Pending), fixed(RETRY_REQUESTED))]),
            (Event::Delete,        [no,                                  no,                                     no,                                     ok(Removed, Gone),        ok(Removed, Gone),                     ok(Removed, Gone)]),
            (Event::ReleaseDependant, [ok(Status(Pending), Decided),     no,                                     no,                                     no,                       no,                                    no]),
            (Event::CancelForParent, [ok(Status(Cancelled), Decided),    no,                                     no,                                     no,                       no,                                    no]),
        ];
        for (event, outcomes) in table {
            for (from, expected) in TaskStatus::ALL.into_iter().zip(outcomes) {
                assert_eq!(transition(from, event), expected, "{event:?} from {from}");
            }
        }
    }

    #[test]
    fn the_messages_users_see_are_unchanged() {
        // Shown in the API and UI and matched by scripts: a change here is visible to users.
        assert_eq!(
            [
                WAITING_TO_RUN,
                STARTING,
                RUNNING,
                CANCELLED_BEFORE_START,
                CANCEL_REQUESTED,
                RETRY_REQUESTED,
                WAITING_FOR_PARENTS,
            ],
            [
                "Waiting to run",
                "Starting",
                "Running",
                "Cancelled before it started",
                "Cancel requested",
                "Retry requested",
                "Waiting for the tasks it depends on",
            ]
        );
    }

    #[test]
    fn the_status_sets_agree_with_the_model() {
        for status in TaskStatus::ALL {
            assert_eq!(FINISHED.contains(&status), status.is_finished(), "{status}");
        }
    }
}

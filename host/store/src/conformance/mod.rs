//! The behaviour every storage driver must show, written once and split by area as River's
//! `riverdrivertest` is. `driver_tests!(open, reopenable)` expands to one `#[test]` per
//! property for a driver, in one module per area (`…::tests::claims::claim_respects_the_limit`).
//!
//! Every public method of the store traits ([`Store`], [`crate::TaskStore`],
//! [`crate::WorkerStore`], [`crate::TokenStore`],
//! [`crate::AnalyticsStore`], [`crate::HostStore`], [`crate::ScheduleStore`],
//! [`crate::DependencyStore`], [`crate::AuditStore`]) has at least one property
//! here: [`COVERED`] names it, and the test `every_store_method_has_a_property` fails when a
//! trait gains a method without a row. Where the drivers legitimately differ (one host per
//! SQLite database, several on PostgreSQL), the property states each driver's documented
//! contract, told apart by [`crate::HostStore::shared_by_hosts`].

pub mod analytics;
pub mod audit;
pub mod batches;
pub mod claims;
pub mod cleanup;
pub mod dependencies;
pub mod hosts;
pub mod lifecycle;
pub mod limits;
pub mod pause;
pub mod schedules;
pub mod sessions;
pub mod tasks;
pub mod tokens;
pub mod unique;
pub mod workers;

pub use analytics::{record, Run};

use crate::model::{NewTask, Priority, TaskStatus, DEFAULT_MAX_ATTEMPTS};
use crate::{ClaimRequest, ClaimedTask, Finish, Store};
use serde_json::json;
use std::sync::Arc;

/// Gives the store the next process opens on the same database as the store it consumes
/// (dropping it first: for SQLite, as a `kill -9` would, without any flush).
pub type Reopen = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store>>;

/// A plain new task.
pub fn task(identifier: &str, priority: Priority, start_at: Option<i64>) -> NewTask {
    NewTask {
        identifier: identifier.into(),
        action: "run".into(),
        data: json!({"n": 1}),
        priority,
        start_at,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        started_by: None,
        token_id: None,
        unique_key: None,
        unique_for_secs: None,
        parent_id: None,
        depends_on: Vec::new(),
        on_parent_failure: Default::default(),
    }
}

/// Claims up to `limit` due tasks of worker `w` for `owner` (leases of 1 s from `now`).
pub fn claim(store: &dyn Store, owner: &str, limit: usize, now: i64) -> Vec<ClaimedTask> {
    store
        .claim(&ClaimRequest {
            owner,
            limit,
            now,
            lease_ms: 1_000,
            identifiers: &["w".to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks
}

/// A finish of the first attempt with `status`, a result `r` and full progress.
pub fn finish(id: i64, lease_token: i64, status: TaskStatus, at: i64) -> Finish {
    Finish {
        id,
        lease_token,
        status,
        message: status.name().into(),
        result: Some("r".into()),
        result_file: None,
        run_at: None,
        last_error: None,
        duration_ms: Some(1),
        started_at: None,
        cpu_ms: None,
        memory_bytes: None,
        progress: Some(100),
        processed: None,
        total: None,
        worker_version: Some("v".into()),
        at,
        // The first attempt: most properties claim once; the others set it.
        attempts: 1,
        if_started: None,
    }
}

/// Which property shows each public method of the store traits: `(trait::method, property)`.
/// A method may have several rows; every method needs one (checked by
/// `every_store_method_has_a_property`).
pub const COVERED: &[(&str, &str)] = &[
    // Store
    (
        "Store::execute_foreign",
        "a_row_written_with_only_the_original_columns_is_claimed",
    ),
    (
        "Store::time_literal",
        "a_row_written_with_only_the_original_columns_is_claimed",
    ),
    // TaskStore
    (
        "TaskStore::insert_task",
        "inserted_tasks_read_back_as_created",
    ),
    (
        "TaskStore::insert_tasks",
        "inserted_tasks_read_back_as_created",
    ),
    (
        "TaskStore::insert_tasks",
        "a_key_is_held_until_its_task_finishes",
    ),
    (
        "TaskStore::insert_tasks",
        "unique_for_holds_after_the_finish_until_it_expires",
    ),
    (
        "TaskStore::insert_tasks",
        "the_second_create_of_a_key_in_one_batch_is_the_duplicate",
    ),
    ("TaskStore::claim", "claims_in_priority_then_due_order"),
    ("TaskStore::claim", "claim_respects_the_limit"),
    (
        "TaskStore::claim",
        "a_concurrency_cap_holds_for_one_claimer",
    ),
    ("TaskStore::claim", "a_cap_holds_for_two_racing_claimers"),
    (
        "TaskStore::claim",
        "unlimited_tasks_behind_a_capped_workers_are_claimed_in_the_same_call",
    ),
    ("TaskStore::claim", "per_action_caps_hold"),
    (
        "TaskStore::claim",
        "a_rate_allows_a_burst_then_one_per_interval",
    ),
    ("TaskStore::claim", "limited_tasks_are_not_claimed_ahead"),
    ("TaskStore::limit_usage", "limit_usage_counts_leased_tasks"),
    ("TaskStore::limit_usage", "per_action_caps_hold"),
    (
        "TaskStore::release",
        "released_tasks_are_pending_again_without_an_attempt",
    ),
    (
        "TaskStore::start_runs",
        "only_started_runs_count_as_attempts",
    ),
    ("TaskStore::start_runs", "a_start_survives_the_process"),
    (
        "TaskStore::flush_starts",
        "a_stale_run_cannot_overwrite_a_newer_one",
    ),
    (
        "TaskStore::write_progress",
        "progress_is_written_only_under_the_current_lease",
    ),
    (
        "TaskStore::append_logs",
        "logs_are_the_latest_lines_oldest_first",
    ),
    (
        "TaskStore::finish",
        "a_stale_run_cannot_overwrite_a_newer_one",
    ),
    (
        "TaskStore::heartbeat",
        "heartbeats_extend_leases_and_carry_cancels",
    ),
    (
        "TaskStore::expired_leases",
        "expired_leases_name_their_owner_and_attempts",
    ),
    (
        "TaskStore::next_due",
        "next_due_is_the_earliest_future_pending_task",
    ),
    ("TaskStore::cancel", "cancel_and_retry"),
    ("TaskStore::retry", "cancel_and_retry"),
    ("TaskStore::delete_task", "only_finished_tasks_are_deleted"),
    ("TaskStore::task", "inserted_tasks_read_back_as_created"),
    ("TaskStore::tasks", "task_lists_filter_page_and_count"),
    ("TaskStore::pending_tasks", "pending_tasks_in_claim_order"),
    (
        "TaskStore::task_logs",
        "logs_are_the_latest_lines_oldest_first",
    ),
    ("TaskStore::stats", "stats_count_every_status"),
    (
        "TaskStore::delete_finished_before",
        "clean_deletes_only_old_finished_tasks",
    ),
    (
        "TaskStore::delete_finished_before",
        "retention_deletes_the_logs_of_deleted_tasks",
    ),
    (
        "TaskStore::delete_finished_before",
        "retention_drops_the_keys_of_deleted_tasks",
    ),
    (
        "TaskStore::external_change_counter",
        "external_change_counter_follows_the_driver_contract",
    ),
    // WorkerStore
    (
        "WorkerStore::upsert_worker",
        "registration_keeps_the_operators_choices",
    ),
    (
        "WorkerStore::set_worker_state",
        "worker_state_and_load_error",
    ),
    (
        "WorkerStore::workers",
        "workers_filter_by_scope_and_active_in_position_order",
    ),
    (
        "WorkerStore::worker",
        "workers_filter_by_scope_and_active_in_position_order",
    ),
    (
        "WorkerStore::set_worker_active",
        "activation_and_settings_change_known_workers_only",
    ),
    (
        "WorkerStore::set_worker_paused",
        "a_paused_workers_tasks_are_skipped_not_waited_on",
    ),
    (
        "WorkerStore::set_worker_paused",
        "a_pause_survives_the_process",
    ),
    (
        "WorkerStore::set_worker_settings",
        "activation_and_settings_change_known_workers_only",
    ),
    (
        "WorkerStore::delete_orphaned_workers",
        "only_orphaned_workers_are_deleted",
    ),
    (
        "WorkerStore::record_plugin_file",
        "plugin_files_keep_the_latest_load_per_file",
    ),
    (
        "WorkerStore::plugin_files",
        "plugin_files_keep_the_latest_load_per_file",
    ),
    // TokenStore
    ("TokenStore::insert_token", "tokens_are_stored_and_listed"),
    ("TokenStore::insert_token", "a_live_token_name_is_unique"),
    ("TokenStore::tokens", "tokens_are_stored_and_listed"),
    (
        "TokenStore::revoke_token",
        "tokens_are_revoked_by_name_or_id",
    ),
    (
        "TokenStore::live_tokens_with_prefix",
        "revoked_tokens_are_not_live",
    ),
    (
        "TokenStore::touch_token",
        "touching_a_token_records_its_last_use",
    ),
    (
        "TokenStore::insert_session",
        "sessions_live_until_expiry_or_revocation",
    ),
    (
        "TokenStore::session",
        "sessions_live_until_expiry_or_revocation",
    ),
    (
        "TokenStore::delete_session",
        "deleting_a_session_drops_the_expired_ones",
    ),
    // AnalyticsStore
    ("AnalyticsStore::window_summary", "window_summary_figures"),
    (
        "AnalyticsStore::window_summary",
        "window_summary_of_an_empty_window",
    ),
    (
        "AnalyticsStore::worker_summaries",
        "worker_summaries_per_identifier",
    ),
    (
        "AnalyticsStore::oldest_due_pending",
        "oldest_due_pending_task",
    ),
    (
        "AnalyticsStore::stuck_tasks",
        "stuck_tasks_are_expired_leases",
    ),
    (
        "AnalyticsStore::pending_counts",
        "pending_counts_per_identifier",
    ),
    (
        "AnalyticsStore::finished_per_bucket",
        "finished_per_bucket_counts_completed_and_failed",
    ),
    // HostStore
    (
        "HostStore::shared_by_hosts",
        "a_stale_run_cannot_overwrite_a_newer_one",
    ),
    (
        "HostStore::shared_by_hosts",
        "listening_hosts_hear_new_work_and_events",
    ),
    ("HostStore::upsert_host", "hosts_register_refresh_and_stop"),
    ("HostStore::host_stopped", "hosts_register_refresh_and_stop"),
    ("HostStore::hosts", "hosts_register_refresh_and_stop"),
    ("TaskStore::leases_of", "recovery_never_takes_a_live_lease"),
    ("HostStore::recover", "recovery_never_takes_a_live_lease"),
    (
        "HostStore::database_clock_ms",
        "a_shared_database_keeps_the_clock",
    ),
    (
        "HostStore::on_new_work",
        "listening_hosts_hear_new_work_and_events",
    ),
    (
        "HostStore::send_events",
        "listening_hosts_hear_new_work_and_events",
    ),
    (
        "HostStore::on_events",
        "listening_hosts_hear_new_work_and_events",
    ),
    // ScheduleStore
    (
        "ScheduleStore::insert_schedule",
        "schedules_are_stored_listed_updated_and_deleted",
    ),
    (
        "ScheduleStore::upsert_schedule",
        "upsert_by_name_keeps_id_and_run_times",
    ),
    (
        "ScheduleStore::update_schedule",
        "schedules_are_stored_listed_updated_and_deleted",
    ),
    (
        "ScheduleStore::update_schedule",
        "enabling_again_moves_fire_after",
    ),
    (
        "ScheduleStore::set_schedule_enabled",
        "enabling_again_moves_fire_after",
    ),
    (
        "ScheduleStore::delete_schedule",
        "schedules_are_stored_listed_updated_and_deleted",
    ),
    (
        "ScheduleStore::schedule",
        "schedules_are_stored_listed_updated_and_deleted",
    ),
    (
        "ScheduleStore::schedules",
        "schedules_are_stored_listed_updated_and_deleted",
    ),
    ("ScheduleStore::take_slot", "a_slot_creates_one_task"),
    (
        "ScheduleStore::take_slot",
        "a_slot_is_taken_once_under_two_concurrent_takers",
    ),
    // DependencyStore
    (
        "DependencyStore::missing_tasks",
        "unknown_parents_are_named",
    ),
    (
        "DependencyStore::resolve_dependencies",
        "a_dependant_runs_after_all_its_parents_completed",
    ),
    (
        "DependencyStore::resolve_dependencies",
        "a_failed_or_cancelled_parent_cancels_its_dependants_in_cascade",
    ),
    (
        "DependencyStore::resolve_dependencies",
        "run_anyway_runs_once_every_parent_finished",
    ),
    (
        "DependencyStore::resolve_dependencies",
        "resolution_is_idempotent_and_finished_parents_count_at_once",
    ),
    (
        "DependencyStore::resolve_dependencies",
        "concurrent_resolutions_release_a_dependant_once",
    ),
    (
        "DependencyStore::sweep_dependencies",
        "the_sweep_resolves_what_a_kill_left",
    ),
    (
        "DependencyStore::task_dependencies",
        "a_dependant_runs_after_all_its_parents_completed",
    ),
    (
        "TaskStore::next_due",
        "a_waiting_task_is_not_claimed_and_not_next_due",
    ),
    // AuditStore
    (
        "AuditStore::insert_audit",
        "audit_entries_are_stored_filtered_and_paged_newest_first",
    ),
    (
        "AuditStore::audit_entries",
        "audit_entries_are_stored_filtered_and_paged_newest_first",
    ),
    (
        "AuditStore::delete_audit_before",
        "old_audit_entries_are_deleted",
    ),
    (
        "TokenStore::restrict_token",
        "a_token_restricted_to_workers_keeps_its_list",
    ),
    // BatchStore
    (
        "BatchStore::insert_batch",
        "a_batch_is_created_whole_and_counted",
    ),
    (
        "BatchStore::insert_batch",
        "on_complete_runs_once_after_every_task_with_the_counts",
    ),
    (
        "BatchStore::insert_batch",
        "the_sweep_releases_on_complete_with_its_figures_once",
    ),
    ("BatchStore::batch", "a_batch_is_created_whole_and_counted"),
    (
        "BatchStore::batches",
        "a_batch_is_created_whole_and_counted",
    ),
    (
        "BatchStore::cancel_batch",
        "cancelling_a_batch_cancels_pending_and_flags_leased",
    ),
    // Store
    ("Store::migrate", "migrations_apply_once"),
    (
        "Store::describe",
        "describe_names_the_backend_without_secrets",
    ),
    (
        "Store::storage_fault",
        "a_healthy_store_reports_no_storage_fault",
    ),
    ("Store::close", "close_keeps_every_stored_write"),
];

/// Expands to one test per property for a driver: `driver_tests!(open, reopenable)`, where
/// `open` and `reopenable` are functions of the calling module. `open()` gives a fresh,
/// migrated `Arc<dyn Store>`; `reopenable()` gives one with the [`Reopen`] that opens the next
/// process's store on the same database.
#[macro_export]
macro_rules! driver_tests {
    ($open:ident, $reopenable:ident) => {
        $crate::driver_tests!(@area $open, $reopenable; tasks: [
            inserted_tasks_read_back_as_created,
            task_lists_filter_page_and_count,
            started_by_and_token_id_are_stored_apart_and_filtered,
            parent_id_round_trips_and_filters_follow_ups,
            pending_tasks_in_claim_order,
            next_due_is_the_earliest_future_pending_task,
            progress_is_written_only_under_the_current_lease,
            logs_are_the_latest_lines_oldest_first,
            stats_count_every_status,
            only_finished_tasks_are_deleted,
            external_change_counter_follows_the_driver_contract,
            cancel_and_retry,
            text_with_nul_is_stored,
            a_row_written_with_only_the_original_columns_is_claimed,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; claims: [
            claims_in_priority_then_due_order,
            claim_respects_the_limit,
            a_stale_run_cannot_overwrite_a_newer_one,
            released_tasks_are_pending_again_without_an_attempt,
            only_started_runs_count_as_attempts,
            heartbeats_extend_leases_and_carry_cancels,
            expired_leases_name_their_owner_and_attempts,
        ] reopened: [a_start_survives_the_process]);
        $crate::driver_tests!(@area $open, $reopenable; workers: [
            registration_keeps_the_operators_choices,
            worker_state_and_load_error,
            workers_filter_by_scope_and_active_in_position_order,
            activation_and_settings_change_known_workers_only,
            only_orphaned_workers_are_deleted,
            plugin_files_keep_the_latest_load_per_file,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; pause: [
            a_paused_workers_tasks_are_skipped_not_waited_on,
        ] reopened: [a_pause_survives_the_process]);
        $crate::driver_tests!(@area $open, $reopenable; limits: [
            a_concurrency_cap_holds_for_one_claimer,
            a_cap_holds_for_two_racing_claimers,
            unlimited_tasks_behind_a_capped_workers_are_claimed_in_the_same_call,
            per_action_caps_hold,
            a_rate_allows_a_burst_then_one_per_interval,
            limited_tasks_are_not_claimed_ahead,
            limit_usage_counts_leased_tasks,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; unique: [
            a_key_is_held_until_its_task_finishes,
            unique_for_holds_after_the_finish_until_it_expires,
            the_second_create_of_a_key_in_one_batch_is_the_duplicate,
            retention_drops_the_keys_of_deleted_tasks,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; tokens: [
            tokens_are_stored_and_listed,
            a_live_token_name_is_unique,
            tokens_are_revoked_by_name_or_id,
            revoked_tokens_are_not_live,
            touching_a_token_records_its_last_use,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; sessions: [
            sessions_live_until_expiry_or_revocation,
            deleting_a_session_drops_the_expired_ones,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; hosts: [
            recovery_never_takes_a_live_lease,
            hosts_register_refresh_and_stop,
            a_shared_database_keeps_the_clock,
            listening_hosts_hear_new_work_and_events,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; analytics: [
            window_summary_figures,
            window_summary_of_an_empty_window,
            common_errors_keep_the_five_most_frequent,
            worker_summaries_per_identifier,
            percentiles_are_nearest_ranks,
            oldest_due_pending_task,
            stuck_tasks_are_expired_leases,
            pending_counts_per_identifier,
            finished_per_bucket_counts_completed_and_failed,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; cleanup: [
            clean_deletes_only_old_finished_tasks,
            retention_deletes_the_logs_of_deleted_tasks,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; schedules: [
            schedules_are_stored_listed_updated_and_deleted,
            enabling_again_moves_fire_after,
            upsert_by_name_keeps_id_and_run_times,
            a_slot_creates_one_task,
            a_slot_is_taken_once_under_two_concurrent_takers,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; dependencies: [
            a_dependant_runs_after_all_its_parents_completed,
            a_failed_or_cancelled_parent_cancels_its_dependants_in_cascade,
            run_anyway_runs_once_every_parent_finished,
            unknown_parents_are_named,
            resolution_is_idempotent_and_finished_parents_count_at_once,
            a_waiting_task_is_not_claimed_and_not_next_due,
            the_sweep_resolves_what_a_kill_left,
            concurrent_resolutions_release_a_dependant_once,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; audit: [
            audit_entries_are_stored_filtered_and_paged_newest_first,
            old_audit_entries_are_deleted,
            a_token_restricted_to_workers_keeps_its_list,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; batches: [
            a_batch_is_created_whole_and_counted,
            on_complete_runs_once_after_every_task_with_the_counts,
            cancelling_a_batch_cancels_pending_and_flags_leased,
            the_sweep_releases_on_complete_with_its_figures_once,
        ] reopened: []);
        $crate::driver_tests!(@area $open, $reopenable; lifecycle: [
            migrations_apply_once,
            describe_names_the_backend_without_secrets,
            a_healthy_store_reports_no_storage_fault,
        ] reopened: [close_keeps_every_stored_write]);
    };
    (@area $open:ident, $reopenable:ident; $area:ident: [$($property:ident),* $(,)?]
        reopened: [$($reopened:ident),* $(,)?]) => {
        mod $area {
            $(
                #[test]
                fn $property() {
                    $crate::conformance::$area::$property(&*super::$open());
                }
            )*
            $(
                #[test]
                fn $reopened() {
                    let (store, reopen) = super::$reopenable();
                    $crate::conformance::$area::$reopened(store, reopen);
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::COVERED;

    /// The methods of `pub trait Name: …` in `source`: every line starting with `fn name`
    /// between the trait's opening line and its closing `}` at the start of a line.
    fn trait_methods(source: &str, name: &str) -> Vec<String> {
        let opening = format!("pub trait {name}:");
        let start = source
            .find(&opening)
            .unwrap_or_else(|| panic!("trait {name} not found"));
        let body = &source[start..];
        let end = body.find("\n}").expect("the trait's closing brace");
        body[..end]
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("fn "))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect()
    }

    /// Every method of every store trait has a row in [`COVERED`], and every property a row
    /// names is one `driver_tests!` runs and an area module defines.
    #[test]
    fn every_store_method_has_a_property() {
        let traits = [
            (include_str!("../lib.rs"), "TaskStore"),
            (include_str!("../lib.rs"), "WorkerStore"),
            (include_str!("../lib.rs"), "TokenStore"),
            (include_str!("../lib.rs"), "Store"),
            (include_str!("../analytics.rs"), "AnalyticsStore"),
            (include_str!("../cluster.rs"), "HostStore"),
            (include_str!("../schedules.rs"), "ScheduleStore"),
            (include_str!("../dependencies.rs"), "DependencyStore"),
            (include_str!("../audit.rs"), "AuditStore"),
            (include_str!("../batches.rs"), "BatchStore"),
        ];
        let mut missing = Vec::new();
        for (source, name) in traits {
            let methods = trait_methods(source, name);
            assert!(!methods.is_empty(), "no methods found in {name}");
            for method in methods {
                let key = format!("{name}::{method}");
                if !COVERED.iter().any(|(m, _)| *m == key) {
                    missing.push(key);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "methods without a property: {missing:?}"
        );

        let macro_text = include_str!("mod.rs");
        let areas = [
            include_str!("tasks.rs"),
            include_str!("claims.rs"),
            include_str!("workers.rs"),
            include_str!("tokens.rs"),
            include_str!("sessions.rs"),
            include_str!("hosts.rs"),
            include_str!("analytics.rs"),
            include_str!("cleanup.rs"),
            include_str!("lifecycle.rs"),
            include_str!("pause.rs"),
            include_str!("limits.rs"),
            include_str!("unique.rs"),
            include_str!("schedules.rs"),
            include_str!("dependencies.rs"),
            include_str!("audit.rs"),
            include_str!("batches.rs"),
        ];
        for (method, property) in COVERED {
            assert!(
                areas
                    .iter()
                    .any(|a| a.contains(&format!("pub fn {property}("))),
                "{method}: no area defines the property {property}"
            );
            assert!(
                macro_text.contains(&format!("            {property},"))
                    || macro_text.contains(&format!("reopened: [{property}]")),
                "{method}: driver_tests! does not run {property}"
            );
        }
    }
}

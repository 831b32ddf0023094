//! The worker-row cache's statistics: the counters the registry bumps on every lookup, and
//! the snapshot (with a memory estimate) the performance API reports.

use serde::Serialize;
use stask_store::model::WorkerRow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the worker-row cache, as seen by [`super::Registry::row`] (the lookup of every run).
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Lookups answered from memory.
    pub hits: AtomicU64,
    /// Lookups not answered from memory: a loaded worker's row is then read from the store
    /// and cached; any other identifier has no row to serve.
    pub misses: AtomicU64,
    /// Entries dropped by [`super::Registry::clear_cache`].
    pub evictions: AtomicU64,
}

/// A snapshot of the worker-row cache for the performance API.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// Lookups answered from memory since start.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// Entries dropped on request since start.
    pub evictions: u64,
    /// hits / (hits + misses) × 100, two decimals; 0 before any lookup.
    pub hit_rate: f64,
    /// Rows cached now.
    pub cache_size: usize,
    /// Estimated bytes held by the cached rows: per entry, `size_of::<WorkerRow>()` plus the
    /// bytes of its string fields (the map key included) and of its JSON fields serialized.
    /// A lower bound: allocator slack and the parsed JSON trees' own overhead are not counted.
    pub memory_usage: u64,
}

/// Counts the bytes written to it (serialized JSON lengths, without allocating).
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_bytes(value: &serde_json::Value) -> u64 {
    let mut count = ByteCount(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The [`CacheStats::memory_usage`] estimate of one entry.
fn entry_bytes(key: &str, row: &WorkerRow) -> u64 {
    let strings = [
        key,
        &row.uuid,
        &row.identifier,
        &row.scope,
        &row.class,
        &row.title,
        &row.description,
    ];
    let optional = [&row.load_error, &row.file, &row.file_sha256, &row.version];
    let text: usize = strings.iter().map(|s| s.len()).sum::<usize>()
        + optional
            .iter()
            .filter_map(|s| s.as_deref())
            .map(str::len)
            .sum::<usize>();
    let json: u64 = [&row.settings, &row.actions, &row.default_settings]
        .into_iter()
        .map(json_bytes)
        .sum();
    (std::mem::size_of::<WorkerRow>() + text) as u64 + json
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl CacheCounters {
    /// The counters now, with the size and estimated memory of `rows` (the cached rows by
    /// identifier).
    pub fn snapshot(&self, rows: &HashMap<String, WorkerRow>) -> CacheStats {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let lookups = hits + misses;
        CacheStats {
            hits,
            misses,
            evictions: self.evictions.load(Ordering::Relaxed),
            hit_rate: if lookups == 0 {
                0.0
            } else {
                round2(hits as f64 * 100.0 / lookups as f64)
            },
            cache_size: rows.len(),
            memory_usage: rows.iter().map(|(k, r)| entry_bytes(k, r)).sum(),
        }
    }
}

//! The host's ready queue: tasks claimed from the store, waiting for a pool thread, always
//! handed out highest priority first, then by due time, then id. Because the order is kept here
//! too, claiming ahead (prefetch) never lets a prefetched low task overtake a high one that
//! this host claims later.

use crate::store::ClaimedTask;
use parking_lot::{Condvar, Mutex};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Ready(ClaimedTask);

impl Ready {
    fn key(&self) -> (i64, i64, i64) {
        // Max-heap: higher rank first, then earlier run_at, then lower id.
        (self.0.priority_rank, -self.0.run_at, -self.0.id)
    }
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Ready>,
    closed: bool,
}

/// Claimed tasks waiting for a pool thread.
#[derive(Default)]
pub struct ReadyQueue {
    state: Mutex<State>,
    available: Condvar,
}

impl ReadyQueue {
    /// Adds claimed tasks.
    pub fn push_all(&self, tasks: Vec<ClaimedTask>) {
        let n = tasks.len();
        let mut state = self.state.lock();
        state.heap.extend(tasks.into_iter().map(Ready));
        drop(state);
        for _ in 0..n {
            self.available.notify_one();
        }
    }

    /// The next task, waiting for one; `None` once closed (tasks left are for [`Self::drain`]).
    pub fn pop(&self) -> Option<ClaimedTask> {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(Ready(task)) = state.heap.pop() {
                return Some(task);
            }
            self.available.wait(&mut state);
        }
    }

    /// Stops handing out tasks and wakes every waiting pool thread.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.available.notify_all();
    }

    /// Takes the waiting tasks that `give_back` selects, leaving the others in their order.
    pub fn take_where(&self, mut give_back: impl FnMut(&ClaimedTask) -> bool) -> Vec<ClaimedTask> {
        let mut state = self.state.lock();
        let (taken, kept): (Vec<Ready>, Vec<Ready>) = std::mem::take(&mut state.heap)
            .into_iter()
            .partition(|r| give_back(&r.0));
        state.heap = kept.into();
        taken.into_iter().map(|r| r.0).collect()
    }

    /// How many tasks are waiting.
    pub fn waiting(&self) -> usize {
        self.state.lock().heap.len()
    }

    /// The ids of the tasks waiting.
    pub fn ids(&self) -> Vec<i64> {
        self.state.lock().heap.iter().map(|r| r.0.id).collect()
    }

    /// Takes every task still waiting (at shutdown, to give them back).
    pub fn drain(&self) -> Vec<ClaimedTask> {
        let mut state = self.state.lock();
        std::mem::take(&mut state.heap)
            .into_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: i64, rank: i64, run_at: i64) -> ClaimedTask {
        ClaimedTask {
            id,
            identifier: "w".into(),
            action: "a".into(),
            meta: "{}".into(),
            attempt: 1,
            max_attempts: 3,
            lease_token: 1,
            run_at,
            priority_rank: rank,
        }
    }

    #[test]
    fn hands_out_by_priority_then_due_time_then_id_across_claims() {
        let q = ReadyQueue::default();
        q.push_all(vec![task(1, 0, 10), task(2, 1, 10)]);
        q.push_all(vec![task(3, 2, 50), task(4, 1, 5), task(5, 1, 5)]);
        let order: Vec<i64> = (0..5).map(|_| q.pop().unwrap().id).collect();
        assert_eq!(order, vec![3, 4, 5, 2, 1]);
    }

    #[test]
    fn take_where_keeps_the_order_of_the_rest() {
        let q = ReadyQueue::default();
        let mut other = task(2, 2, 10);
        other.identifier = "off".into();
        q.push_all(vec![task(1, 0, 10), other, task(3, 1, 10), task(4, 2, 20)]);
        let taken = q.take_where(|t| t.identifier == "off");
        assert_eq!(taken.iter().map(|t| t.id).collect::<Vec<_>>(), vec![2]);
        let order: Vec<i64> = (0..3).map(|_| q.pop().unwrap().id).collect();
        assert_eq!(order, vec![4, 3, 1]);
    }

    #[test]
    fn close_wakes_waiters_and_leaves_tasks_to_drain() {
        let q = std::sync::Arc::new(ReadyQueue::default());
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.pop())
        };
        q.close();
        assert!(waiter.join().unwrap().is_none());
        q.push_all(vec![task(9, 1, 0)]);
        assert!(q.pop().is_none());
        assert_eq!(q.drain().len(), 1);
    }
}

//! The server's timers: one min-heap of (deadline, slot) for every connection, checked
//! once per turn of the event loop — no thread and no allocation per timer.
//!
//! Entries are never removed early: when one comes due, the server looks at the
//! connection's own deadlines and does whatever is due now, so a stale entry (the
//! deadline moved, or the connection ended) costs one harmless check.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    /// Wakes the loop for `slot` at `at`.
    pub(super) fn schedule(&mut self, at: Instant, slot: usize) {
        self.heap.push(Reverse((at, slot)));
    }

    /// The earliest deadline, if any.
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the slots whose deadlines have passed.
    pub(super) fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut slots = Vec::new();
        while let Some(Reverse((at, slot))) = self.heap.peek() {
            if *at > now {
                break;
            }
            slots.push(*slot);
            self.heap.pop();
        }
        slots.sort_unstable();
        slots.dedup();
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_returns_each_passed_slot_once_in_order_of_slot() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(now + Duration::from_secs(5), 1);
        timers.schedule(now, 3);
        timers.schedule(now - Duration::from_secs(1), 3);
        timers.schedule(now, 2);
        assert_eq!(timers.next(), Some(now - Duration::from_secs(1)));
        assert_eq!(timers.due(now), [2, 3]);
        assert_eq!(timers.next(), Some(now + Duration::from_secs(5)));
        assert!(timers.due(now).is_empty());
    }
}

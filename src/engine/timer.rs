//! A coarse hashed timer wheel.
//!
//! Deadlines are rounded up to a tick (1 ms in the engine). Each slot holds a `Vec` of
//! entries; an entry whose deadline lies more than one revolution ahead simply stays in its
//! slot until its tick comes round (the entry carries its absolute tick). Cancellation is lazy:
//! an entry carries enough identity (connection key + id) for the owner to ignore stale
//! firings, so there is no per-connection heap node and no O(log n) heap work per event.
//!
//! Why not a binary heap: 100K connections each with a heartbeat and a message timer would
//! put 200K+ entries in a heap with log-time inserts; the wheel is O(1) per insert and per
//! expiry and its memory is a flat `Vec` per slot that is reused.

/// Timer wheel over entries of type `T`.
pub struct TimerWheel<T> {
    slots: Vec<Vec<(u64, T)>>,
    /// The next tick that has not been expired yet.
    cursor: u64,
    len: usize,
}

impl<T: Copy> TimerWheel<T> {
    /// A wheel with `slots` slots (rounded up to a power of two).
    pub fn new(slots: usize) -> Self {
        let n = slots.max(2).next_power_of_two();
        TimerWheel {
            slots: (0..n).map(|_| Vec::new()).collect(),
            cursor: 0,
            len: 0,
        }
    }

    /// Number of entries held (including ones that will turn out stale).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedule `item` at absolute tick `tick`. A tick in the past fires at the next expiry.
    pub fn insert(&mut self, tick: u64, item: T) {
        let tick = tick.max(self.cursor);
        let mask = self.slots.len() as u64 - 1;
        self.slots[(tick & mask) as usize].push((tick, item));
        self.len += 1;
    }

    /// The earliest tick at or after the cursor, looking at most `window` ticks ahead, that
    /// has an entry due. `None` when nothing is due within the window.
    pub fn next_due(&self, window: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() as u64 - 1;
        let end = self.cursor + window.min(mask);
        (self.cursor..=end).find(|&t| {
            self.slots[(t & mask) as usize]
                .iter()
                .any(|(tick, _)| *tick <= t)
        })
    }

    /// Move every entry with tick ≤ `now` into `out`, in tick order per slot.
    pub fn expire(&mut self, now: u64, out: &mut Vec<T>) {
        if self.len == 0 {
            self.cursor = self.cursor.max(now + 1);
            return;
        }
        let mask = self.slots.len() as u64 - 1;
        // Never scan more than one revolution: beyond that every slot has been visited.
        let last = now.min(self.cursor + mask);
        while self.cursor <= last {
            let slot = &mut self.slots[(self.cursor & mask) as usize];
            if !slot.is_empty() {
                let mut i = 0;
                while i < slot.len() {
                    if slot[i].0 <= now {
                        out.push(slot.swap_remove(i).1);
                        self.len -= 1;
                    } else {
                        i += 1;
                    }
                }
            }
            self.cursor += 1;
        }
        if now >= self.cursor {
            // We skipped ticks because a full revolution was scanned: everything due has
            // been collected, so jump.
            self.cursor = now + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_only_when_due() {
        let mut w = TimerWheel::new(8);
        w.insert(3, 'a');
        w.insert(1, 'b');
        w.insert(20, 'c'); // more than one revolution ahead
        let mut out = Vec::new();
        w.expire(0, &mut out);
        assert!(out.is_empty());
        w.expire(3, &mut out);
        assert_eq!(out, vec!['b', 'a']);
        out.clear();
        w.expire(19, &mut out);
        assert!(out.is_empty(), "c is due at 20, got {out:?}");
        w.expire(20, &mut out);
        assert_eq!(out, vec!['c']);
        assert!(w.is_empty());
    }

    #[test]
    fn next_due_looks_ahead_within_a_window() {
        let mut w = TimerWheel::new(16);
        assert_eq!(w.next_due(10), None);
        w.insert(5, 'a');
        w.insert(21, 'b'); // same slot as 5, one revolution later
        assert_eq!(w.next_due(10), Some(5));
        assert_eq!(w.next_due(3), None);
        let mut out = Vec::new();
        w.expire(5, &mut out);
        assert_eq!(w.next_due(10), None, "b is not due before tick 21");
        assert_eq!(w.next_due(15), Some(21));
    }

    #[test]
    fn long_jump_collects_everything_due() {
        let mut w = TimerWheel::new(4);
        for t in 0..50u64 {
            w.insert(t, t);
        }
        let mut out = Vec::new();
        w.expire(1000, &mut out);
        out.sort();
        assert_eq!(out, (0..50).collect::<Vec<_>>());
        // Past ticks inserted after a jump fire on the next expiry.
        w.insert(5, 99);
        w.expire(1001, &mut out);
        assert_eq!(out.last(), Some(&99));
    }
}

//! The venue's order indexes, laid out for the way orders come and go.
//!
//! - [`OrderTable`]: remembered orders by venue order number (OrderID).
//!   Numbers are handed out in sequence and orders are forgotten roughly
//!   oldest first, so the recent ones live in a window indexed by number:
//!   entering an order is a push at the back, a lookup is an index, and
//!   forgetting the oldest is a pop at the front. A hash map keyed by number
//!   cost a cache miss per lookup and per removal (its buckets are spread
//!   over all of its memory), the largest single cost of the core thread at
//!   full load. An order still remembered when it falls `window_cap` numbers
//!   behind the newest (a long-resting order) moves to a spill map.
//! - [`EngineIds`]: venue order number by the engine's OrderId. The engine
//!   names an order by its slot in the engine's slab plus a generation, and
//!   slots are reused most-recent-first, so a vector indexed by slot stays
//!   small and hot.

use rustc_hash::FxHashMap;

use crate::engine::OrderId;
use crate::seq_window::SeqWindow;

/// Orders by venue order number: a window over the recent numbers plus a
/// spill map for older ones.
#[derive(Debug, Clone)]
pub(super) struct OrderTable<T> {
    /// Orders from `window.base()` on.
    window: SeqWindow<T>,
    /// Remembered orders numbered below the window (numbers are the
    /// venue's, not a client's: a fast hasher is safe).
    spill: FxHashMap<u64, T>,
    /// The most numbers the window spans.
    window_cap: usize,
}

impl<T> OrderTable<T> {
    /// A table whose window spans up to `window_cap` numbers (at least 1);
    /// both parts are allocated up front for `capacity` orders (growing
    /// either at 100 000s of orders stalls the core while it copies).
    pub fn with_capacity(window_cap: usize, capacity: usize) -> OrderTable<T> {
        let window_cap = window_cap.max(1);
        OrderTable {
            window: SeqWindow::with_capacity(capacity.min(window_cap)),
            spill: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            window_cap,
        }
    }

    /// Numbers the window can span, and orders the spill map can hold,
    /// before either grows (the lesser).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.window.capacity().min(self.spill.capacity())
    }

    /// Remembered orders.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.window.count() + self.spill.len()
    }

    /// Enters (or replaces) order `no`. Numbers normally come in sequence;
    /// any other number is kept too.
    pub fn insert(&mut self, no: u64, rec: T) {
        if let Err(rec) = self.window.insert(no, rec) {
            self.spill.insert(no, rec);
            return;
        }
        while self.window.span() > self.window_cap {
            if let Some((old_no, Some(old))) = self.window.pop_front() {
                self.spill.insert(old_no, old);
            }
        }
    }

    pub fn get(&self, no: u64) -> Option<&T> {
        if no < self.window.base() {
            return self.spill.get(&no);
        }
        self.window.get(no)
    }

    pub fn get_mut(&mut self, no: u64) -> Option<&mut T> {
        if no < self.window.base() {
            return self.spill.get_mut(&no);
        }
        self.window.get_mut(no)
    }

    /// Every remembered order with its number, lowest number first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let mut spilled: Vec<(u64, &T)> = self.spill.iter().map(|(&no, t)| (no, t)).collect();
        spilled.sort_unstable_by_key(|&(no, _)| no);
        spilled.into_iter().chain(self.window.iter())
    }

    /// Forgets order `no`.
    pub fn remove(&mut self, no: u64) -> Option<T> {
        if no < self.window.base() {
            return self.spill.remove(&no);
        }
        self.window.remove(no)
    }
}

/// Venue order number by engine OrderId, indexed by the id's slab slot.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct EngineIds {
    /// By slot: the engine id that holds it and its venue number (id 0: none).
    slots: Vec<(OrderId, u64)>,
}

impl EngineIds {
    /// Room for `capacity` slots before the vector grows.
    pub fn with_capacity(capacity: usize) -> EngineIds {
        EngineIds {
            slots: Vec::with_capacity(capacity),
        }
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    fn slot(id: OrderId) -> usize {
        (id & 0xFFFF_FFFF) as usize
    }

    /// Takes over `other`'s entries, keeping this one's capacity.
    pub fn replace_with(&mut self, other: &EngineIds) {
        self.slots.clear();
        self.slots.extend_from_slice(&other.slots);
    }

    pub fn insert(&mut self, id: OrderId, no: u64) {
        let slot = Self::slot(id);
        if slot >= self.slots.len() {
            self.slots.resize(slot + 1, (0, 0));
        }
        self.slots[slot] = (id, no);
    }

    pub fn get(&self, id: OrderId) -> Option<u64> {
        match self.slots.get(Self::slot(id)) {
            Some(&(held, no)) if held == id && id != 0 => Some(no),
            _ => None,
        }
    }

    pub fn remove(&mut self, id: OrderId) {
        if let Some(entry) = self.slots.get_mut(Self::slot(id)) {
            if entry.0 == id {
                *entry = (0, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_in_sequence_are_found_and_forgotten_in_any_order() {
        let mut t = OrderTable::with_capacity(100, 100);
        for no in 1..=10u64 {
            t.insert(no, no * 10);
        }
        assert_eq!(t.get(4), Some(&40));
        assert_eq!(t.get(11), None);
        assert_eq!(t.get(0), None);
        assert_eq!(t.remove(4), Some(40));
        assert_eq!(t.remove(4), None);
        assert_eq!(t.get(4), None);
        // The front moves past forgotten numbers.
        assert_eq!(t.remove(1), Some(10));
        assert_eq!(t.remove(2), Some(20));
        assert_eq!(t.window.base(), 3);
        assert_eq!(t.remove(3), Some(30));
        assert_eq!(t.window.base(), 5, "4 was forgotten earlier");
        *t.get_mut(5).unwrap() += 1;
        assert_eq!(t.get(5), Some(&51));
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn an_order_left_behind_by_the_window_moves_to_the_spill_map() {
        let mut t = OrderTable::with_capacity(4, 16);
        t.insert(1, "long-lived");
        for no in 2..=20u64 {
            t.insert(no, "short");
            t.remove(no);
        }
        // Number 1 held the front until the window passed 4 numbers.
        assert!(t.window.base() > 1);
        assert_eq!(t.spill.len(), 1);
        assert_eq!(t.get(1), Some(&"long-lived"));
        *t.get_mut(1).unwrap() = "changed";
        assert_eq!(t.remove(1), Some("changed"));
        assert_eq!(t.len(), 0);
        // The window spans at most its cap.
        for no in 21..=40u64 {
            t.insert(no, "kept");
        }
        assert!(t.window.span() <= 4);
        assert_eq!(t.len(), 20);
        for no in 21..=40u64 {
            assert_eq!(t.get(no), Some(&"kept"), "order {no}");
        }
    }

    #[test]
    fn numbers_out_of_sequence_are_kept() {
        let mut t = OrderTable::with_capacity(8, 8);
        t.insert(10, 'a');
        t.insert(13, 'b');
        assert_eq!(t.get(11), None);
        t.insert(11, 'c');
        t.insert(5, 'd');
        assert_eq!(
            [t.get(5), t.get(10), t.get(11), t.get(12), t.get(13)],
            [Some(&'d'), Some(&'a'), Some(&'c'), None, Some(&'b')]
        );
        // An emptied window starts again at the next number.
        for no in [5, 10, 11, 13] {
            assert!(t.remove(no).is_some());
        }
        assert_eq!(t.window.span(), 0);
        t.insert(100, 'e');
        assert_eq!((t.window.base(), t.get(100)), (100, Some(&'e')));
    }

    #[test]
    fn engine_ids_map_slots_and_tell_generations_apart() {
        let mut ids = EngineIds::with_capacity(4);
        let id = |gen: u64, slot: u64| (gen << 32) | slot;
        ids.insert(id(1, 0), 7);
        ids.insert(id(1, 9), 8);
        assert_eq!(ids.get(id(1, 0)), Some(7));
        assert_eq!(ids.get(id(1, 9)), Some(8));
        assert_eq!(ids.get(id(2, 9)), None, "another generation of the slot");
        assert_eq!(ids.get(id(1, 5)), None);
        assert_eq!(ids.get(id(1, 1000)), None);
        ids.remove(id(2, 9));
        assert_eq!(ids.get(id(1, 9)), Some(8), "removing another generation");
        ids.remove(id(1, 9));
        assert_eq!(ids.get(id(1, 9)), None);
        ids.insert(id(2, 9), 11);
        assert_eq!(ids.get(id(2, 9)), Some(11));
        assert_eq!(ids.get(0), None);
    }
}

//! Items keyed by a number handed out in sequence and removed roughly
//! oldest first: a window `base..base + len` indexed by number. Adding the
//! next number is a push at the back, a lookup is an index, and removing
//! the oldest pops the front (with every removed number behind it), so the
//! items stay contiguous in memory, unlike a hash map's buckets.
//!
//! Used by the venue's order table (`venue::order_entry::table`) and the
//! load generator's pending requests (`load::client`).

use std::collections::VecDeque;

/// Items by sequence number (see the module).
#[derive(Debug, Clone)]
pub struct SeqWindow<T> {
    /// Number of `items[0]`.
    base: u64,
    /// Items `base..base + items.len()`; `None`: removed (or never added).
    /// The front is always `Some` (removed fronts are popped).
    items: VecDeque<Option<T>>,
}

impl<T> SeqWindow<T> {
    /// An empty window with room for `capacity` numbers.
    pub fn with_capacity(capacity: usize) -> SeqWindow<T> {
        SeqWindow {
            base: 0,
            items: VecDeque::with_capacity(capacity),
        }
    }

    /// Number of the oldest item (or where the next starts when empty).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Numbers the window spans, removed ones between its items included.
    pub fn span(&self) -> usize {
        self.items.len()
    }

    /// Numbers it can span before it grows.
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// Items held.
    pub fn count(&self) -> usize {
        self.items.iter().flatten().count()
    }

    /// Adds (or replaces) item `no`; numbers skipped are kept as removed
    /// ones. An empty window starts at `no`. A number below the window's
    /// base is not taken: it comes back as `Err`.
    pub fn insert(&mut self, no: u64, item: T) -> Result<(), T> {
        if self.items.is_empty() && no >= self.base {
            self.base = no;
        }
        if no < self.base {
            return Err(item);
        }
        let i = (no - self.base) as usize;
        if i < self.items.len() {
            self.items[i] = Some(item);
            return Ok(());
        }
        while self.items.len() < i {
            self.items.push_back(None);
        }
        self.items.push_back(Some(item));
        Ok(())
    }

    pub fn get(&self, no: u64) -> Option<&T> {
        let i = usize::try_from(no.checked_sub(self.base)?).ok()?;
        self.items.get(i)?.as_ref()
    }

    pub fn get_mut(&mut self, no: u64) -> Option<&mut T> {
        let i = usize::try_from(no.checked_sub(self.base)?).ok()?;
        self.items.get_mut(i)?.as_mut()
    }

    /// Removes item `no`.
    pub fn remove(&mut self, no: u64) -> Option<T> {
        let i = usize::try_from(no.checked_sub(self.base)?).ok()?;
        let item = self.items.get_mut(i)?.take();
        self.trim_front();
        item
    }

    /// Removes the oldest number, and the item under it if any (then the
    /// removed numbers behind it).
    pub fn pop_front(&mut self) -> Option<(u64, Option<T>)> {
        let item = self.items.pop_front()?;
        let no = self.base;
        self.base += 1;
        self.trim_front();
        Some((no, item))
    }

    /// Items with their numbers, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.items
            .iter()
            .enumerate()
            .filter_map(move |(i, item)| Some((base + i as u64, item.as_ref()?)))
    }

    /// Pops removed numbers off the front, so that the window starts at its
    /// oldest item.
    fn trim_front(&mut self) {
        while matches!(self.items.front(), Some(None)) {
            self.items.pop_front();
            self.base += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_found_by_number_and_the_front_follows_the_oldest() {
        let mut w = SeqWindow::with_capacity(4);
        for no in 7..12u64 {
            w.insert(no, no * 10).unwrap();
        }
        assert_eq!(w.insert(3, 30), Err(30), "below the window");
        assert_eq!(w.remove(9), Some(90));
        assert_eq!(w.remove(7), Some(70));
        assert_eq!((w.base(), w.span(), w.count()), (8, 4, 3));
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            [(8, &80), (10, &100), (11, &110)]
        );
        assert_eq!(w.pop_front(), Some((8, Some(80))));
        assert_eq!(w.base(), 10, "9 was removed: popped with 8");
        assert_eq!(w.get(8), None);
        *w.get_mut(11).unwrap() += 1;
        assert_eq!(w.get(11), Some(&111));
    }
}

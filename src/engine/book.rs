//! The order book of one instrument: price levels per side, each a FIFO of
//! orders linked through the order slab. Levels live in their own slab and are
//! ordered per side in a sorted Vec with the best price last, so the best level
//! is O(1), activity near the top moves little memory, and an order finds its
//! level in O(1) through `Order::level`. The book never matches: `matching`
//! decides, the book only keeps queues and aggregates consistent.

use crate::engine::order::{OrderSlab, OrderState, NIL};
use crate::engine::types::{Lots, Side, Ticks};

/// One price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Side of the book.
    pub side: Side,
    /// Price, ticks.
    pub price: Ticks,
    /// Displayed quantity (iceberg hidden parts excluded), lots.
    pub visible_qty: Lots,
    /// Total working quantity including hidden parts, lots.
    pub total_qty: Lots,
    /// Number of orders.
    pub count: u32,
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

/// Public view of a level for depth queries and market data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelView {
    /// Price, ticks.
    pub price: Ticks,
    /// Displayed quantity, lots.
    pub qty: Lots,
    /// Number of orders.
    pub order_count: u32,
}

/// Order book of one instrument.
#[derive(Debug, Clone, Default)]
pub struct Book {
    levels: Vec<Level>,
    free_levels: Vec<u32>,
    /// Per side: (sort key, level slot), ascending key, best last.
    /// Key is the price for bids and minus the price for asks.
    sides: [Vec<(Ticks, u32)>; 2],
    /// Direct price -> level slot index for a window of prices (O(1) lookup on
    /// the hot path); prices outside it fall back to binary search.
    window: PriceWindow,
}

/// Ticks covered by the direct index of each book (a named bound: 2 x 16 KiB per book).
pub const PRICE_WINDOW_TICKS: usize = 4096;

/// Level slots for prices `base .. base + PRICE_WINDOW_TICKS`, per side; NIL = no level.
/// Centred on the first price the book sees; it never moves, so it stays a pure cache.
#[derive(Debug, Clone, Default)]
struct PriceWindow {
    base: Ticks,
    slots: [Vec<u32>; 2],
    /// Non-NIL entries per side (checked against the book by `check_invariants`).
    used: [usize; 2],
}

impl PriceWindow {
    #[inline]
    fn index(&self, price: Ticks) -> Option<usize> {
        let i = price.wrapping_sub(self.base);
        (self.slots[0].len() == PRICE_WINDOW_TICKS && (0..PRICE_WINDOW_TICKS as i64).contains(&i))
            .then_some(i as usize)
    }
    #[inline]
    fn get(&self, side: Side, price: Ticks) -> Option<u32> {
        self.index(price).map(|i| self.slots[side.index()][i])
    }
    #[inline]
    fn set(&mut self, side: Side, price: Ticks, l: u32) {
        if self.slots[0].is_empty() {
            self.base = price.saturating_sub(PRICE_WINDOW_TICKS as i64 / 2);
            self.slots = [vec![NIL; PRICE_WINDOW_TICKS], vec![NIL; PRICE_WINDOW_TICKS]];
        }
        if let Some(i) = self.index(price) {
            let e = &mut self.slots[side.index()][i];
            let used = &mut self.used[side.index()];
            *used = *used + (l != NIL) as usize - (*e != NIL) as usize;
            *e = l;
        }
    }
}

#[inline]
fn key(side: Side, price: Ticks) -> Ticks {
    match side {
        Side::Buy => price,
        Side::Sell => -price,
    }
}

impl Book {
    /// Best level of a side.
    #[inline]
    pub fn best(&self, side: Side) -> Option<&Level> {
        let &(_, l) = self.sides[side.index()].last()?;
        Some(&self.levels[l as usize])
    }

    /// Best price of a side.
    #[inline]
    pub fn best_price(&self, side: Side) -> Option<Ticks> {
        self.best(side).map(|l| l.price)
    }

    /// Worst (furthest from the spread) price of a side.
    #[inline]
    pub fn worst_price(&self, side: Side) -> Option<Ticks> {
        let &(_, l) = self.sides[side.index()].first()?;
        Some(self.levels[l as usize].price)
    }

    /// Up to `n` best levels of a side, best first.
    pub fn depth(&self, side: Side, n: usize) -> Vec<LevelView> {
        self.levels_iter(side).take(n).collect()
    }

    /// All levels of a side, best first.
    pub fn levels_iter(&self, side: Side) -> impl Iterator<Item = LevelView> + '_ {
        self.sides[side.index()].iter().rev().map(move |&(_, l)| {
            let l = &self.levels[l as usize];
            LevelView {
                price: l.price,
                qty: l.visible_qty,
                order_count: l.count,
            }
        })
    }

    /// Number of levels on a side.
    pub fn level_count(&self, side: Side) -> usize {
        self.sides[side.index()].len()
    }

    /// Level at a price, if any.
    pub fn level_at(&self, side: Side, price: Ticks) -> Option<LevelView> {
        let v = &self.sides[side.index()];
        let i = v.binary_search_by_key(&key(side, price), |e| e.0).ok()?;
        let l = &self.levels[v[i].1 as usize];
        Some(LevelView {
            price: l.price,
            qty: l.visible_qty,
            order_count: l.count,
        })
    }

    /// Levels of a side, best first.
    pub(crate) fn level_slots(&self, side: Side) -> impl Iterator<Item = &Level> + '_ {
        self.sides[side.index()]
            .iter()
            .rev()
            .map(move |&(_, l)| &self.levels[l as usize])
    }

    #[inline]
    pub(crate) fn level(&self, l: u32) -> &Level {
        &self.levels[l as usize]
    }

    #[inline]
    pub(crate) fn best_slot(&self, side: Side) -> Option<u32> {
        self.sides[side.index()].last().map(|e| e.1)
    }

    fn level_slot_for(&mut self, side: Side, price: Ticks) -> u32 {
        let cached = self.window.get(side, price);
        if let Some(l) = cached.filter(|&l| l != NIL) {
            return l;
        }
        let k = key(side, price);
        let v = &self.sides[side.index()];
        // Most inserts land at or next to the best price: check the top first.
        let pos = match v.last() {
            _ if cached.is_some() => v.partition_point(|e| e.0 < k),
            Some(&(top, l)) if top == k => return l,
            Some(&(top, _)) if top < k => v.len(),
            _ => match v.binary_search_by_key(&k, |e| e.0) {
                Ok(i) => return v[i].1,
                Err(i) => i,
            },
        };
        let level = Level {
            side,
            price,
            visible_qty: 0,
            total_qty: 0,
            count: 0,
            head: NIL,
            tail: NIL,
        };
        let l = match self.free_levels.pop() {
            Some(l) => {
                self.levels[l as usize] = level;
                l
            }
            None => {
                self.levels.push(level);
                if self.free_levels.capacity() < self.levels.capacity() {
                    self.free_levels
                        .reserve(self.levels.capacity() - self.free_levels.len());
                }
                (self.levels.len() - 1) as u32
            }
        };
        self.sides[side.index()].insert(pos, (k, l));
        self.window.set(side, price, l);
        l
    }

    fn drop_level(&mut self, side: Side, l: u32) {
        let price = self.levels[l as usize].price;
        self.window.set(side, price, NIL);
        let k = key(side, price);
        let v = &mut self.sides[side.index()];
        if v.last().map(|e| e.0) == Some(k) {
            v.pop();
        } else if let Ok(i) = v.binary_search_by_key(&k, |e| e.0) {
            v.remove(i);
        }
        self.free_levels.push(l);
    }

    /// Appends a resting order (its `visible` already set) at the back of its level.
    #[inline]
    pub(crate) fn push_back(&mut self, slab: &mut OrderSlab, slot: u32) {
        let (side, price) = {
            let o = slab.get(slot);
            (o.side, o.price)
        };
        let l = self.level_slot_for(side, price);
        let level = &mut self.levels[l as usize];
        let tail = level.tail;
        {
            let o = slab.get_mut(slot);
            o.prev = tail;
            o.next = NIL;
            o.level = l;
            o.state = OrderState::Resting;
            level.visible_qty += o.visible;
            level.total_qty += o.leaves();
        }
        level.count += 1;
        if tail == NIL {
            level.head = slot;
        } else {
            slab.get_mut(tail).next = slot;
        }
        level.tail = slot;
    }

    /// Removes a resting order from its level (dropping the level if empty).
    /// Level aggregates are reduced by the order's current `visible` and leaves.
    #[inline]
    pub(crate) fn unlink(&mut self, slab: &mut OrderSlab, slot: u32) {
        let (prev, next, l, side, visible, leaves) = {
            let o = slab.get(slot);
            (o.prev, o.next, o.level, o.side, o.visible, o.leaves())
        };
        if prev != NIL {
            slab.get_mut(prev).next = next;
        }
        if next != NIL {
            slab.get_mut(next).prev = prev;
        }
        let level = &mut self.levels[l as usize];
        if prev == NIL {
            level.head = next;
        }
        if next == NIL {
            level.tail = prev;
        }
        level.count -= 1;
        level.visible_qty -= visible;
        level.total_qty -= leaves;
        let empty = level.count == 0;
        let o = slab.get_mut(slot);
        o.prev = NIL;
        o.next = NIL;
        o.level = NIL;
        if empty {
            self.drop_level(side, l);
        }
    }

    /// Books a run of fills at the head of level `l`: `lots` traded in all, the first `removed`
    /// orders of the queue left it (their links are not cleared; the last may be an iceberg with
    /// `hidden` lots that now leave the level's total too), and `next` is the new head. Returns
    /// false when that dropped the level.
    #[inline]
    pub(crate) fn traded_run(
        &mut self,
        slab: &mut OrderSlab,
        l: u32,
        (lots, hidden, removed): (Lots, Lots, u32),
        next: u32,
    ) -> bool {
        let level = &mut self.levels[l as usize];
        level.visible_qty -= lots;
        level.total_qty -= lots + hidden;
        if removed == 0 {
            return true;
        }
        level.count -= removed;
        level.head = next;
        if next == NIL {
            level.tail = NIL;
            let side = level.side;
            self.drop_level(side, l);
            return false;
        }
        slab.get_mut(next).prev = NIL;
        true
    }

    /// Adjusts a level's aggregates after an order's visible/leaves changed in place.
    #[inline]
    pub(crate) fn adjust(&mut self, l: u32, visible_delta: i64, total_delta: i64) {
        let level = &mut self.levels[l as usize];
        level.visible_qty = level.visible_qty.wrapping_add_signed(visible_delta);
        level.total_qty = level.total_qty.wrapping_add_signed(total_delta);
    }

    /// Slots of a level's orders, front to back.
    pub(crate) fn queue<'a>(
        &'a self,
        slab: &'a OrderSlab,
        l: u32,
    ) -> impl Iterator<Item = u32> + 'a {
        let mut cur = self.levels[l as usize].head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let s = cur;
            cur = slab.get(s).next;
            Some(s)
        })
    }

    /// All levels of a side with their order slots, best first (for snapshots and checks).
    pub(crate) fn side_levels(&self, side: Side) -> impl Iterator<Item = u32> + '_ {
        self.sides[side.index()].iter().rev().map(|e| e.1)
    }

    /// Checks the book's structural invariants; returns a description of the first violation.
    pub(crate) fn check_invariants(&self, slab: &OrderSlab) -> Result<(), String> {
        for side in [Side::Buy, Side::Sell] {
            let v = &self.sides[side.index()];
            for w in v.windows(2) {
                if w[0].0 >= w[1].0 {
                    return Err(format!("{side:?} levels not strictly sorted"));
                }
            }
            for &(k, l) in v {
                let level = &self.levels[l as usize];
                if key(side, level.price) != k {
                    return Err(format!("{side:?} level key mismatch at {}", level.price));
                }
                if level.count == 0 || level.head == NIL {
                    return Err(format!("{side:?} empty level kept at {}", level.price));
                }
                let (mut vis, mut tot, mut n, mut prev) = (0u64, 0u64, 0u32, NIL);
                for s in self.queue(slab, l) {
                    let o = slab.get(s);
                    if o.state != OrderState::Resting || o.level != l || o.prev != prev {
                        return Err(format!("bad link for order {} at {}", o.id, level.price));
                    }
                    if o.side != side || o.price != level.price {
                        return Err(format!("order {} on wrong level", o.id));
                    }
                    if o.cum_qty >= o.qty || o.visible == 0 || o.visible > o.leaves() {
                        return Err(format!("order {} quantities inconsistent", o.id));
                    }
                    if o.max_floor == 0 && o.visible != o.leaves() {
                        return Err(format!("order {} hides quantity without max_floor", o.id));
                    }
                    vis += o.visible;
                    tot += o.leaves();
                    n += 1;
                    prev = s;
                    if n > slab.live {
                        return Err("cycle in level queue".into());
                    }
                }
                if prev != level.tail {
                    return Err(format!("tail mismatch at {}", level.price));
                }
                if vis != level.visible_qty || tot != level.total_qty || n != level.count {
                    return Err(format!(
                        "{side:?} level {} aggregates ({}, {}, {}) != sums ({vis}, {tot}, {n})",
                        level.price, level.visible_qty, level.total_qty, level.count
                    ));
                }
            }
        }
        for side in [Side::Buy, Side::Sell] {
            let mut in_window = 0;
            for &(_, l) in &self.sides[side.index()] {
                let price = self.levels[l as usize].price;
                if let Some(w) = self.window.get(side, price) {
                    in_window += 1;
                    if w != l {
                        return Err(format!("{side:?} price index stale at {price}"));
                    }
                }
            }
            let indexed = self.window.used[side.index()];
            if indexed != in_window {
                return Err(format!(
                    "{side:?} price index has {indexed} entries, book {in_window}"
                ));
            }
        }
        if let (Some(b), Some(a)) = (self.best_price(Side::Buy), self.best_price(Side::Sell)) {
            if b >= a {
                return Err(format!("book crossed: bid {b} >= ask {a}"));
            }
        }
        Ok(())
    }
}

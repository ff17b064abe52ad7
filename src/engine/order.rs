//! Orders and the slab that holds them. A slot's generation is part of the
//! order id, so ids are unique, deterministic and resolve to a slot in O(1)
//! without a hash map. The slab never shrinks; freed slots are reused LIFO.

use crate::engine::event::OrderInfo;
use crate::engine::types::{
    AccountId, InstrumentId, Lots, OrdType, OrderId, Owner, Side, Ticks, Tif,
};

/// "No slot" marker for intrusive links.
pub(crate) const NIL: u32 = u32::MAX;

/// Where a live order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderState {
    /// Slot unused.
    Free,
    /// In a price level queue.
    Resting,
    /// Waiting for its stop trigger.
    Stop,
    /// Being matched as aggressor within one command (not in the book).
    Active,
}

/// One order; links make the per-level FIFO. Laid out in two cache lines: the first holds
/// everything a fill of a resting order reads or writes (quantities, the ids a Trade reports,
/// the queue link to the next order, time in force and state), the second the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Order {
    pub id: OrderId,
    pub client_ref: u64,
    pub qty: Lots,
    pub cum_qty: Lots,
    pub cum_notional: i64,
    /// Displayed part currently in the level.
    pub visible: Lots,
    pub owner: Owner,
    pub account: AccountId,
    pub next: u32,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: Tif,
    pub state: OrderState,
    // Second cache line.
    pub price: Ticks,
    pub stop_price: Ticks,
    /// Iceberg display size (0 = all displayed).
    pub max_floor: Lots,
    pub expire_ts_ns: u64,
    /// Time priority: engine sequence of arrival or last priority loss.
    pub seq: u64,
    /// Price used to reserve notional for risk (limit price or band edge).
    pub risk_price: Ticks,
    pub instrument: InstrumentId,
    pub prev: u32,
    /// Slot of the level in the book's level slab.
    pub level: u32,
    pub post_only: bool,
    pub triggered: bool,
}

impl Order {
    pub(crate) const EMPTY: Order = Order {
        id: 0,
        client_ref: 0,
        owner: 0,
        account: 0,
        instrument: 0,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: Tif::Day,
        state: OrderState::Free,
        post_only: false,
        triggered: false,
        price: 0,
        stop_price: 0,
        qty: 0,
        cum_qty: 0,
        cum_notional: 0,
        max_floor: 0,
        visible: 0,
        expire_ts_ns: 0,
        seq: 0,
        risk_price: 0,
        prev: NIL,
        next: NIL,
        level: NIL,
    };

    /// Quantity still working.
    pub(crate) fn leaves(&self) -> Lots {
        self.qty - self.cum_qty
    }

    /// Display quantity for a (re)fill of the visible part.
    pub(crate) fn display_slice(&self) -> Lots {
        if self.max_floor == 0 {
            self.leaves()
        } else {
            self.max_floor.min(self.leaves())
        }
    }

    /// Report view, `leaves_qty` forced to 0 when the order is done.
    pub(crate) fn info(&self, done: bool) -> OrderInfo {
        OrderInfo {
            order_id: self.id,
            client_ref: self.client_ref,
            owner: self.owner,
            account: self.account,
            instrument: self.instrument,
            side: self.side,
            ord_type: self.ord_type,
            tif: self.tif,
            price: self.price,
            stop_price: self.stop_price,
            qty: self.qty,
            cum_qty: self.cum_qty,
            leaves_qty: if done { 0 } else { self.leaves() },
            cum_notional: self.cum_notional,
        }
    }
}

/// Slab of orders with a LIFO free list; slot generations make ids. The free list is
/// intrusive: a free slot's `next` names the free slot below it, so freeing an order writes
/// only the order's own first cache line (which a fill has just read).
#[derive(Debug, Clone)]
pub(crate) struct OrderSlab {
    pub orders: Vec<Order>,
    pub gens: Vec<u32>,
    /// Top of the free list (the slot `insert` takes next), NIL when empty.
    pub free_head: u32,
    pub live: u32,
}

impl Default for OrderSlab {
    fn default() -> OrderSlab {
        OrderSlab {
            orders: Vec::new(),
            gens: Vec::new(),
            free_head: NIL,
            live: 0,
        }
    }
}

impl OrderSlab {
    /// An empty slab with room for `n` orders. Growing a slab of 100 000s of
    /// orders copies all of it (milliseconds on the core, every doubling);
    /// room not used yet costs address space only.
    pub(crate) fn with_capacity(n: usize) -> OrderSlab {
        let mut slab = OrderSlab::default();
        slab.orders.reserve_exact(n);
        slab.gens.reserve_exact(n);
        slab
    }

    /// Slot for an id, if that id names a live order.
    #[inline]
    pub(crate) fn slot_of(&self, id: OrderId) -> Option<u32> {
        let slot = (id & 0xFFFF_FFFF) as u32;
        let o = self.orders.get(slot as usize)?;
        (o.id == id && o.state != OrderState::Free).then_some(slot)
    }

    /// Takes a slot and stamps a fresh id into `order`.
    #[inline]
    pub(crate) fn insert(&mut self, mut order: Order) -> u32 {
        let slot = match self.free_head {
            NIL => {
                self.orders.push(Order::EMPTY);
                self.gens.push(0);
                (self.orders.len() - 1) as u32
            }
            s => {
                self.free_head = self.orders[s as usize].next;
                s
            }
        };
        let g = &mut self.gens[slot as usize];
        *g = g.wrapping_add(1).max(1);
        order.id = ((*g as u64) << 32) | slot as u64;
        self.orders[slot as usize] = order;
        self.live += 1;
        slot
    }

    /// Frees a slot.
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32) {
        self.push_free(slot);
        self.live -= 1;
    }

    /// Puts a slot on top of the free list, its order marked free (`live` is the caller's).
    #[inline]
    pub(crate) fn push_free(&mut self, slot: u32) {
        self.free_head = free_order(&mut self.orders[slot as usize], slot, self.free_head);
    }

    /// Free slots, bottom of the free list first (the order in which they were freed, as far
    /// as they are still free); `insert` takes the last one first.
    pub(crate) fn free_slots(&self) -> Vec<u32> {
        let mut slots = Vec::new();
        let mut cur = self.free_head;
        while cur != NIL && slots.len() < self.orders.len() {
            slots.push(cur);
            cur = self.orders[cur as usize].next;
        }
        slots.reverse();
        slots
    }

    #[inline]
    pub(crate) fn get(&self, slot: u32) -> &Order {
        &self.orders[slot as usize]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, slot: u32) -> &mut Order {
        &mut self.orders[slot as usize]
    }
}

/// Marks an order's slot free and puts it on top of the free list whose top is `head`;
/// returns the new top.
#[inline(always)]
pub(crate) fn free_order(o: &mut Order, slot: u32, head: u32) -> u32 {
    o.state = OrderState::Free;
    o.next = head;
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_list_is_lifo_and_lists_its_bottom_first() {
        let mut slab = OrderSlab::default();
        let resting = Order {
            state: OrderState::Resting,
            ..Order::EMPTY
        };
        for _ in 0..4 {
            slab.insert(resting);
        }
        for s in [2, 0, 3] {
            slab.remove(s);
        }
        assert_eq!((slab.free_slots(), slab.live), (vec![2, 0, 3], 1));
        assert_eq!(slab.insert(resting), 3);
        assert_eq!(slab.insert(resting), 0);
        assert_eq!(slab.free_slots(), vec![2]);
        assert_eq!(slab.insert(resting), 2);
        assert_eq!((slab.free_head, slab.insert(resting)), (NIL, 4));
        // A reused slot gets a new generation, so the old id does not resolve to it.
        assert_eq!(slab.get(3).id >> 32, 2);
    }

    #[test]
    fn an_order_is_two_cache_lines_with_the_fill_fields_in_the_first() {
        assert_eq!(
            (std::mem::size_of::<Order>(), std::mem::align_of::<Order>()),
            (128, 64)
        );
        let o = Order::EMPTY;
        let base = &o as *const Order as usize;
        for end in [
            &o.state as *const OrderState as usize,
            &o.next as *const u32 as usize,
        ] {
            assert!(end - base < 64);
        }
    }
}

//! Engine state snapshots: the full dynamic state (orders with their queue
//! positions, stops, positions, reservations, counters, statuses) as bytes,
//! and the restore that rebuilds an engine from them plus the venue config.
//! A restored engine is re-checked against every invariant before use, and
//! produces exactly the events the original would have.

use crate::engine::codec::{self, DecodeError, Reader, Writer};
use crate::engine::config::{ConfigError, VenueConfig};
use crate::engine::matching::{Engine, MAX_PRICE_TICKS, MAX_QTY_LOTS};
use crate::engine::order::{Order, OrderState};
use crate::engine::types::{Side, Tif};

const MAGIC: &[u8; 8] = b"FIXGWSNP";
const VERSION: u32 = 1;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SnapshotError {
    /// Bytes are not a snapshot of this version.
    #[error("not a fixgw engine snapshot (bad magic or version)")]
    BadHeader,
    /// Bytes ended early or held invalid values.
    #[error("snapshot undecodable: {0}")]
    Decode(#[from] DecodeError),
    /// The snapshot was taken with a different set of instruments/accounts.
    #[error("snapshot does not match the venue config: {0}")]
    ConfigMismatch(String),
    /// The venue config itself is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Decoded state violates an engine invariant.
    #[error("snapshot state inconsistent: {0}")]
    Inconsistent(String),
}

fn state_u8(s: OrderState) -> u8 {
    match s {
        OrderState::Free => 0,
        OrderState::Resting => 1,
        OrderState::Stop => 2,
        OrderState::Active => 3,
    }
}

fn write_order(w: &mut Writer<'_>, o: &Order) {
    w.u64(o.id);
    w.u64(o.client_ref);
    w.u32(o.owner);
    w.u32(o.account);
    w.u32(o.instrument);
    w.u8(codec::side_u8(o.side));
    w.u8(codec::ord_type_u8(o.ord_type));
    w.u8(codec::tif_u8(o.tif));
    w.u8(state_u8(o.state));
    w.bool(o.post_only);
    w.bool(o.triggered);
    w.i64(o.price);
    w.i64(o.stop_price);
    w.u64(o.qty);
    w.u64(o.cum_qty);
    w.i64(o.cum_notional);
    w.u64(o.max_floor);
    w.u64(o.visible);
    w.u64(o.expire_ts_ns);
    w.u64(o.seq);
    w.i64(o.risk_price);
}

fn read_order(r: &mut Reader<'_>) -> Result<Order, SnapshotError> {
    Ok(Order {
        id: r.u64()?,
        client_ref: r.u64()?,
        owner: r.u32()?,
        account: r.u32()?,
        instrument: r.u32()?,
        side: codec::side_from(r.u8()?)?,
        ord_type: codec::ord_type_from(r.u8()?)?,
        tif: codec::tif_from(r.u8()?)?,
        state: match r.u8()? {
            1 => OrderState::Resting,
            2 => OrderState::Stop,
            v => return Err(DecodeError::BadValue("order state", v).into()),
        },
        post_only: r.bool()?,
        triggered: r.bool()?,
        price: r.i64()?,
        stop_price: r.i64()?,
        qty: r.u64()?,
        cum_qty: r.u64()?,
        cum_notional: r.i64()?,
        max_floor: r.u64()?,
        visible: r.u64()?,
        expire_ts_ns: r.u64()?,
        seq: r.u64()?,
        risk_price: r.i64()?,
        ..Order::EMPTY
    })
}

/// Field ranges every live order satisfies (the engine's own limits).
fn sane(o: &Order) -> bool {
    let price_ok = |p: i64| (0..=MAX_PRICE_TICKS).contains(&p);
    o.qty <= MAX_QTY_LOTS
        && o.cum_qty < o.qty
        && o.visible <= o.qty - o.cum_qty
        && price_ok(o.price)
        && price_ok(o.stop_price)
        && price_ok(o.risk_price)
        && (o.state != OrderState::Resting || o.visible > 0)
}

/// Magic and version, then the instrument and account counts.
fn read_header(r: &mut Reader<'_>) -> Result<(usize, usize), SnapshotError> {
    for &b in MAGIC {
        if r.u8()? != b {
            return Err(SnapshotError::BadHeader);
        }
    }
    if r.u32()? != VERSION {
        return Err(SnapshotError::BadHeader);
    }
    Ok((r.u32()? as usize, r.u32()? as usize))
}

impl Engine {
    /// Serialises the full engine state.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + self.slab.orders.len() * 128);
        let mut w = Writer::new(&mut buf);
        for &b in MAGIC {
            w.u8(b);
        }
        w.u32(VERSION);
        w.u32(self.instruments.len() as u32);
        w.u32(self.accounts.len() as u32);
        w.u64(self.now_ns);
        w.u64(self.seq);
        w.u64(self.next_trade_id);
        for ins in &self.instruments {
            w.bool(ins.halted);
            w.opt_i64(ins.reference);
            w.opt_i64(ins.last_trade);
        }
        for a in &self.accounts {
            w.bool(a.blocked);
            w.u32(a.open_orders);
            w.i64(a.open_buy_cash);
            w.i64(a.position_cost_cash);
        }
        for ai in &self.acct_inst {
            w.u64(ai.open_buy_lots);
            w.u64(ai.open_sell_lots);
            let p = &ai.pos;
            w.i64(p.net_qty);
            w.i64(p.open_cost);
            w.i64(p.realized);
            w.u64(p.bought_qty);
            w.u64(p.sold_qty);
        }
        w.u32(self.slab.orders.len() as u32);
        for (o, &g) in self.slab.orders.iter().zip(&self.slab.gens) {
            w.u32(g);
            let live = o.state != OrderState::Free;
            w.bool(live);
            if live {
                write_order(&mut w, o);
            }
        }
        let free = self.slab.free_slots();
        w.u32(free.len() as u32);
        for &f in &free {
            w.u32(f);
        }
        // Queue order is the one thing not derivable from the orders themselves.
        for ins in &self.instruments {
            for side in [Side::Buy, Side::Sell] {
                w.u32(ins.book.level_count(side) as u32);
                for l in ins.book.side_levels(side) {
                    let n = ins.book.level(l).count;
                    w.u32(n);
                    for s in ins.book.queue(&self.slab, l) {
                        w.u32(s);
                    }
                }
            }
        }
        buf
    }

    /// Rebuilds an engine from a snapshot taken under the same venue config.
    pub fn restore(cfg: &VenueConfig, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut e = Engine::new(cfg)?;
        e.restore_onto(bytes, &Some)?;
        Ok(e)
    }

    /// The number of instruments and accounts a snapshot was taken with.
    pub fn snapshot_counts(bytes: &[u8]) -> Result<(usize, usize), SnapshotError> {
        read_header(&mut Reader::new(bytes))
    }

    /// [`Engine::restore`] onto this engine, which must be fresh (built by
    /// [`Engine::new`], no command applied; its capacities are kept) from
    /// the config the snapshot was taken under, or from one that lists
    /// more instruments or accounts after those (they start empty).
    /// `owners` maps each order's owner (session) in the snapshot to its
    /// owner here, or refuses it (`None`). After an error the engine is
    /// unusable.
    pub fn restore_onto(
        &mut self,
        bytes: &[u8],
        owners: &dyn Fn(u32) -> Option<u32>,
    ) -> Result<(), SnapshotError> {
        let e = self;
        if !e.slab.orders.is_empty() || e.seq != 0 {
            return Err(SnapshotError::Inconsistent(
                "restore onto an engine that has state".into(),
            ));
        }
        let mut r = Reader::new(bytes);
        let (ni, na) = read_header(&mut r)?;
        if ni > e.instruments.len() || na > e.accounts.len() {
            return Err(SnapshotError::ConfigMismatch(format!(
                "snapshot has {ni} instruments and {na} accounts, config {} and {}",
                e.instruments.len(),
                e.accounts.len()
            )));
        }
        e.now_ns = r.u64()?;
        e.seq = r.u64()?;
        e.next_trade_id = r.u64()?;
        for ins in &mut e.instruments[..ni] {
            ins.halted = r.bool()?;
            ins.reference = r.opt_i64()?;
            ins.last_trade = r.opt_i64()?;
        }
        for a in &mut e.accounts[..na] {
            a.blocked = r.bool()?;
            a.open_orders = r.u32()?;
            a.open_buy_cash = r.i64()?;
            a.position_cost_cash = r.i64()?;
        }
        // Account-major: rows of the configured width, of which the
        // snapshot fills the first `ni`.
        let width = e.instruments.len();
        let rows = e.acct_inst.chunks_mut(width).take(na);
        for ai in rows.flat_map(|row| &mut row[..ni]) {
            ai.open_buy_lots = r.u64()?;
            ai.open_sell_lots = r.u64()?;
            let p = &mut ai.pos;
            p.net_qty = r.i64()?;
            p.open_cost = r.i64()?;
            p.realized = r.i64()?;
            p.bought_qty = r.u64()?;
            p.sold_qty = r.u64()?;
        }
        let slots = r.u32()? as usize;
        // Bound allocation by what the input can actually hold (>= 5 bytes per slot).
        if slots > r.remaining() / 5 {
            return Err(DecodeError::Truncated.into());
        }
        let inconsistent = |m: String| Err(SnapshotError::Inconsistent(m));
        for slot in 0..slots {
            let g = r.u32()?;
            let mut o = Order::EMPTY;
            if r.bool()? {
                o = read_order(&mut r)?;
                if o.instrument as usize >= ni || o.account as usize >= na {
                    return inconsistent(format!("order in slot {slot} has unknown ids"));
                }
                o.owner = match owners(o.owner) {
                    Some(owner) => owner,
                    None => {
                        return Err(SnapshotError::ConfigMismatch(format!(
                        "order {} belongs to session {} of the snapshot, which is not configured",
                        o.id, o.owner
                    )))
                    }
                };
                if o.id != ((g as u64) << 32) | slot as u64 || !sane(&o) {
                    return inconsistent(format!("order in slot {slot} malformed"));
                }
                e.slab.live += 1;
            }
            e.slab.orders.push(o);
            e.slab.gens.push(g);
        }
        let nfree = r.u32()? as usize;
        if nfree > slots {
            return inconsistent("free list longer than slab".into());
        }
        let mut listed = vec![false; slots];
        for _ in 0..nfree {
            let f = r.u32()?;
            if f as usize >= slots || e.slab.orders[f as usize].state != OrderState::Free {
                return inconsistent(format!("free list names slot {f} which is in use"));
            }
            if std::mem::replace(&mut listed[f as usize], true) {
                return inconsistent(format!("free list names slot {f} twice"));
            }
            e.slab.push_free(f);
        }
        if nfree + e.slab.live as usize != slots {
            return inconsistent("free list and live orders do not cover the slab".into());
        }
        for i in 0..ni {
            for side in [Side::Buy, Side::Sell] {
                let levels = r.u32()?;
                for _ in 0..levels {
                    let n = r.u32()?;
                    for _ in 0..n {
                        let s = r.u32()?;
                        let ok = e.slab.orders.get(s as usize).is_some_and(|o| {
                            o.state == OrderState::Resting
                                && o.instrument as usize == i
                                && o.side == side
                                && o.level == crate::engine::order::NIL
                        });
                        if !ok {
                            return inconsistent(format!("queue names bad slot {s}"));
                        }
                        e.instruments[i].book.push_back(&mut e.slab, s);
                    }
                }
            }
        }
        r.finish()?;
        for slot in 0..slots as u32 {
            let o = *e.slab.get(slot);
            if o.state == OrderState::Resting && o.level == crate::engine::order::NIL {
                return inconsistent(format!("resting order {} is in no queue", o.id));
            }
            if o.state == OrderState::Stop {
                let ins = &mut e.instruments[o.instrument as usize];
                match o.side {
                    Side::Buy => ins.buy_stops.insert((o.stop_price, o.seq), slot),
                    Side::Sell => ins.sell_stops.insert((-o.stop_price, o.seq), slot),
                };
            }
            if o.state != OrderState::Free && o.tif == Tif::Gtd {
                e.expiries.insert((o.expire_ts_ns, o.id));
            }
        }
        e.check_invariants().map_err(SnapshotError::Inconsistent)
    }
}

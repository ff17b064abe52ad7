//! Property tests: the engine against a deliberately simple reference matcher
//! (one sorted Vec per side, FOK by trial-and-rollback on a clone, level
//! events by diffing aggregates), over random flows of every command type.
//! Also: codec round trips and replay determinism through snapshots.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::engine::codec::{decode_command, encode_command};
use crate::engine::tests::{check_after, Seen};
use crate::engine::*;

const VENUE: &str = r#"
[engine]
snapshot_every = 0
max_orders = 100000

[[instruments]]
symbol = "TST"
tick_size = "0.01"
price_band_pct = "0.5"
reference_price = "100.00"

[[instruments]]
symbol = "NOB"
tick_size = "1"

[[accounts]]
name = "A"
self_trade = "cancel-aggressor"
limits = { max_order_qty = "1000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000" }
[[accounts]]
name = "B"
self_trade = "allow"
limits = { max_order_qty = "1000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000" }
[[accounts]]
name = "C"
self_trade = "cancel-resting"
limits = { max_order_qty = "1000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000" }
[[accounts]]
name = "D"
self_trade = "cancel-both"
limits = { max_order_qty = "1000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000" }
[[accounts]]
name = "L"
self_trade = "cancel-aggressor"
limits = { max_order_qty = "8", max_order_notional = "1000000000", max_open_orders = 3, credit_limit = "1000000000", max_position = "12" }
"#;

const N_ACC: u32 = 5;
const STP: [StpMode; 5] = [
    StpMode::CancelAggressor,
    StpMode::Allow,
    StpMode::CancelResting,
    StpMode::CancelBoth,
    StpMode::CancelAggressor,
];
const LIMITS: [(u64, u32, i64); 5] = [
    (1000, 1000, 1_000_000),
    (1000, 1000, 1_000_000),
    (1000, 1000, 1_000_000),
    (1000, 1000, 1_000_000),
    (8, 3, 12),
];
/// TST band: 0.5% around 10_000 ticks.
const BAND: (Ticks, Ticks) = (9_950, 10_050);

// ------------------------------------------------------------------ reference matcher

#[derive(Debug, Clone)]
struct ROrder {
    handle: usize,
    cref: u64,
    account: u32,
    inst: u32,
    side: Side,
    ord_type: OrdType,
    tif: Tif,
    price: Ticks,
    stop: Ticks,
    qty: u64,
    cum: u64,
    floor: u64,
    visible: u64,
    post_only: bool,
    expire: u64,
    seq: u64,
    is_stop: bool,
}

impl ROrder {
    fn leaves(&self) -> u64 {
        self.qty - self.cum
    }
}

/// Normalised event for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum N {
    Accepted(u64, u64),
    Rejected(u64, String),
    Trade(u64, u64, Ticks, u64, u64, u64),
    Cancelled(u64, String, u64),
    Replaced(u64, u64, u64, Ticks, u64),
    CxlRej(u64, String),
    RplRej(u64, String),
    Expired(u64, u64),
    Triggered(u64),
    MassDone(u64, u32),
    Level(u32, Side, Ticks, u64, u32),
    Status(u32, bool),
    Account(u32, bool),
}

#[derive(Debug, Clone, Default)]
struct Reference {
    /// Resting orders per (instrument, side), kept sorted best first.
    books: BTreeMap<(u32, Side), Vec<ROrder>>,
    stops: Vec<ROrder>,
    seq: u64,
    now: u64,
    last: [Option<Ticks>; 2],
    halted: [bool; 2],
    blocked: [bool; N_ACC as usize],
    net: BTreeMap<(u32, u32), i64>,
    ev: Vec<N>,
}

fn crosses(side: Side, limit: Ticks, price: Ticks) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

impl Reference {
    fn side(&mut self, inst: u32, side: Side) -> &mut Vec<ROrder> {
        self.books.entry((inst, side)).or_default()
    }

    fn sort(&mut self) {
        for ((_, side), v) in self.books.iter_mut() {
            match side {
                Side::Buy => v.sort_by_key(|o| (-o.price, o.seq)),
                Side::Sell => v.sort_by_key(|o| (o.price, o.seq)),
            }
        }
    }

    fn levels(&self) -> BTreeMap<(u32, Side, Ticks), (u64, u32)> {
        let mut m = BTreeMap::new();
        for ((inst, side), v) in &self.books {
            for o in v {
                let e = m.entry((*inst, *side, o.price)).or_insert((0, 0));
                e.0 += o.visible;
                e.1 += 1;
            }
        }
        m
    }

    fn live(&self) -> impl Iterator<Item = &ROrder> {
        self.books.values().flatten().chain(self.stops.iter())
    }

    fn all_live(&self) -> Vec<ROrder> {
        let mut v: Vec<ROrder> = self.books.values().flatten().cloned().collect();
        v.extend(self.stops.iter().cloned());
        v
    }

    fn find(&self, handle: usize) -> Option<ROrder> {
        self.live().find(|o| o.handle == handle).cloned()
    }

    fn remove(&mut self, handle: usize) -> Option<ROrder> {
        for v in self.books.values_mut() {
            if let Some(i) = v.iter().position(|o| o.handle == handle) {
                return Some(v.remove(i));
            }
        }
        let i = self.stops.iter().position(|o| o.handle == handle)?;
        Some(self.stops.remove(i))
    }

    fn open_orders(&self, account: u32) -> u32 {
        self.live().filter(|o| o.account == account).count() as u32
    }

    fn open_lots(&self, account: u32, inst: u32, side: Side, except: usize) -> u64 {
        self.live()
            .filter(|o| {
                o.account == account && o.inst == inst && o.side == side && o.handle != except
            })
            .map(|o| o.leaves())
            .sum()
    }

    fn band(&self, inst: u32) -> Option<(Ticks, Ticks)> {
        (inst == 0).then_some(BAND)
    }

    fn expire_due(&mut self) {
        let now = self.now;
        let due: Vec<usize> = self
            .live()
            .filter(|o| o.tif == Tif::Gtd && o.expire <= now)
            .map(|o| o.handle)
            .collect();
        for h in due {
            let o = self.remove(h).unwrap();
            self.ev.push(N::Expired(o.cref, o.cum));
        }
    }

    fn risk(&self, o: &ROrder, old_leaves: u64, new_order: bool) -> Option<RejectReason> {
        let (max_qty, max_open, max_pos) = LIMITS[o.account as usize];
        if o.qty > max_qty {
            return Some(RejectReason::MaxOrderQty);
        }
        if new_order && self.open_orders(o.account) >= max_open {
            return Some(RejectReason::MaxOpenOrders);
        }
        let net = *self.net.get(&(o.account, o.inst)).unwrap_or(&0);
        let open = self.open_lots(o.account, o.inst, o.side, o.handle) as i64;
        let _ = old_leaves;
        let worst = o.side.sign() * net + open + o.leaves() as i64;
        (worst > max_pos).then_some(RejectReason::MaxPosition)
    }

    fn new_order(&mut self, mut o: ROrder) {
        let reject =
            |me: &mut Self, r: RejectReason| me.ev.push(N::Rejected(o.cref, format!("{r:?}")));
        if o.tif == Tif::Gtd && o.expire <= self.now {
            return reject(self, RejectReason::AlreadyExpired);
        }
        if self.blocked[o.account as usize] {
            return reject(self, RejectReason::AccountBlocked);
        }
        if self.halted[o.inst as usize] {
            return reject(self, RejectReason::InstrumentHalted);
        }
        if let Some((lo, hi)) = self.band(o.inst) {
            let has_price = matches!(o.ord_type, OrdType::Limit | OrdType::StopLimit);
            let is_stop = matches!(o.ord_type, OrdType::Stop | OrdType::StopLimit);
            if (has_price && (o.price < lo || o.price > hi))
                || (is_stop && (o.stop < lo || o.stop > hi))
            {
                return reject(self, RejectReason::PriceBand);
            }
        }
        if o.post_only {
            let opp = o.side.opposite();
            if let Some(best) = self.side(o.inst, opp).first() {
                if crosses(o.side, o.price, best.price) {
                    return reject(self, RejectReason::WouldTakeLiquidity);
                }
            }
        }
        if let Some(r) = self.risk(&o, 0, true) {
            return reject(self, r);
        }
        self.seq += 1;
        o.seq = self.seq;
        self.ev.push(N::Accepted(o.cref, o.qty));
        if o.is_stop {
            self.stops.push(o);
        } else {
            self.execute(o);
        }
        self.run_stops(0);
        self.run_stops(1);
    }

    fn execute(&mut self, o: ROrder) {
        let market = matches!(o.ord_type, OrdType::Market | OrdType::Stop);
        let limit = if market {
            match (o.side, self.band(o.inst)) {
                (Side::Buy, Some(b)) => b.1,
                (Side::Sell, Some(b)) => b.0,
                (Side::Buy, None) => Ticks::MAX,
                (Side::Sell, None) => Ticks::MIN,
            }
        } else {
            o.price
        };
        if o.tif == Tif::Fok {
            // All or nothing: try on a copy, keep it only if the order filled completely.
            let mut trial = self.clone();
            let mut t = o.clone();
            trial.ev.clear();
            trial.match_taker(&mut t, limit);
            if t.leaves() == 0 {
                let mut ev = std::mem::take(&mut self.ev);
                ev.append(&mut trial.ev);
                *self = trial;
                self.ev = ev;
            } else {
                self.ev.push(N::Cancelled(o.cref, "FokUnfilled".into(), 0));
            }
            return;
        }
        let mut t = o;
        let end = self.match_taker(&mut t, limit);
        if t.leaves() == 0 {
            return;
        }
        let reason = match end {
            "stp" => "SelfTrade",
            _ if !market && matches!(t.tif, Tif::Day | Tif::Gtc | Tif::Gtd) => {
                t.visible = if t.floor == 0 {
                    t.leaves()
                } else {
                    t.floor.min(t.leaves())
                };
                self.side(t.inst, t.side).push(t);
                self.sort();
                return;
            }
            _ if !market => "IocRemainder",
            "nocross" => "PriceBand",
            _ => "MarketNoLiquidity",
        };
        self.ev.push(N::Cancelled(t.cref, reason.into(), t.cum));
    }

    fn match_taker(&mut self, t: &mut ROrder, limit: Ticks) -> &'static str {
        let stp = STP[t.account as usize];
        loop {
            if t.leaves() == 0 {
                return "filled";
            }
            self.sort();
            let opp = t.side.opposite();
            let inst = t.inst;
            let Some(m) = self.side(inst, opp).first().cloned() else {
                return "empty";
            };
            if !crosses(t.side, limit, m.price) {
                return "nocross";
            }
            if m.account == t.account && stp != StpMode::Allow {
                if stp != StpMode::CancelAggressor {
                    self.side(inst, opp).remove(0);
                    self.ev
                        .push(N::Cancelled(m.cref, "SelfTrade".into(), m.cum));
                }
                if stp == StpMode::CancelResting {
                    continue;
                }
                return "stp";
            }
            let q = t.leaves().min(m.visible);
            t.cum += q;
            let book = self.side(inst, opp);
            let mk = &mut book[0];
            mk.cum += q;
            mk.visible -= q;
            let mk = mk.clone();
            self.ev.push(N::Trade(
                mk.cref,
                t.cref,
                m.price,
                q,
                mk.leaves(),
                t.leaves(),
            ));
            *self.net.entry((mk.account, inst)).or_default() += mk.side.sign() * q as i64;
            *self.net.entry((t.account, inst)).or_default() += t.side.sign() * q as i64;
            self.last[inst as usize] = Some(m.price);
            if mk.visible == 0 {
                if mk.leaves() == 0 {
                    self.side(inst, opp).remove(0);
                } else {
                    self.seq += 1;
                    let seq = self.seq;
                    let book = self.side(inst, opp);
                    book[0].visible = book[0].floor.min(book[0].leaves());
                    book[0].seq = seq;
                }
            }
        }
    }

    fn run_stops(&mut self, inst: u32) {
        loop {
            let Some(last) = self.last[inst as usize] else {
                return;
            };
            let buy = self
                .stops
                .iter()
                .filter(|o| o.inst == inst && o.side == Side::Buy && o.stop <= last)
                .min_by_key(|o| (o.stop, o.seq))
                .cloned();
            let sell = self
                .stops
                .iter()
                .filter(|o| o.inst == inst && o.side == Side::Sell && o.stop >= last)
                .min_by_key(|o| (-o.stop, o.seq))
                .cloned();
            let pick = match (buy, sell) {
                (Some(b), Some(s)) => {
                    if b.seq < s.seq {
                        b
                    } else {
                        s
                    }
                }
                (Some(b), None) => b,
                (None, Some(s)) => s,
                (None, None) => return,
            };
            let mut o = self.remove(pick.handle).unwrap();
            self.seq += 1;
            o.seq = self.seq;
            o.is_stop = false;
            self.ev.push(N::Triggered(o.cref));
            self.execute(o);
        }
    }

    fn cancel(&mut self, handle: Option<usize>, account: u32, req: u64) {
        match handle
            .and_then(|h| self.find(h))
            .filter(|o| o.account == account)
        {
            Some(o) => {
                self.remove(o.handle);
                self.ev.push(N::Cancelled(o.cref, "User".into(), o.cum));
            }
            None => self.ev.push(N::CxlRej(req, "UnknownOrder".into())),
        }
    }

    fn replace(
        &mut self,
        handle: Option<usize>,
        account: u32,
        req: u64,
        qty: u64,
        price: Ticks,
        stop: Ticks,
    ) {
        let rej = |me: &mut Self, r: &str| me.ev.push(N::RplRej(req, r.into()));
        let Some(o) = handle
            .and_then(|h| self.find(h))
            .filter(|o| o.account == account)
        else {
            return rej(self, "UnknownOrder");
        };
        if self.halted[o.inst as usize] {
            return rej(self, "InstrumentHalted");
        }
        if qty <= o.cum {
            return rej(self, "QtyBelowFilled");
        }
        let has_price = matches!(o.ord_type, OrdType::Limit | OrdType::StopLimit);
        let new_price = if has_price { price } else { 0 };
        let new_stop = if o.is_stop { stop } else { o.stop };
        if let Some((lo, hi)) = self.band(o.inst) {
            if (has_price && (new_price < lo || new_price > hi))
                || (o.is_stop && (new_stop < lo || new_stop > hi))
            {
                return rej(self, "Risk(PriceBand)");
            }
        }
        if o.post_only {
            let opp = o.side.opposite();
            if let Some(best) = self.side(o.inst, opp).first() {
                if crosses(o.side, new_price, best.price) {
                    return rej(self, "Risk(WouldTakeLiquidity)");
                }
            }
        }
        let mut n = o.clone();
        n.qty = qty;
        n.price = new_price;
        n.stop = new_stop;
        if let Some(r) = self.risk(&n, o.leaves(), false) {
            return rej(self, &format!("Risk({r:?})"));
        }
        n.cref = req;
        let keeps = qty <= o.qty && new_price == o.price && new_stop == o.stop;
        self.remove(o.handle);
        self.ev
            .push(N::Replaced(req, o.cref, qty, new_price, n.leaves()));
        if !keeps {
            self.seq += 1;
            n.seq = self.seq;
        }
        if n.is_stop {
            self.stops.push(n);
        } else if keeps {
            n.visible = n.visible.min(n.leaves());
            self.side(n.inst, n.side).push(n);
            self.sort();
        } else {
            self.execute(n);
        }
        self.run_stops(o.inst);
    }

    fn bulk_cancel(&mut self, reason: &str, pred: impl Fn(&ROrder) -> bool) -> u32 {
        let hs: Vec<usize> = self
            .all_live()
            .iter()
            .filter(|o| pred(o))
            .map(|o| o.handle)
            .collect();
        for &h in &hs {
            let o = self.remove(h).unwrap();
            self.ev.push(N::Cancelled(o.cref, reason.into(), o.cum));
        }
        hs.len() as u32
    }
}

// ------------------------------------------------------------------ generated flows

#[derive(Debug, Clone)]
enum G {
    New {
        account: u32,
        inst: u32,
        side: Side,
        kind: u8,
        tif: u8,
        price: Ticks,
        stop: Ticks,
        qty: u64,
        floor: u64,
        post_only: bool,
        expire_in: u64,
    },
    Cancel {
        pick: usize,
        wrong_account: bool,
    },
    Replace {
        pick: usize,
        qty: u64,
        dprice: Ticks,
        dstop: Ticks,
    },
    Mass {
        account: Option<u32>,
        inst: Option<u32>,
        side: Option<Side>,
    },
    Halt(u32, bool),
    Block(u32, bool, bool),
    Eod,
    Tick(u64),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn gen_cmd() -> impl Strategy<Value = G> {
    let new = (
        (
            0..N_ACC,
            prop_oneof![9 => Just(0u32), 1 => Just(1u32)],
            side(),
            0u8..10,
            0u8..10,
        ),
        (
            9_990i64..10_011,
            -12i64..12,
            1u64..12,
            prop_oneof![4 => Just(0u64), 1 => 1u64..4],
        ),
        (any::<bool>(), 0u8..10, 0u64..40),
    )
        .prop_map(
            |(
                (account, inst, side, kind, tif),
                (price, dstop, qty, floor),
                (po, po_roll, expire_in),
            )| G::New {
                account,
                inst,
                side,
                kind,
                tif,
                price,
                stop: price + dstop,
                qty,
                floor,
                post_only: po && po_roll < 2,
                expire_in,
            },
        );
    prop_oneof![
        12 => new,
        3 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(pick, wrong_account)| G::Cancel { pick, wrong_account }),
        3 => (any::<usize>(), 1u64..14, -6i64..7, -6i64..7).prop_map(|(pick, qty, dprice, dstop)| G::Replace { pick, qty, dprice, dstop }),
        1 => (prop::option::of(0..N_ACC), prop::option::of(0u32..2), prop::option::of(side()))
            .prop_map(|(account, inst, side)| G::Mass { account, inst, side }),
        1 => (0u32..2, prop::bool::weighted(0.6)).prop_map(|(i, resume)| G::Halt(i, resume)),
        1 => (0..N_ACC, prop::bool::weighted(0.4), any::<bool>()).prop_map(|(a, b, c)| G::Block(a, b, c)),
        1 => Just(G::Eod),
        1 => (1u64..30).prop_map(G::Tick),
    ]
}

/// Normalises engine events, resolving nothing: client refs are the identity. `trades` are
/// the command's trades in full (maker and taker after each fill, from `check_after`).
fn normalise(ev: &[Event], trades: &[(OrderInfo, OrderInfo)]) -> Vec<N> {
    let mut trades = trades.iter();
    ev.iter()
        .map(|e| match *e {
            Event::Accepted { order } => N::Accepted(order.client_ref, order.leaves_qty),
            Event::Rejected { order, reason, .. } => {
                N::Rejected(order.client_ref, format!("{reason:?}"))
            }
            Event::Trade { price, qty, .. } => {
                let (maker, taker) = trades.next().expect("every trade checked in full");
                N::Trade(
                    maker.client_ref,
                    taker.client_ref,
                    price,
                    qty,
                    maker.leaves_qty,
                    taker.leaves_qty,
                )
            }
            Event::Cancelled { order, reason, .. } => {
                N::Cancelled(order.client_ref, format!("{reason:?}"), order.cum_qty)
            }
            Event::Replaced {
                order,
                orig_client_ref,
            } => N::Replaced(
                order.client_ref,
                orig_client_ref,
                order.qty,
                order.price,
                order.leaves_qty,
            ),
            Event::CancelRejected {
                request_ref,
                reason,
                ..
            } => N::CxlRej(request_ref, format!("{reason:?}")),
            Event::ReplaceRejected {
                request_ref,
                reason,
                ..
            } => N::RplRej(request_ref, format!("{reason:?}")),
            Event::Expired { order } => N::Expired(order.client_ref, order.cum_qty),
            Event::Triggered { order } => N::Triggered(order.client_ref),
            Event::MassCancelDone {
                request_ref,
                cancelled,
                ..
            } => N::MassDone(request_ref, cancelled),
            Event::BookLevelChanged {
                instrument,
                side,
                price,
                qty,
                order_count,
            } => N::Level(instrument, side, price, qty, order_count),
            Event::InstrumentStatus { instrument, halted } => N::Status(instrument, halted),
            Event::AccountStatus { account, blocked } => N::Account(account, blocked),
            Event::ReferencePrice { .. } => N::Status(u32::MAX, false),
        })
        .collect()
}

/// Bulk operations (expiry, mass cancel, kill switch) may report in any fixed order: sort runs.
fn canonical(mut v: Vec<N>) -> Vec<N> {
    let bulk = |n: &N| match n {
        N::Expired(..) => true,
        N::Cancelled(_, r, _) => r == "MassCancel" || r == "KillSwitch",
        _ => false,
    };
    let mut i = 0;
    while i < v.len() {
        if bulk(&v[i]) {
            let j = (i..v.len()).find(|&j| !bulk(&v[j])).unwrap_or(v.len());
            v[i..j].sort();
            i = j;
        } else {
            i += 1;
        }
    }
    v
}

/// Runs a flow through engine and reference; returns (commands, engine events) for replay tests.
fn run_flow(flow: &[G]) -> Result<(Vec<Command>, Vec<Event>), TestCaseError> {
    let cfg = VenueConfig::from_toml_str(VENUE).unwrap();
    let mut engine = Engine::new(&cfg).unwrap();
    let mut seen = Seen::default();
    let mut reference = Reference::default();
    // handle -> (engine order id, account)
    let mut handles: Vec<(OrderId, u32)> = Vec::new();
    let mut cmds = Vec::new();
    let mut all_events = Vec::new();
    let mut out = Vec::new();
    let mut next_ref = 1u64;
    for (step, g) in flow.iter().enumerate() {
        reference.now += 1 + (step as u64 % 3);
        let ts = reference.now;
        reference.ev.clear();
        let levels_before = reference.levels();
        let cmd = match g {
            G::New {
                account,
                inst,
                side,
                kind,
                tif,
                price,
                stop,
                qty,
                floor,
                post_only,
                expire_in,
            } => {
                let ord_type = match kind {
                    0..=5 => OrdType::Limit,
                    6 => OrdType::Market,
                    7 => OrdType::Stop,
                    _ => OrdType::StopLimit,
                };
                let mut tif = match tif {
                    0..=2 => Tif::Gtc,
                    3..=4 => Tif::Day,
                    5 => Tif::Gtd,
                    6..=7 => Tif::Ioc,
                    _ => Tif::Fok,
                };
                if ord_type == OrdType::Market && matches!(tif, Tif::Gtc | Tif::Gtd) {
                    tif = Tif::Day;
                }
                let post_only = *post_only
                    && ord_type == OrdType::Limit
                    && matches!(tif, Tif::Gtc | Tif::Day | Tif::Gtd);
                let floor = if ord_type.has_price() && tif.rests() {
                    *floor
                } else {
                    0
                };
                let cref = next_ref;
                next_ref += 1;
                let handle = handles.len();
                let n = NewOrder {
                    ts_ns: ts,
                    owner: *account,
                    account: *account,
                    instrument: *inst,
                    side: *side,
                    ord_type,
                    price: if ord_type.has_price() { *price } else { 0 },
                    stop_price: if ord_type.is_stop() { *stop } else { 0 },
                    qty: *qty,
                    tif,
                    expire_ts_ns: if tif == Tif::Gtd { ts + expire_in } else { 0 },
                    post_only,
                    max_floor: floor,
                    client_ref: cref,
                };
                reference.expire_due();
                reference.new_order(ROrder {
                    handle,
                    cref,
                    account: *account,
                    inst: *inst,
                    side: *side,
                    ord_type,
                    tif,
                    price: n.price,
                    stop: n.stop_price,
                    qty: *qty,
                    cum: 0,
                    floor: if floor >= *qty { 0 } else { floor },
                    visible: 0,
                    post_only,
                    expire: n.expire_ts_ns,
                    seq: 0,
                    is_stop: ord_type.is_stop(),
                });
                handles.push((0, *account));
                Command::NewOrder(n)
            }
            G::Cancel {
                pick,
                wrong_account,
            } => {
                let req = next_ref;
                next_ref += 1;
                let h = (!handles.is_empty()).then(|| pick % handles.len());
                let (id, acc) = h.map_or((12345, 0), |h| handles[h]);
                let account = if *wrong_account {
                    (acc + 1) % N_ACC
                } else {
                    acc
                };
                reference.expire_due();
                reference.cancel(h, account, req);
                Command::Cancel {
                    ts_ns: ts,
                    owner: account,
                    account,
                    order_id: id,
                    client_ref: req,
                }
            }
            G::Replace {
                pick,
                qty,
                dprice,
                dstop,
            } => {
                let req = next_ref;
                next_ref += 1;
                let h = (!handles.is_empty()).then(|| pick % handles.len());
                let (id, acc) = h.map_or((12345, 0), |h| handles[h]);
                reference.expire_due();
                let cur = h.and_then(|h| reference.find(h));
                let base_price =
                    cur.as_ref()
                        .map_or(10_000, |o| if o.price > 0 { o.price } else { 10_000 });
                let base_stop =
                    cur.as_ref()
                        .map_or(10_000, |o| if o.stop > 0 { o.stop } else { 10_000 });
                let (p, s) = (base_price + dprice, base_stop + dstop);
                reference.replace(h, acc, req, *qty, p, s);
                Command::Replace {
                    ts_ns: ts,
                    owner: acc,
                    account: acc,
                    order_id: id,
                    client_ref: req,
                    new_qty: *qty,
                    new_price: p,
                    new_stop_price: s,
                }
            }
            G::Mass {
                account,
                inst,
                side,
            } => {
                let req = next_ref;
                next_ref += 1;
                reference.expire_due();
                let (a, i, s) = (*account, *inst, *side);
                let n = reference.bulk_cancel("MassCancel", |o| {
                    a.is_none_or(|a| a == o.account)
                        && i.is_none_or(|i| i == o.inst)
                        && s.is_none_or(|s| s == o.side)
                });
                reference.ev.push(N::MassDone(req, n));
                Command::MassCancel {
                    ts_ns: ts,
                    owner: 0,
                    client_ref: req,
                    account: a,
                    instrument: i,
                    side: s,
                }
            }
            G::Halt(i, resume) => {
                reference.expire_due();
                reference.halted[*i as usize] = !resume;
                reference.ev.push(N::Status(*i, !resume));
                if *resume {
                    Command::Resume {
                        ts_ns: ts,
                        instrument: *i,
                    }
                } else {
                    Command::Halt {
                        ts_ns: ts,
                        instrument: *i,
                    }
                }
            }
            G::Block(a, blocked, cancel) => {
                reference.expire_due();
                reference.blocked[*a as usize] = *blocked;
                reference.ev.push(N::Account(*a, *blocked));
                if *cancel {
                    reference.bulk_cancel("KillSwitch", |o| o.account == *a);
                }
                Command::SetAccountBlocked {
                    ts_ns: ts,
                    account: *a,
                    blocked: *blocked,
                    cancel_open: *cancel,
                }
            }
            G::Eod => {
                reference.expire_due();
                let due: Vec<usize> = reference
                    .all_live()
                    .iter()
                    .filter(|o| o.tif == Tif::Day)
                    .map(|o| o.handle)
                    .collect();
                for h in due {
                    let o = reference.remove(h).unwrap();
                    reference.ev.push(N::Expired(o.cref, o.cum));
                }
                Command::EndOfDay { ts_ns: ts }
            }
            G::Tick(dt) => {
                reference.now += dt;
                reference.expire_due();
                Command::Tick {
                    ts_ns: reference.now,
                }
            }
        };
        cmds.push(cmd);
        out.clear();
        engine.apply(&cmd, &mut out);
        check_after_prop(&engine, &out, &mut seen)?;
        if let (Command::NewOrder(_), Some(Event::Accepted { order })) = (
            &cmd,
            out.iter().find(|e| matches!(e, Event::Accepted { .. })),
        ) {
            handles.last_mut().unwrap().0 = order.order_id;
        }
        // Level events: diff of the reference's aggregates, last, in (instrument, side, price) order.
        let mut want = reference.ev.clone();
        let after = reference.levels();
        let mut keys: Vec<_> = levels_before.keys().chain(after.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let b = levels_before.get(&k).copied().unwrap_or((0, 0));
            let a = after.get(&k).copied().unwrap_or((0, 0));
            if a != b {
                want.push(N::Level(k.0, k.1, k.2, a.0, a.1));
            }
        }
        let got = canonical(normalise(&out, &seen.trades));
        let want = canonical(want);
        prop_assert_eq!(&got, &want, "step {} command {:?}", step, cmd);
        prop_assert_eq!(
            engine_levels(&engine),
            after,
            "books differ after step {}",
            step
        );
        all_events.extend_from_slice(&out);
    }
    // Final books and positions agree.
    prop_assert_eq!(engine_levels(&engine), reference.levels());
    for a in 0..N_ACC {
        for i in 0..2 {
            let want = *reference.net.get(&(a, i)).unwrap_or(&0);
            prop_assert_eq!(engine.position(a, i).unwrap().position.net_qty, want);
        }
    }
    Ok((cmds, all_events))
}

/// The engine's books as aggregates, from its public depth API.
fn engine_levels(e: &Engine) -> BTreeMap<(u32, Side, Ticks), (u64, u32)> {
    let mut m = BTreeMap::new();
    for i in 0..2 {
        for side in [Side::Buy, Side::Sell] {
            for l in e.book(i).unwrap().levels_iter(side) {
                m.insert((i, side, l.price), (l.qty, l.order_count));
            }
        }
    }
    m
}

fn check_after_prop(e: &Engine, ev: &[Event], seen: &mut Seen) -> Result<(), TestCaseError> {
    check_after(e, ev, seen).map_err(|m| TestCaseError::fail(format!("invariant: {m}")))
}

/// Cases per property; the defaults add up to 10,000 flows checked against the reference.
/// `ENGINE_PROP_SCALE=10` runs ten times as many.
fn config(default: u32) -> ProptestConfig {
    let scale: u32 = std::env::var("ENGINE_PROP_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    ProptestConfig {
        cases: default * scale,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(4_000))]

    /// Engine == reference, short dense flows (most cases).
    #[test]
    fn engine_matches_reference_short(flow in prop::collection::vec(gen_cmd(), 1..40)) {
        run_flow(&flow)?;
    }

}

proptest! {
    #![proptest_config(config(1500))]
    /// Engine == reference, longer flows that build deeper books.
    #[test]
    fn engine_matches_reference_long(flow in prop::collection::vec(gen_cmd(), 40..160)) {
        run_flow(&flow)?;
    }

}

proptest! {
    #![proptest_config(config(2500))]
    /// Same flow twice, and via snapshot at a random point, gives identical events and state.
    #[test]
    fn replay_and_snapshot_are_deterministic(flow in prop::collection::vec(gen_cmd(), 1..80), cut in any::<prop::sample::Index>()) {
        let (cmds, events) = run_flow(&flow)?;
        let cfg = VenueConfig::from_toml_str(VENUE).unwrap();
        let mut replay = Engine::new(&cfg).unwrap();
        let mut out = Vec::new();
        let k = cut.index(cmds.len() + 1);
        for c in &cmds[..k] {
            replay.apply(c, &mut out);
        }
        let events_before_cut = out.len();
        let snap = replay.snapshot();
        let mut restored = Engine::restore(&cfg, &snap).unwrap();
        prop_assert_eq!(restored.snapshot(), snap.clone());
        for c in &cmds[k..] {
            replay.apply(c, &mut out);
        }
        prop_assert_eq!(&out, &events);
        let mut out2 = events[..events_before_cut].to_vec();
        for c in &cmds[k..] {
            restored.apply(c, &mut out2);
        }
        prop_assert_eq!(&out2, &events);
        prop_assert_eq!(restored.snapshot(), replay.snapshot());
    }

}

proptest! {
    #![proptest_config(config(2000))]
    /// Every command survives encode/decode; random bytes never panic the decoder.
    #[test]
    fn codec_round_trip(flow in prop::collection::vec(gen_cmd(), 1..30), junk in prop::collection::vec(any::<u8>(), 0..64)) {
        let (cmds, _) = run_flow(&flow)?;
        let mut buf = Vec::new();
        for c in &cmds {
            buf.clear();
            encode_command(c, &mut buf);
            prop_assert_eq!(decode_command(&buf).unwrap(), *c);
            prop_assert!(decode_command(&buf[..buf.len() - 1]).is_err());
        }
        let _ = decode_command(&junk);
    }
}

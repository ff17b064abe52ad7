//! The matching engine fed arbitrary command sequences: new orders of every
//! type, TIF and instruction, cancels, replaces, mass cancels, halts and
//! resumes, kill switches, reference prices, end of day and ticks, over a
//! small venue (a banded and an unbanded instrument, every STP mode, one
//! tightly limited account, a small order capacity).
//!
//! After every command it checks `Engine::check_invariants` and what the
//! events promise, against a model built from the events alone:
//!
//! 1. every Trade has qty > 0, maker and taker on opposite sides, the taker's
//!    side as aggressor, the maker's price, a price within the taker's limit
//!    (limit types) or the current band's far edge (market types, banded
//!    instrument: a buy pays at most its top, a sell gets at least its low),
//!    and a price within the band that held when the maker order was
//!    accepted or last replaced; trade ids count up by one;
//! 2. cum_qty grows by exactly each fill and never exceeds qty,
//!    cum_qty + leaves_qty == qty on every event of a working order, and a
//!    cancelled or expired order has leaves_qty 0 and keeps its cum_qty;
//! 3. an order that was cancelled, expired or fully filled never appears in
//!    an event again (cancelling it is refused as unknown), and
//!    `Engine::order` no longer knows it; live orders are known with the
//!    same cum_qty, and `order_count` equals the number of live orders;
//! 4. a new order is never accepted for a blocked account or on a halted
//!    instrument, and nothing trades on a halted instrument;
//! 5. positions equal the sum of fills (replayed through `Position`), net
//!    to zero per instrument, and the limited account never holds more than
//!    its max_position nor more than max_open_orders working orders;
//! 6. every command survives the journal codec unchanged, and replaying all
//!    commands on a fresh engine reproduces the same events.

#![no_main]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use fixgw::engine::codec::{decode_command, encode_command};
use fixgw::engine::{
    Command, Engine, Event, NewOrder, OrdType, OrderId, OrderInfo, OrderStates, Position, Side,
    Ticks, Tif, VenueConfig,
};

const VENUE: &str = r#"
[engine]
snapshot_every = 0
max_orders = 40

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
limits = { max_order_qty = "8", max_order_notional = "1000", max_open_orders = 3, credit_limit = "2000", max_position = "12" }
"#;

const N_ACC: u32 = 5;
const N_INST: u32 = 2;
/// Account L and its limits (lots; both instruments have lot size 1).
const L: u32 = 4;
const L_MAX_POSITION: i64 = 12;
const L_MAX_OPEN: usize = 3;

fn config() -> &'static VenueConfig {
    static CFG: OnceLock<VenueConfig> = OnceLock::new();
    CFG.get_or_init(|| VenueConfig::from_toml_str(VENUE).expect("venue config"))
}

// ------------------------------------------------------------------ input

#[derive(Arbitrary, Debug)]
enum Op {
    New(New),
    Cancel {
        account: u8,
        order: OrderSel,
        r: u8,
    },
    Replace {
        account: u8,
        order: OrderSel,
        qty: u16,
        price: Price,
        stop: Price,
    },
    MassCancel {
        account: Option<u8>,
        instrument: Option<u8>,
        side: Option<bool>,
    },
    Halt(u8),
    Resume(u8),
    Block {
        account: u8,
        blocked: bool,
        cancel_open: bool,
    },
    Reference {
        instrument: u8,
        price: Price,
    },
    EndOfDay,
    Tick,
    /// Time passes before the next command, ms.
    Advance(u16),
    /// The next command carries a timestamp this far in the past, ms.
    Rewind(u8),
}

#[derive(Arbitrary, Debug)]
struct New {
    account: u8,
    instrument: u8,
    buy: bool,
    ord_type: u8,
    tif: u8,
    price: Price,
    stop: Price,
    qty: u16,
    expire_ms: Option<u16>,
    post_only: bool,
    max_floor: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Price {
    /// Around the TST reference (10_000), mostly inside the 0.5% band.
    Near(u8),
    Any(i64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OrderSel {
    /// Index into the ids of every order accepted so far (live or not).
    Known(u8),
    Raw(u64),
}

fn price(p: Price) -> Ticks {
    match p {
        Price::Near(b) => 9_940 + Ticks::from(b % 120),
        Price::Any(v) => v,
    }
}

// ------------------------------------------------------------------ model

#[derive(Debug, Clone, Copy)]
struct Tracked {
    qty: u64,
    cum: u64,
    account: u32,
}

#[derive(Default)]
struct Model {
    live: HashMap<OrderId, Tracked>,
    dead: HashSet<OrderId>,
    known: Vec<OrderId>,
    positions: BTreeMap<(u32, u32), Position>,
    trades: u64,
    /// Band in force at the accept / last replace of every order (kept after it dies).
    bands: HashMap<OrderId, Option<(Ticks, Ticks)>>,
    /// Every working order's state from the events, to expand a Trade (which
    /// names its orders by id) into both orders after the fill.
    states: OrderStates,
}

fn check_info(o: &OrderInfo, what: &str) {
    assert!(
        o.cum_qty <= o.qty && o.cum_qty + o.leaves_qty == o.qty,
        "{what}: cum/leaves wrong on {o:?}"
    );
}

impl Model {
    fn not_dead(&self, id: OrderId, ev: &Event) {
        assert!(!self.dead.contains(&id), "dead order {id} in {ev:?}");
    }

    fn on_event(
        &mut self,
        ev: &Event,
        band_before: &[Option<(Ticks, Ticks)>],
        halted_before: &[bool],
        blocked_before: &[bool],
    ) {
        match ev {
            Event::Accepted { order } => {
                check_info(order, "accepted");
                assert_ne!(order.order_id, 0, "accepted with id 0");
                assert!(
                    !self.live.contains_key(&order.order_id)
                        && !self.dead.contains(&order.order_id),
                    "order id {} reused",
                    order.order_id
                );
                assert!(
                    !blocked_before[order.account as usize],
                    "accepted for a blocked account: {ev:?}"
                );
                assert!(
                    !halted_before[order.instrument as usize],
                    "accepted on a halted instrument: {ev:?}"
                );
                let band = band_before[order.instrument as usize];
                if order.ord_type.has_price() {
                    if let Some((lo, hi)) = band {
                        assert!(
                            lo <= order.price && order.price <= hi,
                            "accepted outside band: {ev:?}"
                        );
                    }
                }
                assert_eq!(order.cum_qty, 0);
                self.live.insert(
                    order.order_id,
                    Tracked {
                        qty: order.qty,
                        cum: 0,
                        account: order.account,
                    },
                );
                self.known.push(order.order_id);
                self.bands.insert(order.order_id, band);
            }
            Event::Rejected { order, .. } => {
                assert_eq!(order.order_id, 0, "rejected order has an id: {ev:?}");
            }
            Event::Trade {
                trade_id,
                instrument,
                price,
                qty,
                aggressor,
                maker_order_id,
                taker_order_id,
            } => {
                let after = |id: &OrderId| {
                    self.states
                        .after_fill(*id, *qty, *price)
                        .unwrap_or_else(|| panic!("trade of an unknown order: {ev:?}"))
                };
                let (maker, taker) = (&after(maker_order_id), &after(taker_order_id));
                self.trades += 1;
                assert_eq!(*trade_id, self.trades, "trade ids not consecutive");
                assert!(*qty > 0, "trade of zero: {ev:?}");
                assert!(
                    maker.side != taker.side && *aggressor == taker.side,
                    "sides of {ev:?}"
                );
                assert_eq!(
                    *price, maker.price,
                    "trade not at the maker's price: {ev:?}"
                );
                assert!(
                    maker.instrument == *instrument && taker.instrument == *instrument,
                    "instrument of {ev:?}"
                );
                assert!(
                    !halted_before[*instrument as usize],
                    "trade on a halted instrument: {ev:?}"
                );
                let band = band_before[*instrument as usize];
                match taker.ord_type {
                    OrdType::Limit | OrdType::StopLimit => {
                        let ok = match taker.side {
                            Side::Buy => *price <= taker.price,
                            Side::Sell => *price >= taker.price,
                        };
                        assert!(ok, "trade beyond the taker's limit: {ev:?}");
                    }
                    // The band caps what a market order pays: its limit is
                    // the band's far edge. A maker the reference moved away
                    // from (an offer below the band) is a better price and
                    // trades, as it would with a limit taker.
                    OrdType::Market | OrdType::Stop => {
                        if let Some((lo, hi)) = band {
                            let ok = match taker.side {
                                Side::Buy => *price <= hi,
                                Side::Sell => *price >= lo,
                            };
                            assert!(ok, "market trade beyond the band: {ev:?}");
                        }
                    }
                }
                for o in [maker, taker] {
                    check_info(o, "trade");
                    self.not_dead(o.order_id, ev);
                    let t = self
                        .live
                        .get_mut(&o.order_id)
                        .unwrap_or_else(|| panic!("trade of an unknown order: {ev:?}"));
                    assert_eq!(o.cum_qty, t.cum + qty, "cum_qty of {o:?} after {t:?}");
                    assert_eq!(o.qty, t.qty, "qty changed by a trade: {ev:?}");
                    t.cum = o.cum_qty;
                    let pos = self.positions.entry((o.account, o.instrument)).or_default();
                    pos.apply_fill(o.side, *qty, *price);
                    if t.cum == t.qty {
                        self.live.remove(&o.order_id);
                        self.dead.insert(o.order_id);
                    }
                }
                if let Some(&Some((lo, hi))) = self.bands.get(&maker.order_id) {
                    assert!(
                        lo <= *price && *price <= hi,
                        "maker traded outside the band it rested in: {ev:?}"
                    );
                }
            }
            Event::Cancelled { order, .. } | Event::Expired { order } => {
                // The order is done: leaves_qty 0, whatever was filled.
                assert!(order.cum_qty < order.qty, "{ev:?}");
                assert_eq!(order.leaves_qty, 0, "{ev:?}");
                self.not_dead(order.order_id, ev);
                let t = self
                    .live
                    .remove(&order.order_id)
                    .unwrap_or_else(|| panic!("cancel of an unknown order: {ev:?}"));
                assert_eq!(order.cum_qty, t.cum, "cum_qty changed by a cancel: {ev:?}");
                self.dead.insert(order.order_id);
            }
            Event::Replaced { order, .. } => {
                check_info(order, "replace");
                self.not_dead(order.order_id, ev);
                let t = self
                    .live
                    .get_mut(&order.order_id)
                    .unwrap_or_else(|| panic!("replace of an unknown order: {ev:?}"));
                assert_eq!(order.cum_qty, t.cum, "cum_qty changed by a replace: {ev:?}");
                assert!(order.leaves_qty > 0, "replaced to nothing: {ev:?}");
                let band = band_before[order.instrument as usize];
                if order.ord_type.has_price() {
                    if let Some((lo, hi)) = band {
                        assert!(
                            lo <= order.price && order.price <= hi,
                            "replaced outside band: {ev:?}"
                        );
                    }
                }
                t.qty = order.qty;
                self.bands.insert(order.order_id, band);
            }
            Event::Triggered { order } => {
                check_info(order, "trigger");
                self.not_dead(order.order_id, ev);
                assert!(
                    self.live.contains_key(&order.order_id),
                    "trigger of unknown order: {ev:?}"
                );
            }
            _ => {}
        }
    }
}

fn run(ops: &[Op]) {
    let cfg = config();
    let mut engine = Engine::new(cfg).expect("engine");
    let mut model = Model::default();
    let mut now: u64 = 1_000_000_000;
    let mut rewind: u64 = 0;
    let mut next_ref = 1u64;
    let mut commands = Vec::new();
    let mut all_events = Vec::new();
    let mut out = Vec::new();
    for op in ops.iter().take(400) {
        let ts = now.saturating_sub(std::mem::take(&mut rewind));
        next_ref += 1;
        let pick = |model: &Model, sel: OrderSel| match sel {
            OrderSel::Known(i) if !model.known.is_empty() => {
                model.known[i as usize % model.known.len()]
            }
            OrderSel::Known(i) => u64::from(i),
            OrderSel::Raw(v) => v,
        };
        let cmd = match op {
            Op::New(n) => {
                let account = u32::from(n.account) % (N_ACC + 1);
                let instrument = u32::from(n.instrument) % (N_INST + 1);
                let ord_type = [
                    OrdType::Limit,
                    OrdType::Market,
                    OrdType::Stop,
                    OrdType::StopLimit,
                ][n.ord_type as usize % 4];
                let tif = [Tif::Day, Tif::Gtc, Tif::Ioc, Tif::Fok, Tif::Gtd][n.tif as usize % 5];
                Command::NewOrder(NewOrder {
                    ts_ns: ts,
                    owner: account + 100,
                    account,
                    instrument,
                    side: if n.buy { Side::Buy } else { Side::Sell },
                    ord_type,
                    price: price(n.price),
                    stop_price: price(n.stop),
                    qty: u64::from(n.qty % 1200),
                    tif,
                    expire_ts_ns: n.expire_ms.map_or(0, |ms| {
                        (now as i64 + (i64::from(ms) - 2_000) * 1_000_000).max(0) as u64
                    }),
                    post_only: n.post_only,
                    max_floor: u64::from(n.max_floor % 16),
                    client_ref: next_ref,
                })
            }
            Op::Cancel { account, order, r } => Command::Cancel {
                ts_ns: ts,
                owner: 1,
                account: u32::from(*account) % (N_ACC + 1),
                order_id: pick(&model, *order),
                client_ref: next_ref + u64::from(*r),
            },
            Op::Replace {
                account,
                order,
                qty,
                price: p,
                stop,
            } => Command::Replace {
                ts_ns: ts,
                owner: 1,
                account: u32::from(*account) % (N_ACC + 1),
                order_id: pick(&model, *order),
                client_ref: next_ref,
                new_qty: u64::from(*qty % 1200),
                new_price: price(*p),
                new_stop_price: price(*stop),
            },
            Op::MassCancel {
                account,
                instrument,
                side,
            } => Command::MassCancel {
                ts_ns: ts,
                owner: 1,
                client_ref: next_ref,
                account: account.map(|a| u32::from(a) % (N_ACC + 1)),
                instrument: instrument.map(|i| u32::from(i) % (N_INST + 1)),
                side: side.map(|b| if b { Side::Buy } else { Side::Sell }),
            },
            Op::Halt(i) => Command::Halt {
                ts_ns: ts,
                instrument: u32::from(*i) % (N_INST + 1),
            },
            Op::Resume(i) => Command::Resume {
                ts_ns: ts,
                instrument: u32::from(*i) % (N_INST + 1),
            },
            Op::Block {
                account,
                blocked,
                cancel_open,
            } => Command::SetAccountBlocked {
                ts_ns: ts,
                account: u32::from(*account) % (N_ACC + 1),
                blocked: *blocked,
                cancel_open: *cancel_open,
            },
            Op::Reference {
                instrument,
                price: p,
            } => Command::SetReferencePrice {
                ts_ns: ts,
                instrument: u32::from(*instrument) % (N_INST + 1),
                price: price(*p),
            },
            Op::EndOfDay => Command::EndOfDay { ts_ns: ts },
            Op::Tick => Command::Tick { ts_ns: ts },
            Op::Advance(ms) => {
                now += u64::from(*ms) * 1_000_000;
                continue;
            }
            Op::Rewind(ms) => {
                rewind = u64::from(*ms) * 1_000_000;
                continue;
            }
        };
        // The journal codec must round-trip every command.
        let mut buf = Vec::new();
        encode_command(&cmd, &mut buf);
        assert_eq!(decode_command(&buf).ok(), Some(cmd), "codec round trip");

        let band_before: Vec<_> = (0..N_INST).map(|i| engine.price_band(i)).collect();
        let halted_before: Vec<_> = (0..N_INST).map(|i| engine.is_halted(i)).collect();
        let blocked_before: Vec<_> = (0..N_ACC).map(|a| engine.is_blocked(a)).collect();
        let cancels_dead =
            matches!(cmd, Command::Cancel { order_id, .. } if model.dead.contains(&order_id));
        out.clear();
        engine.apply(&cmd, &mut out);
        if let Err(e) = engine.check_invariants() {
            panic!("check_invariants: {e}\ncommand: {cmd:?}\nevents: {out:#?}");
        }
        for ev in &out {
            model.on_event(ev, &band_before, &halted_before, &blocked_before);
            model.states.update(ev);
        }
        if cancels_dead {
            assert!(
                out.iter().all(|e| matches!(
                    e,
                    Event::CancelRejected { .. }
                        | Event::Expired { .. }
                        | Event::BookLevelChanged { .. }
                )),
                "cancel of a dead order did something: {out:?}"
            );
        }
        // Engine's view of every order agrees with the model.
        assert_eq!(
            engine.order_count() as usize,
            model.live.len(),
            "order count"
        );
        for (id, t) in &model.live {
            let o = engine
                .order(*id)
                .unwrap_or_else(|| panic!("live order {id} unknown to the engine"));
            assert_eq!(o.cum_qty, t.cum, "cum_qty of {id}");
        }
        for id in model.dead.iter().take(64) {
            assert!(engine.order(*id).is_none(), "dead order {id} still known");
        }
        // Positions are the sum of fills; they net to zero.
        for inst in 0..N_INST {
            let mut net = 0;
            for acc in 0..N_ACC {
                let got = engine
                    .position(acc, inst)
                    .map(|p| p.position)
                    .unwrap_or_default();
                let want = model
                    .positions
                    .get(&(acc, inst))
                    .copied()
                    .unwrap_or_default();
                assert_eq!(got, want, "position of account {acc} in {inst}");
                net += got.net_qty;
                if acc == L {
                    assert!(
                        got.net_qty.abs() <= L_MAX_POSITION,
                        "L over max_position: {got:?}"
                    );
                }
            }
            assert_eq!(net, 0, "positions of {inst} do not net to zero");
        }
        let l_open = model.live.values().filter(|t| t.account == L).count();
        assert!(l_open <= L_MAX_OPEN, "L has {l_open} working orders");
        assert_eq!(engine.trade_count(), model.trades, "trade count");
        commands.push(cmd);
        all_events.extend_from_slice(&out);
    }
    // Determinism: a replay reproduces every event.
    let mut again = Engine::new(cfg).expect("engine");
    let mut replayed = Vec::new();
    for cmd in &commands {
        again.apply(cmd, &mut replayed);
    }
    assert!(replayed == all_events, "replay differs");
}

fuzz_target!(|ops: Vec<Op>| {
    run(&ops);
});

//! Scenario tests of the engine: one test per order type, time in force,
//! instruction, risk limit and STP mode, with the issue's edge cases. Every
//! command goes through `Harness::run`, which asserts the invariants after it.

use std::collections::BTreeMap;

use crate::engine::*;

/// Instrument 0 `TST`: tick 0.01, reference 100.00 (10_000 ticks), band 20% → [8_000, 12_000].
/// Instrument 1 `NOB`: no band. Accounts: A cancel-aggressor, B allow, C cancel-resting,
/// D cancel-both, E allow, L tightly limited.
pub(crate) const TEST_VENUE: &str = r#"
[engine]
snapshot_every = 0
max_orders = 1000

[[instruments]]
symbol = "TST"
tick_size = "0.01"
price_band_pct = "20"
reference_price = "100.00"

[[instruments]]
symbol = "NOB"
tick_size = "1"
lot_size = "10"

[[accounts]]
name = "A"
self_trade = "cancel-aggressor"
limits = { max_order_qty = "1000000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000000" }
[[accounts]]
name = "B"
self_trade = "allow"
limits = { max_order_qty = "1000000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000000" }
[[accounts]]
name = "C"
self_trade = "cancel-resting"
limits = { max_order_qty = "1000000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000000" }
[[accounts]]
name = "D"
self_trade = "cancel-both"
limits = { max_order_qty = "1000000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000000" }
[[accounts]]
name = "E"
self_trade = "allow"
limits = { max_order_qty = "1000000", max_order_notional = "1000000000", max_open_orders = 1000, credit_limit = "1000000000", max_position = "1000000000" }
[[accounts]]
name = "L"
limits = { max_order_qty = "100", max_order_notional = "5000", max_open_orders = 3, credit_limit = "12000", max_position = "150" }

[[sessions]]
comp_id = "CLIENT1"
account = "A"
"#;

pub(crate) const A: AccountId = 0;
pub(crate) const B: AccountId = 1;
pub(crate) const C: AccountId = 2;
pub(crate) const D: AccountId = 3;
pub(crate) const E: AccountId = 4;
pub(crate) const L: AccountId = 5;
pub(crate) const TST: InstrumentId = 0;
pub(crate) const NOB: InstrumentId = 1;

pub(crate) fn test_config() -> VenueConfig {
    VenueConfig::from_toml_str(TEST_VENUE).unwrap()
}

/// A limit order template.
pub(crate) fn limit(
    account: AccountId,
    side: Side,
    price: Ticks,
    qty: Lots,
    client_ref: u64,
) -> NewOrder {
    NewOrder {
        ts_ns: 0,
        owner: account + 100,
        account,
        instrument: TST,
        side,
        ord_type: OrdType::Limit,
        price,
        stop_price: 0,
        qty,
        tif: Tif::Gtc,
        expire_ts_ns: 0,
        post_only: false,
        max_floor: 0,
        client_ref,
    }
}

/// What the events reported so far, kept by `check_after`: every working order's last full
/// state (a Trade's two orders are checked in full against it) and every position, booked from
/// the Trade events fill by fill, maker then taker (the engine's batched booking must give
/// exactly the same).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub orders: OrderStates,
    pub positions: BTreeMap<(AccountId, InstrumentId), Position>,
    /// The last command's trades: maker and taker after each fill.
    pub trades: Vec<(OrderInfo, OrderInfo)>,
}

/// Checks the engine-wide invariants and the per-command event invariants against what
/// the events reported before (`seen`, updated here).
pub(crate) fn check_after(
    engine: &Engine,
    events: &[Event],
    seen: &mut Seen,
) -> Result<(), String> {
    let states = &mut seen.orders;
    engine.check_invariants()?;
    for inst in 0.. {
        if engine.book(inst).is_none() {
            break;
        }
        let net: i64 = (0..)
            .map_while(|a| engine.position(a, inst))
            .map(|p| p.position.net_qty)
            .sum();
        if net != 0 {
            return Err(format!(
                "positions of instrument {inst} net to {net}, not zero"
            ));
        }
    }
    // Without saturation (never in these tests) the position cost is exactly the sum of the
    // open costs' magnitudes, however its updates were batched.
    for (a, acct) in engine.accounts.iter().enumerate() {
        let mut sum = 0i128;
        for (i, ins) in engine.instruments.iter().enumerate() {
            let cost = engine.acct_inst[a * engine.instruments.len() + i]
                .pos
                .open_cost;
            sum += (cost as i128).abs() * ins.spec.cash_per_tick_lot as i128;
        }
        if sum <= i64::MAX as i128 && sum != acct.position_cost_cash as i128 {
            return Err(format!(
                "account {a}: position cost {} != {sum}",
                acct.position_cost_cash
            ));
        }
    }
    seen.trades.clear();
    for ev in events {
        if let Event::Trade {
            maker_order_id,
            taker_order_id,
            qty,
            price,
            aggressor,
            ..
        } = ev
        {
            let (Some(m), Some(t)) = (
                states.after_fill(*maker_order_id, *qty, *price),
                states.after_fill(*taker_order_id, *qty, *price),
            ) else {
                return Err(format!("trade of an order never reported in full: {ev:?}"));
            };
            if *qty == 0 || m.side == t.side || *aggressor != t.side || *price != m.price {
                return Err(format!("malformed trade {ev:?}"));
            }
            for o in [m, t] {
                if o.cum_qty > o.qty || o.cum_qty + o.leaves_qty != o.qty {
                    return Err(format!("order {} overfilled or leaves wrong", o.order_id));
                }
            }
            let crossing = match t.ord_type {
                OrdType::Limit | OrdType::StopLimit => match t.side {
                    Side::Buy => *price <= t.price,
                    Side::Sell => *price >= t.price,
                },
                _ => true,
            };
            if !crossing {
                return Err(format!("trade at {price} outside taker limit {}", t.price));
            }
            for o in [m, t] {
                let pos = seen.positions.entry((o.account, o.instrument)).or_default();
                pos.apply_fill(o.side, *qty, *price);
            }
            seen.trades.push((m, t));
        }
        states.update(ev);
    }
    for (&(a, i), want) in &seen.positions {
        let got = engine.position(a, i).map(|p| p.position);
        if got != Some(*want) {
            return Err(format!(
                "account {a} instrument {i}: position {got:?}, fill by fill {want:?}"
            ));
        }
    }
    Ok(())
}

pub(crate) struct Harness {
    pub e: Engine,
    pub t: u64,
    /// What the events reported (for `check_after`).
    pub seen: Seen,
    /// Every order's latest client ref, as the events reported it.
    pub client_refs: std::collections::HashMap<OrderId, u64>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            e: Engine::new(&test_config()).unwrap(),
            t: 1,
            seen: Seen::default(),
            client_refs: Default::default(),
        }
    }

    pub fn run(&mut self, cmd: Command) -> Vec<Event> {
        let mut out = Vec::new();
        self.e.apply(&cmd, &mut out);
        if let Err(e) = check_after(&self.e, &out, &mut self.seen) {
            panic!("invariant: {e}\nevents: {out:#?}");
        }
        for ev in &out {
            if let Event::Accepted { order }
            | Event::Replaced { order, .. }
            | Event::Triggered { order } = ev
            {
                self.client_refs.insert(order.order_id, order.client_ref);
            }
        }
        out
    }

    /// Enters an order at the harness clock; returns events and the order id (0 if rejected).
    pub fn place(&mut self, mut o: NewOrder) -> (Vec<Event>, OrderId) {
        self.t += 1;
        o.ts_ns = self.t;
        let ev = self.run(Command::NewOrder(o));
        let id = ev
            .iter()
            .find_map(|e| match e {
                Event::Accepted { order } => Some(order.order_id),
                _ => None,
            })
            .unwrap_or(0);
        (ev, id)
    }

    pub fn cancel(&mut self, account: AccountId, order_id: OrderId) -> Vec<Event> {
        self.t += 1;
        self.run(Command::Cancel {
            ts_ns: self.t,
            owner: 1,
            account,
            order_id,
            client_ref: 999,
        })
    }

    pub fn replace(
        &mut self,
        account: AccountId,
        order_id: OrderId,
        qty: Lots,
        price: Ticks,
    ) -> Vec<Event> {
        self.t += 1;
        self.run(Command::Replace {
            ts_ns: self.t,
            owner: 1,
            account,
            order_id,
            client_ref: 777,
            new_qty: qty,
            new_price: price,
            new_stop_price: 0,
        })
    }

    pub fn depth(&self, side: Side) -> Vec<(Ticks, Lots, u32)> {
        self.e
            .book(TST)
            .unwrap()
            .depth(side, 100)
            .iter()
            .map(|l| (l.price, l.qty, l.order_count))
            .collect()
    }
}

impl Harness {
    /// The trades among `ev` (events of the last command) as (maker client ref, taker client
    /// ref, price, qty).
    pub fn trades(&self, ev: &[Event]) -> Vec<(u64, u64, Ticks, Lots)> {
        let refs = |id| self.client_refs.get(&id).copied().unwrap_or(0);
        ev.iter()
            .filter_map(|e| match *e {
                Event::Trade {
                    maker_order_id,
                    taker_order_id,
                    price,
                    qty,
                    ..
                } => Some((refs(maker_order_id), refs(taker_order_id), price, qty)),
                _ => None,
            })
            .collect()
    }
}

fn cancels(ev: &[Event]) -> Vec<(u64, CancelReason)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Cancelled { order, reason, .. } => Some((order.client_ref, *reason)),
            _ => None,
        })
        .collect()
}

fn rejected(ev: &[Event]) -> Option<RejectReason> {
    ev.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn replace_rejected(ev: &[Event]) -> Option<CancelRejectReason> {
    ev.iter().find_map(|e| match e {
        Event::ReplaceRejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

use Side::{Buy, Sell};

// ------------------------------------------------------------------ limit, market, priority

#[test]
fn price_then_time_priority_and_maker_price() {
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_010, 5, 1));
    h.place(limit(E, Sell, 10_000, 5, 2));
    h.place(limit(A, Sell, 10_000, 5, 3));
    let (ev, _) = h.place(limit(B, Buy, 10_020, 12, 4));
    assert_eq!(
        h.trades(&ev),
        vec![(2, 4, 10_000, 5), (3, 4, 10_000, 5), (1, 4, 10_010, 2)]
    );
    assert_eq!(h.depth(Sell), vec![(10_010, 3, 1)]);
    assert!(h.depth(Buy).is_empty());
    // Level events: one per changed level, final aggregates.
    let lvl: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::BookLevelChanged {
                side,
                price,
                qty,
                order_count,
                ..
            } => Some((*side, *price, *qty, *order_count)),
            _ => None,
        })
        .collect();
    assert_eq!(lvl, vec![(Sell, 10_000, 0, 0), (Sell, 10_010, 3, 1)]);
    assert_eq!(h.e.last_trade_price(TST), Some(10_010));
}

#[test]
fn limit_rests_with_accepted_and_level_event() {
    let mut h = Harness::new();
    let (ev, id) = h.place(limit(A, Buy, 9_990, 7, 1));
    assert!(
        matches!(ev[0], Event::Accepted { order } if order.leaves_qty == 7 && order.order_id == id)
    );
    assert!(matches!(
        ev[1],
        Event::BookLevelChanged {
            side: Buy,
            price: 9_990,
            qty: 7,
            order_count: 1,
            ..
        }
    ));
    assert_eq!(h.e.order(id).unwrap().leaves_qty, 7);
}

#[test]
fn market_order_sweeps_then_cancels_remainder() {
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_000, 5, 1));
    h.place(limit(A, Sell, 10_100, 5, 2));
    let (ev, _) = h.place(NewOrder {
        ord_type: OrdType::Market,
        tif: Tif::Ioc,
        ..limit(B, Buy, 0, 20, 3)
    });
    assert_eq!(h.trades(&ev), vec![(1, 3, 10_000, 5), (2, 3, 10_100, 5)]);
    assert_eq!(cancels(&ev), vec![(3, CancelReason::MarketNoLiquidity)]);
    assert_eq!(h.e.order_count(), 0);
}

#[test]
fn market_order_never_trades_outside_band() {
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_000, 5, 1));
    h.place(limit(A, Sell, 11_500, 5, 2));
    // Move the band down: [7_200, 10_800]; the 11_500 offer is now outside it.
    h.run(Command::SetReferencePrice {
        ts_ns: 10,
        instrument: TST,
        price: 9_000,
    });
    let (ev, _) = h.place(NewOrder {
        ord_type: OrdType::Market,
        tif: Tif::Day,
        ..limit(B, Buy, 0, 20, 3)
    });
    assert_eq!(h.trades(&ev), vec![(1, 3, 10_000, 5)]);
    assert_eq!(cancels(&ev), vec![(3, CancelReason::PriceBand)]);
    assert_eq!(h.depth(Sell), vec![(11_500, 5, 1)]);
}

#[test]
fn market_order_takes_a_resting_offer_left_below_a_raised_band() {
    // The band caps what a market order pays (a buy's limit is the band's
    // top); an offer the reference moved away from is a better price, and
    // its owner left it there: it trades, as a limit buy would trade it.
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_000, 5, 1));
    h.place(limit(A, Sell, 11_500, 5, 2));
    // Band [10_400, 15_600]: the 10_000 offer is below it, 11_500 inside.
    h.run(Command::SetReferencePrice {
        ts_ns: 10,
        instrument: TST,
        price: 13_000,
    });
    let (ev, _) = h.place(NewOrder {
        ord_type: OrdType::Market,
        tif: Tif::Ioc,
        ..limit(B, Buy, 0, 8, 3)
    });
    assert_eq!(h.trades(&ev), vec![(1, 3, 10_000, 5), (2, 3, 11_500, 3)]);
    assert!(cancels(&ev).is_empty());
}

#[test]
fn market_order_on_empty_book_is_cancelled() {
    let mut h = Harness::new();
    let (ev, _) = h.place(NewOrder {
        ord_type: OrdType::Market,
        tif: Tif::Ioc,
        ..limit(B, Sell, 0, 2, 3)
    });
    assert_eq!(cancels(&ev), vec![(3, CancelReason::MarketNoLiquidity)]);
}

// ------------------------------------------------------------------ time in force

#[test]
fn ioc_trades_what_it_can_and_cancels_the_rest() {
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_000, 3, 1));
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Buy, 10_000, 5, 2)
    });
    assert_eq!(h.trades(&ev), vec![(1, 2, 10_000, 3)]);
    assert_eq!(cancels(&ev), vec![(2, CancelReason::IocRemainder)]);
    assert!(h.depth(Buy).is_empty());
}

#[test]
fn fok_with_exactly_enough_liquidity_fills() {
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_000, 3, 1));
    h.place(limit(E, Sell, 10_001, 4, 2));
    h.place(limit(A, Sell, 10_002, 9, 3));
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Fok,
        ..limit(B, Buy, 10_001, 7, 4)
    });
    assert_eq!(h.trades(&ev), vec![(1, 4, 10_000, 3), (2, 4, 10_001, 4)]);
    assert!(cancels(&ev).is_empty());
}

#[test]
fn fok_one_lot_short_does_not_trade() {
    let mut h = Harness::new();
    h.place(limit(A, Sell, 10_000, 3, 1));
    h.place(limit(E, Sell, 10_001, 4, 2));
    let before = h.depth(Sell);
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Fok,
        ..limit(B, Buy, 10_001, 8, 4)
    });
    assert!(h.trades(&ev).is_empty());
    assert_eq!(cancels(&ev), vec![(4, CancelReason::FokUnfilled)]);
    assert_eq!(h.depth(Sell), before);
}

#[test]
fn gtd_expires_at_its_time_and_day_at_end_of_day() {
    let mut h = Harness::new();
    let (_, gtd) = h.place(NewOrder {
        tif: Tif::Gtd,
        expire_ts_ns: 1_000,
        ..limit(A, Buy, 9_000, 1, 1)
    });
    let (_, day) = h.place(NewOrder {
        tif: Tif::Day,
        ..limit(A, Buy, 9_001, 1, 2)
    });
    let (_, gtc) = h.place(limit(A, Buy, 9_002, 1, 3));
    let ev = h.run(Command::Tick { ts_ns: 999 });
    assert!(ev.is_empty());
    let ev = h.run(Command::Tick { ts_ns: 1_000 });
    assert!(
        matches!(ev[0], Event::Expired { order } if order.order_id == gtd && order.leaves_qty == 0)
    );
    let ev = h.run(Command::EndOfDay { ts_ns: 2_000 });
    assert!(matches!(ev[0], Event::Expired { order } if order.order_id == day));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Expired { .. }))
            .count(),
        1
    );
    assert!(h.e.order(gtc).is_some());
    // Expiry is enforced by any later command too, before the command itself.
    h.t = 5_000;
    let (_, g2) = h.place(NewOrder {
        tif: Tif::Gtd,
        expire_ts_ns: 6_000,
        ..limit(A, Sell, 11_000, 1, 4)
    });
    h.t = 7_000;
    let (ev, _) = h.place(limit(B, Buy, 11_000, 1, 5));
    assert!(matches!(ev[0], Event::Expired { order } if order.order_id == g2));
    assert!(h.trades(&ev).is_empty());
}

#[test]
fn gtd_in_the_past_is_rejected() {
    let mut h = Harness::new();
    h.t = 100;
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Gtd,
        expire_ts_ns: 50,
        ..limit(A, Buy, 9_000, 1, 1)
    });
    assert_eq!(rejected(&ev), Some(RejectReason::AlreadyExpired));
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Gtd,
        expire_ts_ns: 0,
        ..limit(A, Buy, 9_000, 1, 1)
    });
    assert_eq!(rejected(&ev), Some(RejectReason::InvalidOrder));
}

// ------------------------------------------------------------------ cancel, replace, mass cancel

#[test]
fn cancel_unknown_wrong_account_and_twice() {
    let mut h = Harness::new();
    let (_, id) = h.place(limit(A, Buy, 9_000, 5, 1));
    let ev = h.cancel(B, id);
    assert!(matches!(
        ev[0],
        Event::CancelRejected {
            reason: CancelRejectReason::UnknownOrder,
            ..
        }
    ));
    let ev = h.cancel(A, id);
    assert!(
        matches!(ev[0], Event::Cancelled { order, reason: CancelReason::User, request_ref: 999 } if order.leaves_qty == 0)
    );
    assert!(matches!(
        ev[1],
        Event::BookLevelChanged {
            qty: 0,
            order_count: 0,
            ..
        }
    ));
    let ev = h.cancel(A, id);
    assert!(matches!(
        ev[0],
        Event::CancelRejected {
            reason: CancelRejectReason::UnknownOrder,
            ..
        }
    ));
    // A new order reusing the slot gets a different id; the stale id stays unknown.
    let (_, id2) = h.place(limit(A, Buy, 9_000, 5, 2));
    assert_ne!(id, id2);
    assert!(matches!(h.cancel(A, id)[0], Event::CancelRejected { .. }));
}

#[test]
fn replace_quantity_down_keeps_priority_up_or_price_loses_it() {
    let mut h = Harness::new();
    let (_, first) = h.place(limit(A, Sell, 10_000, 10, 1));
    h.place(limit(E, Sell, 10_000, 10, 2));
    let ev = h.replace(A, first, 6, 10_000);
    assert!(
        matches!(ev[0], Event::Replaced { order, orig_client_ref: 1 } if order.qty == 6 && order.client_ref == 777)
    );
    assert_eq!(h.depth(Sell), vec![(10_000, 16, 2)]);
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Buy, 10_000, 1, 3)
    });
    assert_eq!(h.trades(&ev), vec![(777, 3, 10_000, 1)]);
    // Increase: goes behind E's order.
    h.replace(A, first, 8, 10_000);
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Buy, 10_000, 1, 4)
    });
    assert_eq!(h.trades(&ev), vec![(2, 4, 10_000, 1)]);
}

#[test]
fn replace_price_change_loses_priority_and_may_trade() {
    let mut h = Harness::new();
    let (_, a) = h.place(limit(A, Buy, 9_990, 5, 1));
    h.place(limit(E, Buy, 10_000, 5, 2));
    h.place(limit(B, Sell, 10_010, 3, 3));
    let ev = h.replace(A, a, 5, 10_000);
    assert!(h.trades(&ev).is_empty());
    assert_eq!(h.depth(Buy), vec![(10_000, 10, 2)]);
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Sell, 10_000, 6, 4)
    });
    assert_eq!(h.trades(&ev), vec![(2, 4, 10_000, 5), (777, 4, 10_000, 1)]);
    // Replacing into a crossing price makes the order an aggressor at the maker's price.
    let ev = h.replace(A, a, 5, 10_020);
    assert_eq!(h.trades(&ev), vec![(3, 777, 10_010, 3)]);
    assert_eq!(h.depth(Buy)[0], (10_020, 1, 1));
}

#[test]
fn replace_below_filled_quantity_is_rejected() {
    let mut h = Harness::new();
    let (_, a) = h.place(limit(A, Sell, 10_000, 10, 1));
    h.place(limit(B, Buy, 10_000, 4, 2));
    for q in [3, 4] {
        let ev = h.replace(A, a, q, 10_000);
        assert_eq!(
            replace_rejected(&ev),
            Some(CancelRejectReason::QtyBelowFilled)
        );
    }
    let ev = h.replace(A, a, 5, 10_000);
    assert!(
        matches!(ev[0], Event::Replaced { order, .. } if order.leaves_qty == 1 && order.cum_qty == 4)
    );
    assert_eq!(h.depth(Sell), vec![(10_000, 1, 1)]);
    let ev = h.replace(B, a, 9, 10_000);
    assert_eq!(
        replace_rejected(&ev),
        Some(CancelRejectReason::UnknownOrder)
    );
}

#[test]
fn mass_cancel_filters_by_account_instrument_and_side() {
    let mut h = Harness::new();
    h.place(limit(A, Buy, 9_000, 1, 1));
    h.place(limit(A, Sell, 11_000, 1, 2));
    h.place(limit(B, Buy, 9_000, 1, 3));
    h.place(NewOrder {
        instrument: NOB,
        ..limit(A, Buy, 50, 1, 4)
    });
    let ev = h.run(Command::MassCancel {
        ts_ns: 100,
        owner: 7,
        client_ref: 55,
        account: Some(A),
        instrument: Some(TST),
        side: Some(Buy),
    });
    assert_eq!(cancels(&ev), vec![(1, CancelReason::MassCancel)]);
    assert!(matches!(
        ev.iter()
            .find(|e| matches!(e, Event::MassCancelDone { .. })),
        Some(Event::MassCancelDone {
            cancelled: 1,
            request_ref: 55,
            owner: 7
        })
    ));
    let ev = h.run(Command::MassCancel {
        ts_ns: 101,
        owner: 7,
        client_ref: 56,
        account: Some(A),
        instrument: None,
        side: None,
    });
    let mut c = cancels(&ev);
    c.sort_by_key(|x| x.0);
    assert_eq!(
        c,
        vec![(2, CancelReason::MassCancel), (4, CancelReason::MassCancel)]
    );
    assert_eq!(h.e.order_count(), 1);
}

// ------------------------------------------------------------------ stops

fn stop(account: AccountId, side: Side, stop_price: Ticks, qty: Lots, r: u64) -> NewOrder {
    NewOrder {
        ord_type: OrdType::Stop,
        stop_price,
        ..limit(account, side, 0, qty, r)
    }
}

#[test]
fn buy_stop_triggers_on_last_trade_at_or_above_and_trades_as_market() {
    let mut h = Harness::new();
    let (ev, sid) = h.place(stop(A, Buy, 10_050, 4, 1));
    assert!(
        matches!(ev[0], Event::Accepted { .. }) && ev.len() == 1,
        "stop is not on the book"
    );
    h.place(limit(E, Sell, 10_040, 1, 2));
    h.place(limit(E, Sell, 10_060, 10, 3));
    // A trade at 10_040 does not trigger.
    let (ev, _) = h.place(limit(B, Buy, 10_040, 1, 4));
    assert!(!ev.iter().any(|e| matches!(e, Event::Triggered { .. })));
    // A trade at 10_060 does; the stop then buys 4 at 10_060.
    let (ev, _) = h.place(limit(B, Buy, 10_060, 1, 5));
    let pos = ev
        .iter()
        .position(|e| matches!(e, Event::Triggered { order } if order.order_id == sid))
        .unwrap();
    assert_eq!(h.trades(&ev[pos..]), vec![(3, 1, 10_060, 4)]);
    assert_eq!(h.depth(Sell), vec![(10_060, 5, 1)]);
}

#[test]
fn sell_stop_limit_triggers_then_rests_as_limit() {
    let mut h = Harness::new();
    h.place(NewOrder {
        ord_type: OrdType::StopLimit,
        stop_price: 9_950,
        ..limit(A, Sell, 9_940, 5, 1)
    });
    h.place(limit(E, Buy, 9_950, 1, 2));
    let (ev, _) = h.place(limit(B, Sell, 9_950, 1, 3));
    assert!(ev.iter().any(|e| matches!(e, Event::Triggered { .. })));
    assert_eq!(h.depth(Sell), vec![(9_940, 5, 1)]);
}

#[test]
fn stop_cascade_and_no_retrigger_by_own_fill() {
    let mut h = Harness::new();
    // Two buy stops; the first one's own fill moves the price up and triggers the second.
    h.place(NewOrder {
        ord_type: OrdType::StopLimit,
        stop_price: 10_010,
        ..limit(A, Buy, 10_030, 2, 1)
    });
    h.place(stop(C, Buy, 10_020, 2, 2));
    h.place(limit(E, Sell, 10_010, 1, 10));
    h.place(limit(E, Sell, 10_020, 2, 11));
    h.place(limit(E, Sell, 10_030, 5, 12));
    let (ev, _) = h.place(limit(B, Buy, 10_010, 1, 3));
    let triggered: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Triggered { order } => Some(order.client_ref),
            _ => None,
        })
        .collect();
    assert_eq!(
        triggered,
        vec![1, 2],
        "each stop triggers exactly once, in order"
    );
    assert_eq!(
        h.trades(&ev),
        vec![(10, 3, 10_010, 1), (11, 1, 10_020, 2), (12, 2, 10_030, 2)]
    );
}

#[test]
fn stop_already_reached_triggers_on_arrival() {
    let mut h = Harness::new();
    h.place(limit(E, Sell, 10_000, 3, 1));
    h.place(limit(B, Buy, 10_000, 1, 2));
    let (ev, _) = h.place(stop(A, Buy, 9_990, 1, 3));
    assert!(matches!(ev[1], Event::Triggered { .. }));
    assert_eq!(h.trades(&ev), vec![(1, 3, 10_000, 1)]);
}

#[test]
fn stop_orders_can_be_cancelled_and_replaced() {
    let mut h = Harness::new();
    let (_, s) = h.place(stop(A, Sell, 9_900, 4, 1));
    h.t += 1;
    let ev = h.run(Command::Replace {
        ts_ns: h.t,
        owner: 1,
        account: A,
        order_id: s,
        client_ref: 2,
        new_qty: 3,
        new_price: 0,
        new_stop_price: 9_950,
    });
    assert!(
        matches!(ev[0], Event::Replaced { order, .. } if order.stop_price == 9_950 && order.qty == 3)
    );
    let ev = h.cancel(A, s);
    assert!(matches!(ev[0], Event::Cancelled { .. }));
    assert_eq!(h.e.order_count(), 0);
}

// ------------------------------------------------------------------ post-only, iceberg

#[test]
fn post_only_rests_or_is_rejected_if_it_would_take() {
    let mut h = Harness::new();
    h.place(limit(E, Sell, 10_000, 1, 1));
    let (ev, _) = h.place(NewOrder {
        post_only: true,
        ..limit(A, Buy, 10_000, 1, 2)
    });
    assert_eq!(rejected(&ev), Some(RejectReason::WouldTakeLiquidity));
    let (ev, id) = h.place(NewOrder {
        post_only: true,
        ..limit(A, Buy, 9_990, 1, 3)
    });
    assert!(matches!(ev[0], Event::Accepted { .. }));
    let ev = h.replace(A, id, 1, 10_000);
    assert_eq!(
        replace_rejected(&ev),
        Some(CancelRejectReason::Risk(RejectReason::WouldTakeLiquidity))
    );
    let (ev, _) = h.place(NewOrder {
        post_only: true,
        tif: Tif::Ioc,
        ..limit(A, Buy, 9_000, 1, 4)
    });
    assert_eq!(rejected(&ev), Some(RejectReason::InvalidOrder));
}

#[test]
fn iceberg_shows_display_qty_and_refill_loses_priority() {
    let mut h = Harness::new();
    h.place(NewOrder {
        max_floor: 2,
        ..limit(A, Sell, 10_000, 5, 1)
    });
    assert_eq!(h.depth(Sell), vec![(10_000, 2, 1)]);
    h.place(limit(E, Sell, 10_000, 3, 2));
    assert_eq!(h.depth(Sell), vec![(10_000, 5, 2)]);
    // Takes the iceberg's slice (2), then E's order (3), then the refilled slice.
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Buy, 10_000, 6, 3)
    });
    assert_eq!(
        h.trades(&ev),
        vec![(1, 3, 10_000, 2), (2, 3, 10_000, 3), (1, 3, 10_000, 1)]
    );
    assert_eq!(h.depth(Sell), vec![(10_000, 1, 1)]);
}

#[test]
fn iceberg_refill_goes_behind_later_orders() {
    let mut h = Harness::new();
    h.place(NewOrder {
        max_floor: 2,
        ..limit(A, Sell, 10_000, 6, 1)
    });
    h.place(limit(E, Sell, 10_000, 1, 2));
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Buy, 10_000, 2, 3)
    });
    assert_eq!(h.trades(&ev), vec![(1, 3, 10_000, 2)]);
    h.place(limit(E, Sell, 10_000, 1, 4));
    // Queue now: E(2), iceberg refill, E(4).
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(B, Buy, 10_000, 4, 5)
    });
    assert_eq!(
        h.trades(&ev),
        vec![(2, 5, 10_000, 1), (1, 5, 10_000, 2), (4, 5, 10_000, 1)]
    );
}

#[test]
fn fok_counts_hidden_iceberg_quantity() {
    let mut h = Harness::new();
    h.place(NewOrder {
        max_floor: 1,
        ..limit(A, Sell, 10_000, 5, 1)
    });
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Fok,
        ..limit(B, Buy, 10_000, 5, 2)
    });
    assert_eq!(h.trades(&ev).iter().map(|t| t.3).sum::<u64>(), 5);
}

// ------------------------------------------------------------------ self-trade prevention

#[test]
fn stp_cancel_aggressor_keeps_resting() {
    let mut h = Harness::new();
    h.place(limit(E, Sell, 10_000, 1, 1));
    h.place(limit(A, Sell, 10_000, 5, 2));
    let (ev, _) = h.place(limit(A, Buy, 10_000, 3, 3));
    assert_eq!(h.trades(&ev), vec![(1, 3, 10_000, 1)]);
    assert_eq!(cancels(&ev), vec![(3, CancelReason::SelfTrade)]);
    assert_eq!(h.depth(Sell), vec![(10_000, 5, 1)]);
}

#[test]
fn stp_cancel_resting_goes_on_matching() {
    let mut h = Harness::new();
    h.place(limit(C, Sell, 10_000, 5, 1));
    h.place(limit(E, Sell, 10_000, 2, 2));
    let (ev, _) = h.place(limit(C, Buy, 10_000, 3, 3));
    assert_eq!(cancels(&ev), vec![(1, CancelReason::SelfTrade)]);
    assert_eq!(h.trades(&ev), vec![(2, 3, 10_000, 2)]);
    assert_eq!(h.depth(Buy), vec![(10_000, 1, 1)]);
}

#[test]
fn stp_cancel_both() {
    let mut h = Harness::new();
    h.place(limit(D, Sell, 10_000, 5, 1));
    h.place(limit(E, Sell, 10_000, 2, 2));
    let (ev, _) = h.place(limit(D, Buy, 10_000, 3, 3));
    assert_eq!(
        cancels(&ev),
        vec![(1, CancelReason::SelfTrade), (3, CancelReason::SelfTrade)]
    );
    assert!(h.trades(&ev).is_empty());
    assert_eq!(h.depth(Sell), vec![(10_000, 2, 1)]);
}

#[test]
fn stp_allow_trades_with_itself() {
    let mut h = Harness::new();
    h.place(limit(B, Sell, 10_000, 5, 1));
    let (ev, _) = h.place(limit(B, Buy, 10_000, 3, 2));
    assert_eq!(h.trades(&ev), vec![(1, 2, 10_000, 3)]);
    assert_eq!(h.e.position(B, TST).unwrap().position.net_qty, 0);
}

#[test]
fn fok_with_stp_counts_only_reachable_liquidity() {
    let mut h = Harness::new();
    h.place(limit(E, Sell, 10_000, 2, 1));
    h.place(limit(A, Sell, 10_000, 5, 2));
    h.place(limit(E, Sell, 10_000, 5, 3));
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Fok,
        ..limit(A, Buy, 10_000, 3, 4)
    });
    assert!(
        h.trades(&ev).is_empty(),
        "own order blocks the way: no partial FOK"
    );
    assert_eq!(cancels(&ev), vec![(4, CancelReason::FokUnfilled)]);
    let (ev, _) = h.place(NewOrder {
        tif: Tif::Fok,
        ..limit(A, Buy, 10_000, 2, 5)
    });
    assert_eq!(h.trades(&ev), vec![(1, 5, 10_000, 2)]);
}

// ------------------------------------------------------------------ halt, kill switch

#[test]
fn halt_rejects_orders_and_replaces_but_allows_cancels() {
    let mut h = Harness::new();
    let (_, id) = h.place(limit(A, Buy, 9_000, 5, 1));
    let ev = h.run(Command::Halt {
        ts_ns: 50,
        instrument: TST,
    });
    assert_eq!(
        ev,
        vec![Event::InstrumentStatus {
            instrument: TST,
            halted: true
        }]
    );
    let (ev, _) = h.place(limit(B, Sell, 9_000, 5, 2));
    assert_eq!(rejected(&ev), Some(RejectReason::InstrumentHalted));
    assert_eq!(
        replace_rejected(&h.replace(A, id, 4, 9_000)),
        Some(CancelRejectReason::InstrumentHalted)
    );
    // The other instrument still trades.
    let (ev, _) = h.place(NewOrder {
        instrument: NOB,
        ..limit(B, Sell, 9_000, 5, 3)
    });
    assert!(matches!(ev[0], Event::Accepted { .. }));
    assert!(matches!(h.cancel(A, id)[0], Event::Cancelled { .. }));
    h.run(Command::Resume {
        ts_ns: 60,
        instrument: TST,
    });
    let (ev, _) = h.place(limit(B, Sell, 9_000, 5, 4));
    assert!(matches!(ev[0], Event::Accepted { .. }));
}

#[test]
fn kill_switch_blocks_and_optionally_cancels() {
    let mut h = Harness::new();
    h.place(limit(A, Buy, 9_000, 5, 1));
    h.place(stop(A, Buy, 10_500, 5, 2));
    h.place(limit(B, Buy, 9_000, 5, 3));
    let ev = h.run(Command::SetAccountBlocked {
        ts_ns: 10,
        account: A,
        blocked: true,
        cancel_open: true,
    });
    assert_eq!(
        ev[0],
        Event::AccountStatus {
            account: A,
            blocked: true
        }
    );
    assert_eq!(
        cancels(&ev),
        vec![(1, CancelReason::KillSwitch), (2, CancelReason::KillSwitch)]
    );
    let (ev, _) = h.place(limit(A, Buy, 9_000, 5, 4));
    assert_eq!(rejected(&ev), Some(RejectReason::AccountBlocked));
    h.run(Command::SetAccountBlocked {
        ts_ns: 11,
        account: A,
        blocked: false,
        cancel_open: false,
    });
    let (ev, _) = h.place(limit(A, Buy, 9_000, 5, 5));
    assert!(matches!(ev[0], Event::Accepted { .. }));
    assert_eq!(h.e.order_count(), 2);
}

// ------------------------------------------------------------------ risk limits

#[test]
fn every_risk_limit_has_its_own_reason() {
    let mut h = Harness::new();
    // L: max qty 100, max notional 5000.00, 3 open orders, credit 12000.00, max position 150.
    let (ev, _) = h.place(limit(L, Buy, 10_000, 101, 1));
    assert_eq!(rejected(&ev), Some(RejectReason::MaxOrderQty));
    let (ev, _) = h.place(limit(L, Buy, 8_000, 100, 2)); // 80.00 x 100 = 8000 > 5000
    assert_eq!(rejected(&ev), Some(RejectReason::MaxOrderNotional));
    let (ev, _) = h.place(limit(L, Buy, 7_999, 1, 3));
    assert_eq!(rejected(&ev), Some(RejectReason::PriceBand));
    let (ev, _) = h.place(limit(L, Buy, 12_001, 1, 3));
    assert_eq!(rejected(&ev), Some(RejectReason::PriceBand));
    // Credit: 3 x 40 @ 100.00 = 12000 is the limit; a 4th order would be refused on count first.
    for r in 10..12 {
        let (ev, _) = h.place(limit(L, Buy, 10_000, 40, r));
        assert!(matches!(ev[0], Event::Accepted { .. }));
    }
    let (ev, _) = h.place(limit(L, Buy, 10_000, 41, 12));
    assert_eq!(rejected(&ev), Some(RejectReason::CreditLimit));
    let (ev, third) = h.place(limit(L, Buy, 10_000, 40, 13));
    assert!(matches!(ev[0], Event::Accepted { .. }));
    let (ev, _) = h.place(limit(L, Sell, 11_000, 1, 14));
    assert_eq!(rejected(&ev), Some(RejectReason::MaxOpenOrders));
    // Position: fill 120 long; then buying 31 more (counting open orders) breaks 150.
    h.place(NewOrder {
        tif: Tif::Ioc,
        ..limit(E, Sell, 10_000, 120, 15)
    });
    assert_eq!(h.e.position(L, TST).unwrap().position.net_qty, 120);
    let (ev, _) = h.place(limit(L, Buy, 9_000, 31, 16));
    assert_eq!(rejected(&ev), Some(RejectReason::MaxPosition));
    assert!(h.e.order(third).is_none(), "filled");
    let (ev, _) = h.place(limit(L, Sell, 11_000, 40, 17));
    assert!(matches!(ev[0], Event::Accepted { .. }));
    let acc = h.e.account_totals(L).unwrap();
    assert_eq!(acc.open_orders, 1);
}

#[test]
fn max_position_counts_open_orders_on_the_short_side() {
    let mut h = Harness::new();
    let (ev, _) = h.place(limit(L, Sell, 10_000, 50, 1));
    assert!(matches!(ev[0], Event::Accepted { .. }));
    let (ev, _) = h.place(limit(L, Sell, 10_000, 50, 2));
    assert!(matches!(ev[0], Event::Accepted { .. }));
    let (ev, _) = h.place(limit(L, Sell, 9_000, 51, 3));
    assert_eq!(rejected(&ev), Some(RejectReason::MaxPosition));
    let ev = h.replace(L, h.e.order_count() as u64, 0, 0); // bogus id
    assert_eq!(
        replace_rejected(&ev),
        Some(CancelRejectReason::UnknownOrder)
    );
}

#[test]
fn replace_is_risk_checked() {
    let mut h = Harness::new();
    let (_, id) = h.place(limit(L, Buy, 10_000, 40, 1));
    let ev = h.replace(L, id, 101, 10_000);
    assert_eq!(
        replace_rejected(&ev),
        Some(CancelRejectReason::Risk(RejectReason::MaxOrderQty))
    );
    let ev = h.replace(L, id, 40, 12_500);
    assert_eq!(
        replace_rejected(&ev),
        Some(CancelRejectReason::Risk(RejectReason::PriceBand))
    );
    let ev = h.replace(L, id, 50, 10_000);
    assert!(matches!(ev[0], Event::Replaced { .. }));
}

#[test]
fn reject_text_names_value_and_limit() {
    let mut h = Harness::new();
    let (ev, _) = h.place(limit(L, Buy, 10_000, 101, 1));
    let Event::Rejected {
        reason,
        value,
        limit: lim,
        ..
    } = ev[0]
    else {
        panic!()
    };
    assert_eq!((value, lim), (101, 100));
    assert_eq!(
        Event::reject_text(reason, value, lim),
        "order quantity exceeds max order quantity (101 > limit 100)"
    );
    let (ev, _) = h.place(limit(L, Buy, 8_000, 100, 2));
    let Event::Rejected {
        reason,
        value,
        limit: lim,
        ..
    } = ev[0]
    else {
        panic!()
    };
    assert_eq!(
        Event::reject_text(reason, value, lim),
        "order notional exceeds max order notional (8000 > limit 5000)"
    );
}

// ------------------------------------------------------------------ positions and P&L

#[test]
fn positions_and_pnl_follow_fills_including_a_flip() {
    let mut h = Harness::new();
    h.place(limit(E, Sell, 10_000, 10, 1));
    h.place(limit(A, Buy, 10_000, 10, 2)); // A long 10 @ 100.00
    h.place(limit(E, Buy, 10_100, 15, 3));
    h.place(limit(A, Sell, 10_100, 15, 4)); // A sells 15 @ 101.00: +10.00 realised, short 5
    let p = h.e.position(A, TST).unwrap();
    assert_eq!(p.position.net_qty, -5);
    assert_eq!(p.position.realized, 10 * 100);
    assert_eq!(p.position.open_cost, -5 * 10_100);
    assert_eq!(p.mark, Some(10_100));
    assert_eq!(p.unrealized, 0);
    h.place(limit(B, Sell, 10_050, 1, 5));
    h.place(limit(E, Buy, 10_050, 1, 6));
    let p = h.e.position(A, TST).unwrap();
    assert_eq!(p.unrealized, -5 * 10_050 + 5 * 10_100);
    let e = h.e.position(E, TST).unwrap().position;
    assert_eq!(e.net_qty, -10 + 15 + 1);
    // Totals in cash units: tick 0.01, lot 1 => 10_000 cash units per tick x lot.
    let t = h.e.account_totals(A).unwrap();
    assert_eq!(t.realized_cash, 10 * 100 * 10_000);
    assert_eq!(t.unrealized_cash, 250 * 10_000);
}

// ------------------------------------------------------------------ misc validation

#[test]
fn invalid_orders_are_rejected_with_reasons() {
    let mut h = Harness::new();
    let cases = [
        (
            NewOrder {
                qty: 0,
                ..limit(A, Buy, 9_000, 1, 1)
            },
            RejectReason::InvalidQuantity,
        ),
        (limit(A, Buy, 0, 1, 1), RejectReason::InvalidPrice),
        (
            NewOrder {
                instrument: 9,
                ..limit(A, Buy, 9_000, 1, 1)
            },
            RejectReason::UnknownInstrument,
        ),
        (
            NewOrder {
                account: 99,
                ..limit(A, Buy, 9_000, 1, 1)
            },
            RejectReason::UnknownAccount,
        ),
        (
            NewOrder {
                ord_type: OrdType::Market,
                tif: Tif::Gtc,
                ..limit(A, Buy, 0, 1, 1)
            },
            RejectReason::InvalidOrder,
        ),
        (
            NewOrder {
                ord_type: OrdType::Stop,
                ..limit(A, Buy, 0, 1, 1)
            },
            RejectReason::InvalidPrice,
        ),
        (
            NewOrder {
                max_floor: 1,
                tif: Tif::Ioc,
                ..limit(A, Buy, 9_000, 5, 1)
            },
            RejectReason::InvalidOrder,
        ),
    ];
    for (o, want) in cases {
        let (ev, _) = h.place(o);
        assert_eq!(rejected(&ev), Some(want), "{o:?}");
        assert_eq!(ev.len(), 1);
    }
}

#[test]
fn engine_capacity_is_bounded() {
    let mut cfg = test_config();
    cfg.engine.max_orders = 2;
    let mut e = Engine::new(&cfg).unwrap();
    let mut out = Vec::new();
    for r in 0..3 {
        e.apply(&Command::NewOrder(limit(B, Buy, 9_000, 1, r)), &mut out);
    }
    assert!(matches!(
        out.last(),
        Some(Event::Rejected {
            reason: RejectReason::EngineFull,
            ..
        })
    ));
}

#[test]
fn steady_state_reuses_slots_and_event_vec_capacity() {
    let mut h = Harness::new();
    for i in 0..100u64 {
        let (_, id) = h.place(limit(A, Buy, 9_000 + (i % 7) as i64, 1, i));
        h.cancel(A, id);
    }
    assert_eq!(h.e.slab.orders.len(), 1, "slot reused");
}

#[test]
fn the_order_slab_is_reserved_up_front_up_to_max_orders() {
    let mut cfg = VenueConfig::from_toml_str(TEST_VENUE).unwrap();
    // Growing the slab copies every order: no growth before order_capacity...
    cfg.engine.order_capacity = 800;
    assert!(Engine::new(&cfg).unwrap().slab.orders.capacity() >= 800);
    // ...and never room for more than the engine may hold.
    cfg.engine.order_capacity = 1_000_000;
    let cap = Engine::new(&cfg).unwrap().slab.orders.capacity();
    assert!((1000..1_000_000).contains(&cap), "{cap}");
}

//! The engine: applies one command at a time to books, risk and positions
//! and reports what happened as events. Price-time matching, order types,
//! time in force, stops, icebergs, self-trade prevention, halts and expiry
//! live here. It never reads a clock, allocates ids from anywhere but its own
//! counters, or does I/O: the same commands always give the same events.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::book::Book;
use crate::engine::command::{Command, NewOrder};
use crate::engine::config::{
    AccountSpec, ConfigError, EngineSettings, InstrumentSpec, VenueConfig,
};
use crate::engine::event::{CancelReason, CancelRejectReason, Event, OrderInfo, RejectReason};
use crate::engine::order::{free_order, Order, OrderSlab, OrderState, NIL};
use crate::engine::positions::{AccountTotals, Position, PositionView};
use crate::engine::risk::{self, AccountState, AcctInst, Exposure};
use crate::engine::types::{
    AccountId, InstrumentId, Lots, OrdType, OrderId, Owner, Side, StpMode, Ticks, Tif,
};

/// Largest order quantity the engine represents (keeps every product in i64).
pub const MAX_QTY_LOTS: Lots = 1 << 31;
/// Largest price the engine represents, ticks.
pub const MAX_PRICE_TICKS: Ticks = 1 << 31;

/// Per-instrument state.
#[derive(Debug, Clone)]
pub(crate) struct InstrumentState {
    pub spec: InstrumentSpec,
    pub book: Book,
    pub halted: bool,
    /// Reference price set by config or command (band centre).
    pub reference: Option<Ticks>,
    pub last_trade: Option<Ticks>,
    /// Untriggered buy stops by (stop price, seq): trigger when last >= stop.
    pub buy_stops: BTreeMap<(Ticks, u64), u32>,
    /// Untriggered sell stops by (-stop price, seq): trigger when last <= stop.
    pub sell_stops: BTreeMap<(Ticks, u64), u32>,
}

impl InstrumentState {
    /// Current band: around the reference, else around the last trade.
    fn band(&self) -> Option<(Ticks, Ticks)> {
        self.spec.band_around(self.reference.or(self.last_trade)?)
    }
}

/// Why matching of an aggressor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchEnd {
    Filled,
    NoLiquidity,
    NoCross,
    SelfTrade,
}

/// One level touched during a command, with its state before the first touch.
#[derive(Debug, Clone, Copy)]
struct Touched {
    instrument: InstrumentId,
    side: Side,
    price: Ticks,
    order: u32,
    /// Level slot at the time of the touch; the last touch of a price names its current slot.
    level: u32,
    qty_before: Lots,
    count_before: u32,
}

/// The exchange core. Single-threaded; feed it one sequenced command stream.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) settings: EngineSettings,
    pub(crate) instruments: Vec<InstrumentState>,
    pub(crate) accounts: Vec<AccountState>,
    /// Indexed by `account * instruments.len() + instrument`.
    pub(crate) acct_inst: Vec<AcctInst>,
    pub(crate) slab: OrderSlab,
    /// Time-priority counter.
    pub(crate) seq: u64,
    pub(crate) next_trade_id: u64,
    pub(crate) now_ns: u64,
    /// GTD orders by (expire time, order id).
    pub(crate) expiries: BTreeSet<(u64, OrderId)>,
    touched: Vec<Touched>,
    scratch: Vec<u32>,
}

impl Engine {
    /// Builds an empty engine for a venue config (validated here).
    pub fn new(cfg: &VenueConfig) -> Result<Engine, ConfigError> {
        cfg.validate()?;
        let mut instruments = Vec::with_capacity(cfg.instruments.len());
        for ins in &cfg.instruments {
            let spec = InstrumentSpec::from_config(ins)?;
            instruments.push(InstrumentState {
                reference: spec.reference_ticks,
                spec,
                book: Book::default(),
                halted: false,
                last_trade: None,
                buy_stops: BTreeMap::new(),
                sell_stops: BTreeMap::new(),
            });
        }
        let mut accounts = Vec::with_capacity(cfg.accounts.len());
        let mut acct_inst = Vec::with_capacity(cfg.accounts.len() * instruments.len());
        for acc in &cfg.accounts {
            let mut first = None;
            for ins in &instruments {
                let spec = AccountSpec::from_config(acc, &ins.spec)?;
                acct_inst.push(AcctInst::new(&spec));
                first.get_or_insert(spec);
            }
            let spec = first.ok_or_else(|| ConfigError::Invalid("no instruments".into()))?;
            accounts.push(AccountState {
                blocked: acc.blocked,
                stp: acc.self_trade,
                max_open_orders: spec.max_open_orders,
                max_order_notional_cash: spec.max_order_notional_cash,
                credit_limit_cash: spec.credit_limit_cash,
                open_orders: 0,
                open_buy_cash: 0,
                position_cost_cash: 0,
            });
        }
        Ok(Engine {
            settings: cfg.engine.clone(),
            instruments,
            accounts,
            acct_inst,
            slab: OrderSlab::with_capacity(
                cfg.engine.order_capacity.min(cfg.engine.max_orders) as usize
            ),
            seq: 0,
            next_trade_id: 1,
            now_ns: 0,
            expiries: BTreeSet::new(),
            touched: Vec::with_capacity(64),
            scratch: Vec::new(),
        })
    }

    /// Applies one command, appending its events to `out` (which is not cleared).
    pub fn apply(&mut self, cmd: &Command, out: &mut Vec<Event>) {
        let ts = cmd.ts_ns();
        if ts > self.now_ns {
            self.now_ns = ts;
        }
        self.expire_due(out);
        match *cmd {
            Command::NewOrder(ref o) => self.new_order(o, out),
            Command::Cancel {
                owner,
                account,
                order_id,
                client_ref,
                ..
            } => self.cancel(owner, account, order_id, client_ref, out),
            Command::Replace {
                owner,
                account,
                order_id,
                client_ref,
                new_qty,
                new_price,
                new_stop_price,
                ..
            } => self.replace(
                owner,
                account,
                order_id,
                client_ref,
                (new_qty, new_price, new_stop_price),
                out,
            ),
            Command::MassCancel {
                owner,
                client_ref,
                account,
                instrument,
                side,
                ..
            } => {
                let n = self.cancel_where(CancelReason::MassCancel, client_ref, out, |o| {
                    account.is_none_or(|a| a == o.account)
                        && instrument.is_none_or(|i| i == o.instrument)
                        && side.is_none_or(|s| s == o.side)
                });
                out.push(Event::MassCancelDone {
                    owner,
                    request_ref: client_ref,
                    cancelled: n,
                });
            }
            Command::Halt { instrument, .. } | Command::Resume { instrument, .. } => {
                let halted = matches!(cmd, Command::Halt { .. });
                if let Some(ins) = self.instruments.get_mut(instrument as usize) {
                    ins.halted = halted;
                    out.push(Event::InstrumentStatus { instrument, halted });
                }
            }
            Command::SetAccountBlocked {
                account,
                blocked,
                cancel_open,
                ..
            } => {
                if let Some(acc) = self.accounts.get_mut(account as usize) {
                    acc.blocked = blocked;
                    out.push(Event::AccountStatus { account, blocked });
                    if cancel_open {
                        self.cancel_where(CancelReason::KillSwitch, 0, out, |o| {
                            o.account == account
                        });
                    }
                }
            }
            Command::SetReferencePrice {
                instrument, price, ..
            } => {
                if let Some(ins) = self.instruments.get_mut(instrument as usize) {
                    if price > 0 && price <= MAX_PRICE_TICKS {
                        ins.reference = Some(price);
                        out.push(Event::ReferencePrice { instrument, price });
                    }
                }
            }
            Command::EndOfDay { .. } => self.end_of_day(out),
            Command::Tick { .. } => {}
        }
        self.flush_touched(out);
    }

    // ---------------------------------------------------------------- new order

    fn new_order(&mut self, n: &NewOrder, out: &mut Vec<Event>) {
        let req = requested_info(n);
        let reject = |out: &mut Vec<Event>, reason, value, limit| {
            out.push(Event::Rejected {
                order: req,
                reason,
                value,
                limit,
            })
        };
        let Some(ins) = self.instruments.get(n.instrument as usize) else {
            return reject(out, RejectReason::UnknownInstrument, 0, 0);
        };
        let Some(acct) = self.accounts.get(n.account as usize) else {
            return reject(out, RejectReason::UnknownAccount, 0, 0);
        };
        if let Err(r) = validate_shape(n, self.now_ns) {
            return reject(out, r, 0, 0);
        }
        if acct.blocked {
            return reject(out, RejectReason::AccountBlocked, 0, 0);
        }
        if ins.halted {
            return reject(out, RejectReason::InstrumentHalted, 0, 0);
        }
        let band = ins.band();
        if let Some((lo, hi)) = band {
            for (used, p) in [
                (n.ord_type.has_price(), n.price),
                (n.ord_type.is_stop(), n.stop_price),
            ] {
                if used && (p < lo || p > hi) {
                    let limit = if p < lo { lo } else { hi };
                    return reject(out, RejectReason::PriceBand, p, limit);
                }
            }
        }
        if n.post_only && crosses_book(&ins.book, n.side, n.price) {
            return reject(out, RejectReason::WouldTakeLiquidity, 0, 0);
        }
        if self.slab.live >= self.settings.max_orders {
            let max = self.settings.max_orders as i64;
            return reject(out, RejectReason::EngineFull, max, max);
        }
        let risk_price = match n.ord_type {
            OrdType::Limit | OrdType::StopLimit => n.price,
            OrdType::Stop => n.stop_price,
            OrdType::Market => market_risk_price(ins, n.side, band),
        };
        let ai = &self.acct_inst[self.ai_index(n.account, n.instrument)];
        let exposure = Exposure {
            side: n.side,
            qty: n.qty,
            leaves: n.qty,
            risk_price,
            old_leaves: 0,
            old_risk_price: 0,
            new_order: true,
        };
        let cash = ins.spec.cash_per_tick_lot;
        if let Err((reason, v, l)) = risk::check(acct, ai, &exposure, cash) {
            return reject(out, reason, v, l);
        }
        self.seq += 1;
        let order = Order {
            client_ref: n.client_ref,
            owner: n.owner,
            account: n.account,
            instrument: n.instrument,
            side: n.side,
            ord_type: n.ord_type,
            tif: n.tif,
            state: OrderState::Active,
            post_only: n.post_only,
            price: if n.ord_type.has_price() { n.price } else { 0 },
            stop_price: if n.ord_type.is_stop() {
                n.stop_price
            } else {
                0
            },
            qty: n.qty,
            max_floor: if n.max_floor >= n.qty { 0 } else { n.max_floor },
            expire_ts_ns: if n.tif == Tif::Gtd { n.expire_ts_ns } else { 0 },
            seq: self.seq,
            risk_price,
            ..Order::EMPTY
        };
        let slot = self.slab.insert(order);
        self.reserve(slot, n.qty, 1);
        self.accounts[n.account as usize].open_orders += 1;
        if n.tif == Tif::Gtd {
            self.expiries
                .insert((n.expire_ts_ns, self.slab.get(slot).id));
        }
        out.push(Event::Accepted {
            order: self.slab.get(slot).info(false),
        });
        if n.ord_type.is_stop() {
            self.park_stop(slot);
        } else {
            self.execute(slot, out);
        }
        self.run_stops(n.instrument, out);
    }

    /// Matches an active (non-stop) order, then rests or cancels its remainder.
    fn execute(&mut self, slot: u32, out: &mut Vec<Event>) {
        let o = *self.slab.get(slot);
        let ins = &self.instruments[o.instrument as usize];
        let is_market = matches!(o.ord_type, OrdType::Market | OrdType::Stop);
        let band = ins.band();
        let limit = if is_market {
            match (o.side, band) {
                (Side::Buy, Some((_, hi))) => hi,
                (Side::Sell, Some((lo, _))) => lo,
                (Side::Buy, None) => Ticks::MAX,
                (Side::Sell, None) => Ticks::MIN,
            }
        } else {
            o.price
        };
        if o.tif == Tif::Fok && self.reachable(&o, limit) < o.leaves() {
            return self.cancel_slot(slot, CancelReason::FokUnfilled, 0, out);
        }
        let end = self.match_aggressor(slot, limit, out);
        if self.slab.get(slot).leaves() == 0 {
            return self.finish(slot);
        }
        let reason = match end {
            MatchEnd::SelfTrade => CancelReason::SelfTrade,
            _ if !is_market && o.tif.rests() => return self.rest(slot),
            _ if !is_market => CancelReason::IocRemainder,
            MatchEnd::NoCross => CancelReason::PriceBand,
            _ => CancelReason::MarketNoLiquidity,
        };
        self.cancel_slot(slot, reason, 0, out);
    }

    /// Quantity an aggressor could fill at `limit` or better, honouring STP.
    fn reachable(&self, o: &Order, limit: Ticks) -> Lots {
        let ins = &self.instruments[o.instrument as usize];
        let stp = self.accounts[o.account as usize].stp;
        let need = o.leaves();
        let mut got: Lots = 0;
        for level in ins.book.level_slots(o.side.opposite()) {
            if got >= need || !crosses(o.side, limit, level.price) {
                break;
            }
            if stp == StpMode::Allow {
                got += level.total_qty;
                continue;
            }
            let at_level_start = got;
            let mut ahead_visible: Lots = 0;
            let mut cur = level.head;
            while cur != NIL {
                let m = self.slab.get(cur);
                if m.account != o.account {
                    got += m.leaves();
                    ahead_visible += m.visible;
                } else if stp != StpMode::CancelResting {
                    // Matching stops at the first own order; icebergs ahead of it
                    // give only their displayed slice before refilling behind it.
                    return at_level_start + ahead_visible;
                }
                cur = m.next;
            }
        }
        got
    }

    /// Core price-time matching loop of one aggressor against the opposite side.
    fn match_aggressor(&mut self, slot: u32, limit: Ticks, out: &mut Vec<Event>) -> MatchEnd {
        let (side, account, inst) = {
            let t = self.slab.get(slot);
            (t.side, t.account, t.instrument)
        };
        let stp = self.accounts[account as usize].stp;
        // Under STP the queue walk stops at the first own order (handled here).
        let own = (stp != StpMode::Allow).then_some(account);
        let opp = side.opposite();
        loop {
            if self.slab.get(slot).leaves() == 0 {
                return MatchEnd::Filled;
            }
            let book = &self.instruments[inst as usize].book;
            let Some(l) = book.best_slot(opp) else {
                return MatchEnd::NoLiquidity;
            };
            let level = book.level(l);
            let (price, head, qty, count) =
                (level.price, level.head, level.visible_qty, level.count);
            if !crosses(side, limit, price) {
                return MatchEnd::NoCross;
            }
            if own == Some(self.slab.get(head).account) {
                if stp != StpMode::CancelAggressor {
                    self.cancel_slot(head, CancelReason::SelfTrade, 0, out);
                }
                if stp == StpMode::CancelResting {
                    continue;
                }
                return MatchEnd::SelfTrade;
            }
            // One touch per level: the state before its first fill.
            touch(&mut self.touched, inst, opp, price, l, qty, count);
            self.fill_level(inst, slot, l, price, own, out);
        }
    }

    /// Trades taker `t` against the queue of level `l` from its head (the head is not an
    /// own order under STP) until the taker is done, the level is gone, an iceberg refills,
    /// or the next head is an own order (`own`); the caller's loop takes it from there.
    ///
    /// Per fill: the Trade event and the maker (its quantities only while it keeps working; a
    /// done maker's slot is freed on the spot, in the order's own cache line). Positions and
    /// reservations are booked fill by fill only where fills of one position interleave (a
    /// maker of the taker's account), reduce it, or could saturate (see `MakerRun`,
    /// `TakerFill`, `Position::grows_with`); everything else is derived from the lots left to
    /// the taker when a run of makers or the level ends. Once per call: the level's aggregates
    /// and queue head, the taker's quantities and (when exactly equal, see
    /// `taker_release_batched`) its reservation release, the taker's position while its fills
    /// only add to it. Once per run of makers of one account: see `MakerRun`.
    fn fill_level(
        &mut self,
        inst: InstrumentId,
        t: u32,
        l: u32,
        price: Ticks,
        own: Option<AccountId>,
        out: &mut Vec<Event>,
    ) {
        let n_inst = self.instruments.len();
        let ins = &mut self.instruments[inst as usize];
        let cash = ins.spec.cash_per_tick_lot;
        ins.last_trade = Some(price);
        let book = &mut ins.book;
        let taker = self.slab.get(t);
        let (t_id, t_side, leaves0) = (taker.id, taker.side, taker.leaves());
        let lf = LevelFill {
            n_inst,
            side: t_side.opposite(),
            price,
            cash,
            taker_account: taker.account,
        };
        let mut tk = TakerFill::start(&lf, taker, inst, &self.accounts, &self.acct_inst);
        let mut m = book.level(l).head;
        let first = self.slab.get(m).account;
        let start = |accounts: &[AccountState], acct_inst: &[AcctInst], account, left, freed| {
            MakerRun::start(&lf, accounts, acct_inst, account, inst, left, freed)
        };
        let mut makers = start(&self.accounts, &self.acct_inst, first, leaves0, 0);
        tk.run_starts(first, leaves0, price);
        // Anything to book for each fill beyond its Trade and its maker.
        let mut per_fill = makers.per_fill || tk.per_fill(makers.account);
        // The taker's lots still to fill; every sum over the fills derives from it.
        let mut left = leaves0;
        let mut trade_id = self.next_trade_id;
        let mut free_head = self.slab.free_head;
        let mut freed = 0u32;
        let mut refill = false;
        // The loop's state, borrowed once (not reloaded through `self` after each push).
        let (orders, accounts, acct_inst) = (
            &mut self.slab.orders[..],
            &mut self.accounts[..],
            &mut self.acct_inst[..],
        );
        let next = loop {
            let mo = &mut orders[m as usize];
            if mo.account != makers.account {
                makers.settle(&lf, accounts, acct_inst, left, freed);
                tk.run_ends(makers.account, left);
                makers = start(accounts, acct_inst, mo.account, left, freed);
                tk.run_starts(makers.account, left, price);
                per_fill = makers.per_fill || tk.per_fill(makers.account);
            }
            let (visible, leaves) = (mo.visible, mo.leaves());
            let q = left.min(visible);
            left -= q;
            out.push(Event::Trade {
                trade_id,
                instrument: inst,
                price,
                qty: q,
                aggressor: t_side,
                maker_order_id: mo.id,
                taker_order_id: t_id,
            });
            trade_id += 1;
            debug_assert_eq!(
                mo.risk_price, price,
                "a resting order's risk price is its price"
            );
            if per_fill {
                if makers.per_fill {
                    makers.fill_each(&lf, accounts, acct_inst, q);
                }
                // (Only a run of the taker's account changes `tk.adds`, when it ends.)
                tk.fill(&lf, accounts, acct_inst, makers.account, q, left);
            }
            if q < leaves {
                // The maker keeps working: its fill is booked into it.
                mo.cum_qty += q;
                mo.cum_notional += q as i64 * price;
                mo.visible = visible - q;
                if q < visible {
                    break m; // it still shows quantity: the taker is done
                }
                // Iceberg: its hidden part leaves the level too, and comes back refilled.
                refill = true;
                break mo.next;
            }
            // The maker is done: it leaves the queue and its slot is freed (nothing reads a
            // free slot's quantities, so they are not written).
            let next = mo.next;
            if mo.tif == Tif::Gtd {
                self.expiries.remove(&(mo.expire_ts_ns, mo.id));
            }
            free_head = free_order(mo, m, free_head);
            freed += 1;
            if next == NIL || left == 0 || own.is_some_and(|a| a == orders[next as usize].account) {
                break next;
            }
            m = next;
        };
        self.next_trade_id = trade_id;
        self.slab.free_head = free_head;
        self.slab.live -= freed;
        makers.settle(&lf, &mut self.accounts, &mut self.acct_inst, left, freed);
        tk.run_ends(makers.account, left);
        let lots = leaves0 - left;
        let hidden = if refill { self.slab.get(m).leaves() } else { 0 };
        let book = &mut self.instruments[inst as usize].book;
        let kept = book.traded_run(
            &mut self.slab,
            l,
            (lots, hidden, freed + refill as u32),
            next,
        );
        let to = self.slab.get_mut(t);
        to.cum_qty += lots;
        to.cum_notional += lots as i64 * price;
        tk.finish(&lf, &mut self.accounts, &mut self.acct_inst, lots, left);
        if refill {
            // Iceberg refill: a new displayed slice at the back of the queue.
            debug_assert!(kept || next == NIL);
            self.seq += 1;
            let o = self.slab.get_mut(m);
            o.visible = o.display_slice();
            o.seq = self.seq;
            let maker_side = o.side;
            let book = &mut self.instruments[inst as usize].book;
            book.push_back(&mut self.slab, m);
            // The level may have been recreated in another slot: record where it is now.
            let nl = self.slab.get(m).level;
            let lvl = book.level(nl);
            touch(
                &mut self.touched,
                inst,
                maker_side,
                price,
                nl,
                lvl.visible_qty,
                lvl.count,
            );
        }
    }

    /// Puts an active order's remainder on the book.
    fn rest(&mut self, slot: u32) {
        let o = self.slab.get_mut(slot);
        o.visible = o.display_slice();
        let (inst, side, price) = (o.instrument, o.side, o.price);
        let book = &mut self.instruments[inst as usize].book;
        book.push_back(&mut self.slab, slot);
        let ls = self.slab.get(slot).level;
        let l = *book.level(ls);
        let vis = self.slab.get(slot).visible;
        self.touch(inst, side, price, ls, l.visible_qty - vis, l.count - 1);
    }

    // ---------------------------------------------------------------- stops

    fn park_stop(&mut self, slot: u32) {
        let o = self.slab.get_mut(slot);
        o.state = OrderState::Stop;
        let (inst, side, stop, seq) = (o.instrument, o.side, o.stop_price, o.seq);
        let ins = &mut self.instruments[inst as usize];
        match side {
            Side::Buy => ins.buy_stops.insert((stop, seq), slot),
            Side::Sell => ins.sell_stops.insert((-stop, seq), slot),
        };
    }

    fn unpark_stop(&mut self, slot: u32) {
        let o = *self.slab.get(slot);
        let ins = &mut self.instruments[o.instrument as usize];
        match o.side {
            Side::Buy => ins.buy_stops.remove(&(o.stop_price, o.seq)),
            Side::Sell => ins.sell_stops.remove(&(-o.stop_price, o.seq)),
        };
    }

    /// Triggers stops reached by the last trade price, oldest first, until none is left.
    fn run_stops(&mut self, inst: InstrumentId, out: &mut Vec<Event>) {
        loop {
            let ins = &self.instruments[inst as usize];
            let Some(last) = ins.last_trade else { return };
            let buy = ins
                .buy_stops
                .first_key_value()
                .filter(|(k, _)| k.0 <= last)
                .map(|(k, &s)| (k.1, s));
            let sell = ins
                .sell_stops
                .first_key_value()
                .filter(|(k, _)| -k.0 >= last)
                .map(|(k, &s)| (k.1, s));
            let slot = match (buy, sell) {
                (Some(b), Some(s)) => {
                    if b.0 < s.0 {
                        b.1
                    } else {
                        s.1
                    }
                }
                (Some(b), None) => b.1,
                (None, Some(s)) => s.1,
                (None, None) => return,
            };
            self.unpark_stop(slot);
            self.seq += 1;
            let o = self.slab.get_mut(slot);
            o.state = OrderState::Active;
            o.triggered = true;
            o.seq = self.seq;
            out.push(Event::Triggered {
                order: o.info(false),
            });
            self.execute(slot, out);
        }
    }

    // ---------------------------------------------------------------- cancel / replace

    fn lookup(&self, account: AccountId, order_id: OrderId) -> Option<u32> {
        let slot = self.slab.slot_of(order_id)?;
        (self.slab.get(slot).account == account).then_some(slot)
    }

    fn cancel(
        &mut self,
        owner: Owner,
        account: AccountId,
        id: OrderId,
        req: u64,
        out: &mut Vec<Event>,
    ) {
        match self.lookup(account, id) {
            Some(slot)
                if self.touched.is_empty() && self.slab.get(slot).state == OrderState::Resting =>
            {
                self.cancel_resting(slot, req, out)
            }
            Some(slot) => self.cancel_slot(slot, CancelReason::User, req, out),
            None => out.push(Event::CancelRejected {
                owner,
                order_id: id,
                request_ref: req,
                reason: CancelRejectReason::UnknownOrder,
            }),
        }
    }

    fn replace(
        &mut self,
        owner: Owner,
        account: AccountId,
        id: OrderId,
        req: u64,
        (new_qty, new_price, new_stop): (Lots, Ticks, Ticks),
        out: &mut Vec<Event>,
    ) {
        let refuse = |out: &mut Vec<Event>, reason| {
            out.push(Event::ReplaceRejected {
                owner,
                order_id: id,
                request_ref: req,
                reason,
            })
        };
        let Some(slot) = self.lookup(account, id) else {
            return refuse(out, CancelRejectReason::UnknownOrder);
        };
        let o = *self.slab.get(slot);
        let ins = &self.instruments[o.instrument as usize];
        if ins.halted {
            return refuse(out, CancelRejectReason::InstrumentHalted);
        }
        if new_qty <= o.cum_qty {
            return refuse(out, CancelRejectReason::QtyBelowFilled);
        }
        let untriggered = o.state == OrderState::Stop;
        let price = if o.ord_type.has_price() { new_price } else { 0 };
        let stop = if untriggered { new_stop } else { o.stop_price };
        if new_qty > MAX_QTY_LOTS
            || (o.ord_type.has_price() && !(1..=MAX_PRICE_TICKS).contains(&price))
            || (untriggered && !(1..=MAX_PRICE_TICKS).contains(&stop))
        {
            return refuse(out, CancelRejectReason::InvalidReplace);
        }
        let risk_reject = |out: &mut Vec<Event>, r| refuse(out, CancelRejectReason::Risk(r));
        if let Some((lo, hi)) = ins.band() {
            let bad = |p: Ticks| p < lo || p > hi;
            if (o.ord_type.has_price() && bad(price)) || (untriggered && bad(stop)) {
                return risk_reject(out, RejectReason::PriceBand);
            }
        }
        if o.post_only && crosses_book(&ins.book, o.side, price) {
            return risk_reject(out, RejectReason::WouldTakeLiquidity);
        }
        let risk_price = match o.ord_type {
            OrdType::Stop => stop,
            _ => price,
        };
        let exposure = Exposure {
            side: o.side,
            qty: new_qty,
            leaves: new_qty - o.cum_qty,
            risk_price,
            old_leaves: o.leaves(),
            old_risk_price: o.risk_price,
            new_order: false,
        };
        let ai = &self.acct_inst[self.ai_index(o.account, o.instrument)];
        let acct = &self.accounts[o.account as usize];
        if let Err((r, _, _)) = risk::check(acct, ai, &exposure, ins.spec.cash_per_tick_lot) {
            return risk_reject(out, r);
        }
        // Apply: swap the reservation, then re-queue unless priority is kept.
        self.reserve(slot, o.leaves(), -1);
        let keeps_priority = new_qty <= o.qty && price == o.price && stop == o.stop_price;
        if untriggered {
            self.unpark_stop(slot);
        } else if !keeps_priority {
            self.unlink_resting(slot);
        }
        let new_leaves = new_qty - o.cum_qty;
        {
            let m = self.slab.get_mut(slot);
            m.qty = new_qty;
            m.price = price;
            m.stop_price = stop;
            m.risk_price = risk_price;
            m.client_ref = req;
        }
        self.reserve(slot, new_leaves, 1);
        out.push(Event::Replaced {
            order: self.slab.get(slot).info(false),
            orig_client_ref: o.client_ref,
        });
        if !keeps_priority {
            self.seq += 1;
            self.slab.get_mut(slot).seq = self.seq;
        }
        if untriggered {
            self.park_stop(slot);
        } else if keeps_priority {
            self.shrink_in_place(slot, o.leaves() - new_leaves);
        } else {
            self.slab.get_mut(slot).state = OrderState::Active;
            self.execute(slot, out);
        }
        self.run_stops(o.instrument, out);
    }

    /// Reduces a resting order's leaves by `by` without moving it.
    fn shrink_in_place(&mut self, slot: u32, by: Lots) {
        if by == 0 {
            return;
        }
        let o = *self.slab.get(slot);
        let ins = &mut self.instruments[o.instrument as usize];
        let lvl = *ins.book.level(o.level);
        self.touch(
            o.instrument,
            o.side,
            o.price,
            o.level,
            lvl.visible_qty,
            lvl.count,
        );
        let new_visible = o.visible.min(o.leaves());
        self.slab.get_mut(slot).visible = new_visible;
        let ins = &mut self.instruments[o.instrument as usize];
        ins.book
            .adjust(o.level, new_visible as i64 - o.visible as i64, -(by as i64));
    }

    /// Takes a resting order off its level (recording the level change).
    #[inline]
    fn unlink_resting(&mut self, slot: u32) {
        let o = self.slab.get(slot);
        let (inst, side, price, l) = (o.instrument, o.side, o.price, o.level);
        let book = &mut self.instruments[inst as usize].book;
        let lvl = book.level(l);
        let (qty, count) = (lvl.visible_qty, lvl.count);
        book.unlink(&mut self.slab, slot);
        touch(&mut self.touched, inst, side, price, l, qty, count);
    }

    /// Removes a working order with a Cancelled event.
    #[inline]
    fn cancel_slot(&mut self, slot: u32, reason: CancelReason, req: u64, out: &mut Vec<Event>) {
        self.take_out(slot);
        out.push(Event::Cancelled {
            order: self.slab.get(slot).info(true),
            reason,
            request_ref: req,
        });
        self.finish(slot);
    }

    /// `cancel_slot` for a user cancel of a resting order when no level was touched yet in
    /// this command: the level's BookLevelChanged is emitted here, as `flush_touched` would.
    fn cancel_resting(&mut self, slot: u32, req: u64, out: &mut Vec<Event>) {
        let o = self.slab.get(slot);
        let (inst, side, price, l) = (o.instrument, o.side, o.price, o.level);
        let leaves = o.leaves();
        let book = &mut self.instruments[inst as usize].book;
        let lvl = book.level(l);
        let (qty_before, count_before) = (lvl.visible_qty, lvl.count);
        book.unlink(&mut self.slab, slot);
        self.reserve(slot, leaves, -1);
        out.push(Event::Cancelled {
            order: self.slab.get(slot).info(true),
            reason: CancelReason::User,
            request_ref: req,
        });
        finish_order(&mut self.slab, &mut self.accounts, &mut self.expiries, slot);
        let t = Touched {
            instrument: inst,
            side,
            price,
            order: 0,
            level: l,
            qty_before,
            count_before,
        };
        self.level_changed(&t, &t, out);
    }

    /// Removes a working order with an Expired event.
    fn expire_slot(&mut self, slot: u32, out: &mut Vec<Event>) {
        self.take_out(slot);
        out.push(Event::Expired {
            order: self.slab.get(slot).info(true),
        });
        self.finish(slot);
    }

    /// Detaches an order from book or stop list and releases its reservation.
    #[inline]
    fn take_out(&mut self, slot: u32) {
        let o = self.slab.get(slot);
        let leaves = o.leaves();
        match o.state {
            OrderState::Resting => self.unlink_resting(slot),
            OrderState::Stop => self.unpark_stop(slot),
            OrderState::Active | OrderState::Free => {}
        }
        self.reserve(slot, leaves, -1);
    }

    /// Frees a done order's slot (it must be off the book already).
    #[inline]
    fn finish(&mut self, slot: u32) {
        finish_order(&mut self.slab, &mut self.accounts, &mut self.expiries, slot);
    }

    /// Cancels every working order matching `pred`, in slot order; returns how many.
    fn cancel_where(
        &mut self,
        reason: CancelReason,
        req: u64,
        out: &mut Vec<Event>,
        pred: impl Fn(&Order) -> bool,
    ) -> u32 {
        let mut slots = std::mem::take(&mut self.scratch);
        slots.clear();
        slots.extend(
            self.slab
                .orders
                .iter()
                .enumerate()
                .filter(|(_, o)| o.state != OrderState::Free && pred(o))
                .map(|(i, _)| i as u32),
        );
        for &s in &slots {
            self.cancel_slot(s, reason, req, out);
        }
        let n = slots.len() as u32;
        self.scratch = slots;
        n
    }

    // ---------------------------------------------------------------- time

    fn expire_due(&mut self, out: &mut Vec<Event>) {
        while let Some(&(ts, id)) = self.expiries.first() {
            if ts > self.now_ns {
                break;
            }
            self.expiries.pop_first();
            if let Some(slot) = self.slab.slot_of(id) {
                self.expire_slot(slot, out);
            }
        }
    }

    fn end_of_day(&mut self, out: &mut Vec<Event>) {
        let mut slots = std::mem::take(&mut self.scratch);
        slots.clear();
        slots.extend(
            self.slab
                .orders
                .iter()
                .enumerate()
                .filter(|(_, o)| o.state != OrderState::Free && o.tif == Tif::Day)
                .map(|(i, _)| i as u32),
        );
        for &s in &slots {
            self.expire_slot(s, out);
        }
        self.scratch = slots;
    }

    // ---------------------------------------------------------------- bookkeeping

    #[inline]
    fn ai_index(&self, account: AccountId, instrument: InstrumentId) -> usize {
        account as usize * self.instruments.len() + instrument as usize
    }

    /// Reserves (+1) or releases (-1) `lots` of an order's exposure.
    #[inline(always)]
    fn reserve(&mut self, slot: u32, lots: Lots, sign: i64) {
        let o = self.slab.get(slot);
        let (account, inst, side, rp) = (o.account, o.instrument, o.side, o.risk_price);
        let i = self.ai_index(account, inst);
        let cash = self.instruments[inst as usize].spec.cash_per_tick_lot;
        risk::reserve(
            &mut self.accounts[account as usize],
            &mut self.acct_inst[i],
            side,
            lots,
            rp,
            cash,
            sign,
        );
    }

    /// Records a level about to change (with its state before the change).
    #[inline]
    fn touch(
        &mut self,
        instrument: InstrumentId,
        side: Side,
        price: Ticks,
        level: u32,
        qty: Lots,
        count: u32,
    ) {
        touch(
            &mut self.touched,
            instrument,
            side,
            price,
            level,
            qty,
            count,
        );
    }

    /// Emits one BookLevelChanged per level whose displayed aggregate changed:
    /// state before its first touch vs. its level slot after the last touch.
    #[inline]
    fn flush_touched(&mut self, out: &mut Vec<Event>) {
        match self.touched.len() {
            0 => {}
            1 => {
                let t = self.touched[0];
                self.touched.clear();
                self.level_changed(&t, &t, out);
            }
            _ => self.flush_touched_many(out),
        }
    }

    fn flush_touched_many(&mut self, out: &mut Vec<Event>) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable_by_key(|t| (t.instrument, t.side, t.price, t.order));
        let mut i = 0;
        while i < touched.len() {
            let first = touched[i];
            let key = (first.instrument, first.side, first.price);
            let mut last = first;
            while i < touched.len()
                && (touched[i].instrument, touched[i].side, touched[i].price) == key
            {
                last = touched[i];
                i += 1;
            }
            self.level_changed(&first, &last, out);
        }
        touched.clear();
        self.touched = touched;
    }

    /// One BookLevelChanged if a level's displayed aggregate differs from before its
    /// `first` touch (`last` names the level slot after the last touch).
    #[inline]
    fn level_changed(&self, first: &Touched, last: &Touched, out: &mut Vec<Event>) {
        let lvl = self.instruments[first.instrument as usize]
            .book
            .level(last.level);
        let (qty, order_count) =
            if lvl.count > 0 && lvl.price == first.price && lvl.side == first.side {
                (lvl.visible_qty, lvl.count)
            } else {
                (0, 0)
            };
        if (qty, order_count) != (first.qty_before, first.count_before) {
            out.push(Event::BookLevelChanged {
                instrument: first.instrument,
                side: first.side,
                price: first.price,
                qty,
                order_count,
            });
        }
    }

    // ---------------------------------------------------------------- queries

    /// The book of an instrument.
    pub fn book(&self, instrument: InstrumentId) -> Option<&Book> {
        Some(&self.instruments.get(instrument as usize)?.book)
    }

    /// A working order's current state.
    pub fn order(&self, order_id: OrderId) -> Option<OrderInfo> {
        let slot = self.slab.slot_of(order_id)?;
        Some(self.slab.get(slot).info(false))
    }

    /// Working orders in the engine (resting and stop).
    pub fn order_count(&self) -> u32 {
        self.slab.live
    }

    /// Position and P&L of an account in an instrument.
    pub fn position(&self, account: AccountId, instrument: InstrumentId) -> Option<PositionView> {
        if account as usize >= self.accounts.len() {
            return None;
        }
        let ins = self.instruments.get(instrument as usize)?;
        let position = self.acct_inst[self.ai_index(account, instrument)].pos;
        Some(PositionView {
            position,
            mark: ins.last_trade,
            unrealized: ins.last_trade.map_or(0, |m| position.unrealized(m)),
        })
    }

    /// Money totals of an account across instruments.
    pub fn account_totals(&self, account: AccountId) -> Option<AccountTotals> {
        let acct = self.accounts.get(account as usize)?;
        let mut t = AccountTotals {
            position_cost_cash: acct.position_cost_cash,
            open_buy_cash: acct.open_buy_cash,
            open_orders: acct.open_orders,
            ..AccountTotals::default()
        };
        for (i, ins) in self.instruments.iter().enumerate() {
            let p = self.position(account, i as InstrumentId)?;
            let cash = ins.spec.cash_per_tick_lot;
            t.realized_cash += p.position.realized.saturating_mul(cash);
            t.unrealized_cash += p.unrealized.saturating_mul(cash);
        }
        Some(t)
    }

    /// True while the instrument is halted.
    pub fn is_halted(&self, instrument: InstrumentId) -> bool {
        self.instruments
            .get(instrument as usize)
            .is_some_and(|i| i.halted)
    }

    /// True while the account is blocked.
    pub fn is_blocked(&self, account: AccountId) -> bool {
        self.accounts
            .get(account as usize)
            .is_some_and(|a| a.blocked)
    }

    /// Last trade price of an instrument.
    pub fn last_trade_price(&self, instrument: InstrumentId) -> Option<Ticks> {
        self.instruments.get(instrument as usize)?.last_trade
    }

    /// Current price band `[low, high]` of an instrument.
    pub fn price_band(&self, instrument: InstrumentId) -> Option<(Ticks, Ticks)> {
        self.instruments.get(instrument as usize)?.band()
    }

    /// Latest timestamp seen.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Trades so far (the next trade id minus one).
    pub fn trade_count(&self) -> u64 {
        self.next_trade_id - 1
    }

    /// Checks every structural invariant (books, indexes, reservations); for tests and audits.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut resting = 0u32;
        let mut open = vec![0u32; self.accounts.len()];
        let mut open_lots = vec![(0u64, 0u64); self.acct_inst.len()];
        let mut open_buy_cash = vec![0i64; self.accounts.len()];
        for (slot, o) in self.slab.orders.iter().enumerate() {
            if o.state == OrderState::Free {
                continue;
            }
            if o.cum_qty >= o.qty {
                return Err(format!(
                    "order {} live but filled {}/{}",
                    o.id, o.cum_qty, o.qty
                ));
            }
            if o.state == OrderState::Active {
                return Err(format!("order {} left active between commands", o.id));
            }
            if self.slab.slot_of(o.id) != Some(slot as u32) {
                return Err(format!("order {} id does not resolve to its slot", o.id));
            }
            let ins = &self.instruments[o.instrument as usize];
            match o.state {
                OrderState::Resting => resting += 1,
                OrderState::Stop => {
                    let present = match o.side {
                        Side::Buy => ins.buy_stops.get(&(o.stop_price, o.seq)),
                        Side::Sell => ins.sell_stops.get(&(-o.stop_price, o.seq)),
                    };
                    if present != Some(&(slot as u32)) {
                        return Err(format!("stop order {} not indexed", o.id));
                    }
                }
                _ => {}
            }
            if o.tif == Tif::Gtd && !self.expiries.contains(&(o.expire_ts_ns, o.id)) {
                return Err(format!("GTD order {} not in expiry index", o.id));
            }
            open[o.account as usize] += 1;
            let i = self.ai_index(o.account, o.instrument);
            match o.side {
                Side::Buy => {
                    open_lots[i].0 += o.leaves();
                    let cash = (o.leaves() as i64)
                        .saturating_mul(o.risk_price)
                        .saturating_mul(ins.spec.cash_per_tick_lot);
                    let sum = &mut open_buy_cash[o.account as usize];
                    *sum = sum.saturating_add(cash);
                }
                Side::Sell => open_lots[i].1 += o.leaves(),
            }
        }
        let mut in_books = 0u32;
        let mut stops = 0usize;
        for (i, ins) in self.instruments.iter().enumerate() {
            ins.book
                .check_invariants(&self.slab)
                .map_err(|e| format!("instrument {i}: {e}"))?;
            for side in [Side::Buy, Side::Sell] {
                in_books += ins
                    .book
                    .levels_iter(side)
                    .map(|l| l.order_count)
                    .sum::<u32>();
            }
            stops += ins.buy_stops.len() + ins.sell_stops.len();
        }
        if in_books != resting {
            return Err(format!("{resting} resting orders but {in_books} in books"));
        }
        if stops + resting as usize != self.slab.live as usize {
            return Err("live count mismatch".into());
        }
        let free = self.slab.free_slots();
        if free.len() + self.slab.live as usize != self.slab.orders.len()
            || free
                .iter()
                .any(|&f| self.slab.get(f).state != OrderState::Free)
        {
            return Err("free list does not hold exactly the free slots".into());
        }
        if self.expiries.len() > self.slab.live as usize {
            return Err("stale expiry entries".into());
        }
        for (a, acct) in self.accounts.iter().enumerate() {
            if acct.open_orders != open[a] {
                return Err(format!(
                    "account {a}: open_orders {} != {}",
                    acct.open_orders, open[a]
                ));
            }
            if acct.open_buy_cash != open_buy_cash[a] {
                return Err(format!("account {a}: open buy notional out of sync"));
            }
        }
        for (i, ai) in self.acct_inst.iter().enumerate() {
            if (ai.open_buy_lots, ai.open_sell_lots) != open_lots[i] {
                return Err(format!("account/instrument {i}: open lots out of sync"));
            }
        }
        Ok(())
    }
}

/// Records a level about to change (with its state before the change).
#[inline]
fn touch(
    touched: &mut Vec<Touched>,
    instrument: InstrumentId,
    side: Side,
    price: Ticks,
    level: u32,
    qty: Lots,
    count: u32,
) {
    // Consecutive fills at one level: the first touch already holds what flush needs.
    if let Some(t) = touched.last() {
        if (t.instrument, t.side, t.price, t.level) == (instrument, side, price, level) {
            return;
        }
    }
    let order = touched.len() as u32;
    touched.push(Touched {
        instrument,
        side,
        price,
        order,
        level,
        qty_before: qty,
        count_before: count,
    });
}

/// What every fill of one `Engine::fill_level` call shares.
#[derive(Debug, Clone, Copy)]
struct LevelFill {
    /// Instruments in the engine (for `acct_inst` indexes).
    n_inst: usize,
    /// The makers' side.
    side: Side,
    price: Ticks,
    cash: i64,
    taker_account: AccountId,
}

/// The taker's position and reservation during `Engine::fill_level`: its reservation is
/// released once for the level when that is exact (`taker_release_batched`), its account's
/// position cost booked once when exact (`cost_deferred`), and its fills booked into its
/// position as one while they only add to it; a maker of its account (same position) first
/// books the taker's pending lots, then its own fill, then the taker's, in that order.
#[derive(Debug, Clone, Copy)]
struct TakerFill {
    account: AccountId,
    ai: usize,
    side: Side,
    risk_price: Ticks,
    batched: bool,
    pos: Position,
    cost0: i64,
    deferred: bool,
    /// The taker's fills add to its position: they wait to be booked as one.
    adds: bool,
    /// The taker's lots left when its position last had all its fills: the lots traded since
    /// (`mark` - lots left) are not booked into `pos` yet.
    mark: Lots,
}

impl TakerFill {
    #[inline]
    fn start(
        lf: &LevelFill,
        taker: &Order,
        inst: InstrumentId,
        accounts: &[AccountState],
        acct_inst: &[AcctInst],
    ) -> TakerFill {
        let ai = taker.account as usize * lf.n_inst + inst as usize;
        let acct = &accounts[taker.account as usize];
        let left = taker.leaves();
        let batched = taker_release_batched(acct, taker.side, left, taker.risk_price, lf.cash);
        let pos = acct_inst[ai].pos;
        let cost0 = pos.open_cost.saturating_abs();
        let deferred = cost_deferred(acct, cost0, left, lf.price, lf.cash);
        TakerFill {
            account: taker.account,
            ai,
            side: taker.side,
            risk_price: taker.risk_price,
            batched,
            pos,
            cost0,
            deferred,
            adds: deferred && pos.grows_with(taker.side),
            mark: left,
        }
    }

    /// A run of makers of `maker_account` starts, the taker has `left` lots to fill: a run of
    /// its own account trades into its position, so the lots it traded before are booked now.
    #[inline(never)]
    fn run_starts(&mut self, maker_account: AccountId, left: Lots, price: Ticks) {
        if maker_account == self.account && self.mark > left {
            self.pos.apply_fill(self.side, self.mark - left, price);
            self.mark = left;
        }
    }

    /// A run of makers of `maker_account` ended, the taker has `left` lots to fill: after a
    /// run of its own account (every fill booked), the taker's next fills are booked as one
    /// again if they add to its position.
    #[inline(never)]
    fn run_ends(&mut self, maker_account: AccountId, left: Lots) {
        if maker_account == self.account {
            self.adds = self.deferred && self.pos.grows_with(self.side);
            self.mark = left;
        }
    }

    /// True when a fill against a maker of `maker_account` books something for the taker.
    #[inline]
    fn per_fill(&self, maker_account: AccountId) -> bool {
        maker_account == self.account || !self.adds || !self.batched
    }

    /// One fill of `q` lots against a maker of `maker_account`, `left` lots to fill after it.
    #[inline]
    fn fill(
        &mut self,
        lf: &LevelFill,
        accounts: &mut [AccountState],
        acct_inst: &mut [AcctInst],
        maker_account: AccountId,
        q: Lots,
        left: Lots,
    ) {
        let (price, cash) = (lf.price, lf.cash);
        let a = self.account as usize;
        if maker_account == self.account {
            // One position for both sides of the fill: maker first, then taker, in order
            // (the taker's earlier lots were booked when the run started).
            if self.deferred {
                self.pos.apply_fill(lf.side, q, price);
                self.pos.apply_fill(self.side, q, price);
            } else {
                book_fill(&mut accounts[a], &mut self.pos, lf.side, q, price, cash);
                book_fill(&mut accounts[a], &mut self.pos, self.side, q, price, cash);
            }
        } else if !self.adds {
            if self.deferred {
                self.pos.apply_fill(self.side, q, price);
            } else {
                book_fill(&mut accounts[a], &mut self.pos, self.side, q, price, cash);
            }
            self.mark = left;
        }
        if !self.batched {
            let state = &mut acct_inst[self.ai];
            risk::reserve(
                &mut accounts[a],
                state,
                self.side,
                q,
                self.risk_price,
                cash,
                -1,
            );
        }
    }

    /// Books what the level's fills (`lots` in all, `left` lots to fill after them) left for
    /// the end.
    #[inline]
    fn finish(
        mut self,
        lf: &LevelFill,
        accounts: &mut [AccountState],
        acct_inst: &mut [AcctInst],
        lots: Lots,
        left: Lots,
    ) {
        if self.mark > left {
            self.pos.apply_fill(self.side, self.mark - left, lf.price);
        }
        let acct = &mut accounts[self.account as usize];
        let state = &mut acct_inst[self.ai];
        state.pos = self.pos;
        if self.batched {
            risk::reserve(acct, state, self.side, lots, self.risk_price, lf.cash, -1);
        }
        if self.deferred {
            let delta = self.pos.open_cost.saturating_abs() - self.cost0;
            add_position_cost(acct, delta, lf.cash);
        }
    }
}

/// Consecutive makers of one account in a level's queue (all on one side at one price),
/// settled once when the run ends, where that gives exactly what settling each fill gives:
/// the open-order count; the reservation release (lots always; buy notional when no product or
/// running total can saturate, as for the taker); and, for an account other than the taker's,
/// the position when every fill adds to it (flat or on the makers' side: the fills then add
/// up exactly) and the position cost (as the change of |open cost|, when `cost_deferred`).
/// Makers of the taker's account book into the taker's position copy, fill by fill. The run's
/// lots and done makers are the differences of the taker's lots left and of the makers freed
/// from the run's start to its end.
#[derive(Debug, Clone, Copy)]
struct MakerRun {
    account: AccountId,
    ai: usize,
    /// The taker's lots left when the run started.
    left0: Lots,
    /// Makers freed in the level before the run started.
    freed0: u32,
    release_batched: bool,
    /// The account's position (a copy, written back by `settle`; unused for the taker's account).
    pos: Position,
    cost0: i64,
    pos_batched: bool,
    cost_batched: bool,
    /// Something is booked fill by fill (`fill_each`).
    per_fill: bool,
}

impl MakerRun {
    /// A run of `account`'s makers; the taker has `left` lots to fill, `freed` makers of the
    /// level are done.
    #[inline]
    fn start(
        lf: &LevelFill,
        accounts: &[AccountState],
        acct_inst: &[AcctInst],
        account: AccountId,
        inst: InstrumentId,
        left: Lots,
        freed: u32,
    ) -> MakerRun {
        let ai = account as usize * lf.n_inst + inst as usize;
        let acct = &accounts[account as usize];
        let release_batched = taker_release_batched(acct, lf.side, left, lf.price, lf.cash);
        let own = account != lf.taker_account;
        let pos = acct_inst[ai].pos;
        let cost0 = pos.open_cost.saturating_abs();
        let cost_batched = own && cost_deferred(acct, cost0, left, lf.price, lf.cash);
        let pos_batched = cost_batched && pos.grows_with(lf.side);
        MakerRun {
            account,
            ai,
            left0: left,
            freed0: freed,
            release_batched,
            pos,
            cost0,
            pos_batched,
            cost_batched,
            per_fill: !release_batched || (own && !pos_batched),
        }
    }

    /// The part of a fill of `q` lots that a run which cannot be settled at once books fill
    /// by fill.
    #[inline(never)]
    fn fill_each(
        &mut self,
        lf: &LevelFill,
        accounts: &mut [AccountState],
        acct_inst: &mut [AcctInst],
        q: Lots,
    ) {
        let acct = &mut accounts[self.account as usize];
        if !self.release_batched {
            let state = &mut acct_inst[self.ai];
            risk::reserve(acct, state, lf.side, q, lf.price, lf.cash, -1);
        }
        if self.account == lf.taker_account || self.pos_batched {
            return;
        }
        if self.cost_batched {
            self.pos.apply_fill(lf.side, q, lf.price);
        } else {
            book_fill(acct, &mut self.pos, lf.side, q, lf.price, lf.cash);
        }
    }

    /// Books what the run's fills left for the end; the taker has `left` lots to fill and
    /// `freed` makers of the level are done.
    #[inline]
    fn settle(
        mut self,
        lf: &LevelFill,
        accounts: &mut [AccountState],
        acct_inst: &mut [AcctInst],
        left: Lots,
        freed: u32,
    ) {
        let acct = &mut accounts[self.account as usize];
        let state = &mut acct_inst[self.ai];
        let lots = self.left0 - left;
        acct.open_orders -= freed - self.freed0;
        if self.release_batched {
            risk::reserve(acct, state, lf.side, lots, lf.price, lf.cash, -1);
        }
        if self.account == lf.taker_account {
            return;
        }
        if self.pos_batched {
            self.pos.apply_fill(lf.side, lots, lf.price);
        }
        if self.cost_batched {
            let delta = self.pos.open_cost.saturating_abs() - self.cost0;
            add_position_cost(acct, delta, lf.cash);
        }
        state.pos = self.pos;
    }
}

/// Frees a done order's slot (it must be off the book already).
#[inline]
fn finish_order(
    slab: &mut OrderSlab,
    accounts: &mut [AccountState],
    expiries: &mut BTreeSet<(u64, OrderId)>,
    slot: u32,
) {
    let o = slab.get(slot);
    let (account, id, tif, exp) = (o.account, o.id, o.tif, o.expire_ts_ns);
    accounts[account as usize].open_orders -= 1;
    if tif == Tif::Gtd {
        expiries.remove(&(exp, id));
    }
    slab.remove(slot);
}

/// Books a fill into a position and the account's position cost.
#[inline(always)]
fn book_fill(
    acct: &mut AccountState,
    pos: &mut Position,
    side: Side,
    q: Lots,
    price: Ticks,
    cash: i64,
) {
    let before = pos.open_cost.saturating_abs();
    pos.apply_fill(side, q, price);
    add_position_cost(acct, pos.open_cost.saturating_abs() - before, cash);
}

/// Adds a change of an open cost's magnitude (ticks x lots) to the account's position cost.
#[inline(always)]
fn add_position_cost(acct: &mut AccountState, delta: i64, cash: i64) {
    acct.position_cost_cash = acct
        .position_cost_cash
        .saturating_add(delta.saturating_mul(cash));
}

/// True when the position cost of the taker's account can be booked once for a level's fills
/// (the change of the open cost's magnitude from before the first to after the last) and give
/// exactly what booking it fill by fill gives. Those per-fill changes, the taker's and those of
/// makers of the same account (same position), add up to at most |cost before| + 2 x the
/// notional booked into that position, which is at most 2 x `leaves` x `price`; if even that
/// cannot make a product or running total saturate, no step does and the sums are equal.
#[inline]
fn cost_deferred(acct: &AccountState, cost0: i64, leaves: Lots, price: Ticks, cash: i64) -> bool {
    let bound = (4 * leaves as i64)
        .checked_mul(price.saturating_abs())
        .and_then(|v| v.checked_add(cost0))
        .and_then(|moves| moves.checked_mul(cash))
        .and_then(|v| v.checked_add(acct.position_cost_cash.saturating_abs()));
    cash >= 0 && bound.is_some_and(|b| b < i64::MAX)
}

/// True when releasing a taker's reservation once for all its fills at a level gives exactly
/// what releasing it fill by fill would: lots add up exactly, and the buy notional does too as
/// long as no product or running total saturates for the most it can fill. (Makers are on the
/// other side, so nothing else touches these figures meanwhile.)
#[inline]
fn taker_release_batched(
    acct: &AccountState,
    side: Side,
    leaves: Lots,
    risk_price: Ticks,
    cash: i64,
) -> bool {
    match side {
        Side::Sell => true,
        Side::Buy => (leaves as i64)
            .checked_mul(risk_price)
            .and_then(|v| v.checked_mul(cash))
            .is_some_and(|most| most >= 0 && acct.open_buy_cash.checked_sub(most).is_some()),
    }
}

/// The order as requested, for Rejected events.
fn requested_info(n: &NewOrder) -> OrderInfo {
    OrderInfo {
        order_id: 0,
        client_ref: n.client_ref,
        owner: n.owner,
        account: n.account,
        instrument: n.instrument,
        side: n.side,
        ord_type: n.ord_type,
        tif: n.tif,
        price: n.price,
        stop_price: n.stop_price,
        qty: n.qty,
        cum_qty: 0,
        leaves_qty: 0,
        cum_notional: 0,
    }
}

/// Checks that type, prices, quantity, TIF and instructions fit together.
fn validate_shape(n: &NewOrder, now_ns: u64) -> Result<(), RejectReason> {
    if n.qty == 0 || n.qty > MAX_QTY_LOTS {
        return Err(RejectReason::InvalidQuantity);
    }
    let price_ok = |p: Ticks| (1..=MAX_PRICE_TICKS).contains(&p);
    if (n.ord_type.has_price() && !price_ok(n.price))
        || (n.ord_type.is_stop() && !price_ok(n.stop_price))
    {
        return Err(RejectReason::InvalidPrice);
    }
    if n.post_only && (n.ord_type != OrdType::Limit || !n.tif.rests()) {
        return Err(RejectReason::InvalidOrder);
    }
    if n.max_floor > 0 && (!n.ord_type.has_price() || !n.tif.rests()) {
        return Err(RejectReason::InvalidOrder);
    }
    if n.ord_type == OrdType::Market && n.tif.rests() && n.tif != Tif::Day {
        // Market orders never rest: only Day (treated as IOC), IOC and FOK make sense.
        return Err(RejectReason::InvalidOrder);
    }
    if n.tif == Tif::Gtd {
        if n.expire_ts_ns == 0 {
            return Err(RejectReason::InvalidOrder);
        }
        if n.expire_ts_ns <= now_ns {
            return Err(RejectReason::AlreadyExpired);
        }
    }
    Ok(())
}

/// True if a taker on `side` with `limit` can trade at `price`.
#[inline]
fn crosses(side: Side, limit: Ticks, price: Ticks) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

/// True if a limit order at `price` would trade against the opposite best.
fn crosses_book(book: &Book, side: Side, price: Ticks) -> bool {
    book.best_price(side.opposite())
        .is_some_and(|p| crosses(side, price, p))
}

/// Worst price a market order may trade at, for risk: band edge or the far end of the book.
fn market_risk_price(ins: &InstrumentState, side: Side, band: Option<(Ticks, Ticks)>) -> Ticks {
    match (side, band) {
        (Side::Buy, Some((_, hi))) => hi,
        (Side::Buy, None) => ins.book.worst_price(Side::Sell).unwrap_or(0),
        (Side::Sell, _) => ins.book.best_price(Side::Buy).unwrap_or(0),
    }
}

//! Engine benchmarks: ns per resting place, cancel, aggressive order filling
//! 1 / 5 / 50 resting orders, an exchange-core-like mixed stream (mostly place
//! and cancel, some market orders) on fixgw's engine and on the Rust order-book
//! crates `lobster`, `matchcore` and `orderbook-rs` driven by the same stream,
//! allocations per operation (counting global allocator), and journal replay rate.
//!
//! The fills scenarios run twice: makers and taker on one account (self-trades allowed), and
//! makers on one account with the taker on another; only fixgw has accounts, the crates get
//! exactly the same operations both times.
//!
//! `cargo bench --bench engine` runs criterion and then prints a summary table.
//! `cargo bench --bench engine -- --summary-only` prints only the summary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use fixgw::engine::codec::{decode_command, encode_command};
use fixgw::engine::journal::{self, Journal, SledJournal};
use fixgw::engine::{Command, Engine, Event, NewOrder, OrdType, OrderId, Side, Tif, VenueConfig};

// ------------------------------------------------------------------ allocation counting

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------ workload

const MID: i64 = 10_000;

/// One logical operation of the shared stream; `h` is a handle unique per order.
#[derive(Clone, Copy, Debug)]
enum Op {
    Place {
        h: u32,
        side: Side,
        price: i64,
        qty: u64,
    },
    Market {
        h: u32,
        side: Side,
        qty: u64,
    },
    Cancel {
        h: u32,
    },
}

/// Deterministic xorshift generator (no RNG crate in the timed path).
struct Rng(u64);
impl Rng {
    fn next(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

/// exchange-core-like mix: 45% place (10% of them marketable), 45% cancel, 10% market.
fn mixed_stream(n: usize, seed: u64) -> Vec<Op> {
    let mut r = Rng(seed | 1);
    let mut live: Vec<u32> = Vec::new();
    let mut ops = Vec::with_capacity(n);
    let mut next_h = 0u32;
    for _ in 0..n {
        let x = r.next(100);
        let side = if r.next(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        if x < 45 || live.is_empty() {
            let h = next_h;
            next_h += 1;
            let away = if r.next(10) == 0 {
                -(r.next(3) as i64)
            } else {
                1 + r.next(50) as i64
            };
            let price = match side {
                Side::Buy => MID - away,
                Side::Sell => MID + away,
            };
            ops.push(Op::Place {
                h,
                side,
                price,
                qty: 1 + r.next(100),
            });
            live.push(h);
        } else if x < 90 {
            let i = r.next(live.len() as u64) as usize;
            ops.push(Op::Cancel {
                h: live.swap_remove(i),
            });
        } else {
            let h = next_h;
            next_h += 1;
            ops.push(Op::Market {
                h,
                side,
                qty: 1 + r.next(200),
            });
        }
    }
    ops
}

fn handles(ops: &[Op]) -> usize {
    ops.iter()
        .map(|o| match *o {
            Op::Place { h, .. } | Op::Market { h, .. } | Op::Cancel { h } => h as usize + 1,
        })
        .max()
        .unwrap_or(0)
}

// ------------------------------------------------------------------ the implementations

trait Book {
    const NAME: &'static str;
    fn new(handles: usize) -> Self;
    fn place(&mut self, h: u32, side: Side, price: i64, qty: u64);
    fn market(&mut self, h: u32, side: Side, qty: u64);
    fn cancel(&mut self, h: u32);
    /// The account of the orders placed from now on (fixgw only: the crates have no
    /// accounts, so they run exactly the same operations either way).
    fn set_account(&mut self, _account: u32) {}
    fn run(&mut self, ops: &[Op]) {
        for op in ops {
            match *op {
                Op::Place {
                    h,
                    side,
                    price,
                    qty,
                } => self.place(h, side, price, qty),
                Op::Market { h, side, qty } => self.market(h, side, qty),
                Op::Cancel { h } => self.cancel(h),
            }
        }
    }
}

const VENUE: &str = r#"
[engine]
snapshot_every = 0
max_orders = 10000000
[[instruments]]
symbol = "BENCH"
tick_size = "0.01"
[[accounts]]
name = "ACC"
self_trade = "allow"
limits = { max_order_qty = "1000000000", max_order_notional = "1000000000000", max_open_orders = 100000000, credit_limit = "9000000000000", max_position = "1000000000" }
[[accounts]]
name = "ACC2"
self_trade = "allow"
limits = { max_order_qty = "1000000000", max_order_notional = "1000000000000", max_open_orders = 100000000, credit_limit = "9000000000000", max_position = "1000000000" }
"#;

fn venue() -> VenueConfig {
    VenueConfig::from_toml_str(VENUE).expect("bench venue config")
}

fn new_order(
    ts: u64,
    side: Side,
    ord_type: OrdType,
    price: i64,
    qty: u64,
    tif: Tif,
    client_ref: u64,
) -> Command {
    Command::NewOrder(NewOrder {
        ts_ns: ts,
        owner: 1,
        account: 0,
        instrument: 0,
        side,
        ord_type,
        price,
        stop_price: 0,
        qty,
        tif,
        expire_ts_ns: 0,
        post_only: false,
        max_floor: 0,
        client_ref,
    })
}

/// A new order command for another account (owner 1 + account).
fn on_account(mut cmd: Command, account: u32) -> Command {
    if let Command::NewOrder(ref mut n) = cmd {
        n.account = account;
        n.owner = 1 + account;
    }
    cmd
}

/// fixgw's engine, with risk checks, positions and full events (as the gateway runs it).
struct Fixgw {
    e: Engine,
    out: Vec<Event>,
    ids: Vec<OrderId>,
    ts: u64,
    account: u32,
}

impl Fixgw {
    fn apply(&mut self, cmd: Command) -> Option<OrderId> {
        self.out.clear();
        self.ts += 1;
        self.e.apply(&cmd, &mut self.out);
        match self.out.first() {
            Some(Event::Accepted { order }) => Some(order.order_id),
            _ => None,
        }
    }
}

impl Book for Fixgw {
    const NAME: &'static str = "fixgw";
    fn new(handles: usize) -> Self {
        Fixgw {
            e: Engine::new(&venue()).expect("engine"),
            out: Vec::with_capacity(1024),
            ids: vec![0; handles],
            ts: 0,
            account: 0,
        }
    }
    fn set_account(&mut self, account: u32) {
        self.account = account;
    }
    fn place(&mut self, h: u32, side: Side, price: i64, qty: u64) {
        let cmd = new_order(
            self.ts,
            side,
            OrdType::Limit,
            price,
            qty,
            Tif::Gtc,
            h as u64,
        );
        let cmd = on_account(cmd, self.account);
        if let Some(id) = self.apply(cmd) {
            self.ids[h as usize] = id;
        }
    }
    fn market(&mut self, h: u32, side: Side, qty: u64) {
        let cmd = new_order(self.ts, side, OrdType::Market, 0, qty, Tif::Ioc, h as u64);
        self.apply(on_account(cmd, self.account));
    }
    fn cancel(&mut self, h: u32) {
        let order_id = self.ids[h as usize];
        self.apply(Command::Cancel {
            ts_ns: self.ts,
            owner: 1 + self.account,
            account: self.account,
            order_id,
            client_ref: 0,
        });
    }
}

struct Lobster(lobster::OrderBook);

fn lside(s: Side) -> lobster::Side {
    match s {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

impl Book for Lobster {
    const NAME: &'static str = "lobster 0.7";
    fn new(handles: usize) -> Self {
        Lobster(lobster::OrderBook::new(handles.max(1 << 16), 64, false))
    }
    fn place(&mut self, h: u32, side: Side, price: i64, qty: u64) {
        black_box(self.0.execute(lobster::OrderType::Limit {
            id: h as u128,
            side: lside(side),
            qty,
            price: price as u64,
        }));
    }
    fn market(&mut self, h: u32, side: Side, qty: u64) {
        black_box(self.0.execute(lobster::OrderType::Market {
            id: h as u128,
            side: lside(side),
            qty,
        }));
    }
    fn cancel(&mut self, h: u32) {
        black_box(self.0.execute(lobster::OrderType::Cancel { id: h as u128 }));
    }
}

struct Matchcore {
    b: matchcore::OrderBook,
    seq: u64,
    ids: Vec<u64>,
}

fn mside(s: Side) -> matchcore::Side {
    match s {
        Side::Buy => matchcore::Side::Buy,
        Side::Sell => matchcore::Side::Sell,
    }
}

impl Matchcore {
    fn exec(&mut self, kind: matchcore::CommandKind) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        let cmd = matchcore::Command {
            meta: matchcore::CommandMeta {
                sequence_number: matchcore::SequenceNumber(seq),
                timestamp: matchcore::Timestamp(seq),
            },
            kind,
        };
        black_box(self.b.execute(&cmd));
        seq
    }
}

impl Book for Matchcore {
    const NAME: &'static str = "matchcore 0.4";
    fn new(handles: usize) -> Self {
        Matchcore {
            b: matchcore::OrderBook::new("BENCH"),
            seq: 0,
            ids: vec![0; handles],
        }
    }
    fn place(&mut self, h: u32, side: Side, price: i64, qty: u64) {
        let order = matchcore::NewOrder::Limit(matchcore::LimitOrder::new(
            matchcore::Price(price as u64),
            matchcore::QuantityPolicy::Standard {
                quantity: matchcore::Quantity(qty),
            },
            matchcore::OrderFlags::new(mside(side), false, matchcore::TimeInForce::Gtc),
        ));
        // matchcore's order id is the sequence number of its submit command.
        self.ids[h as usize] = self.exec(matchcore::CommandKind::Submit(matchcore::SubmitCmd {
            order,
        }));
    }
    fn market(&mut self, _h: u32, side: Side, qty: u64) {
        let order = matchcore::NewOrder::Market(matchcore::MarketOrder::new(
            matchcore::Quantity(qty),
            mside(side),
            false,
        ));
        self.exec(matchcore::CommandKind::Submit(matchcore::SubmitCmd {
            order,
        }));
    }
    fn cancel(&mut self, h: u32) {
        let order_id = matchcore::OrderId(self.ids[h as usize]);
        self.exec(matchcore::CommandKind::Cancel(matchcore::CancelCmd {
            order_id,
            order_kind: matchcore::OrderKind::Limit,
        }));
    }
}

struct OrderbookRs(orderbook_rs::OrderBook<()>);

fn oside(s: Side) -> orderbook_rs::Side {
    match s {
        Side::Buy => orderbook_rs::Side::Buy,
        Side::Sell => orderbook_rs::Side::Sell,
    }
}

impl Book for OrderbookRs {
    const NAME: &'static str = "orderbook-rs 0.15";
    fn new(_handles: usize) -> Self {
        OrderbookRs(orderbook_rs::OrderBook::new("BENCH"))
    }
    fn place(&mut self, h: u32, side: Side, price: i64, qty: u64) {
        let id = orderbook_rs::Id::from_u64(h as u64);
        let _ = black_box(self.0.add_limit_order(
            id,
            price as u128,
            qty,
            oside(side),
            orderbook_rs::TimeInForce::Gtc,
            None,
        ));
    }
    fn market(&mut self, h: u32, side: Side, qty: u64) {
        let _ = black_box(self.0.match_market_order(
            orderbook_rs::Id::from_u64(h as u64),
            qty,
            oside(side),
        ));
    }
    fn cancel(&mut self, h: u32) {
        let _ = black_box(self.0.cancel_order(orderbook_rs::Id::from_u64(h as u64)));
    }
}

// ------------------------------------------------------------------ scenarios

/// Resting places: bids below / asks above the mid, never crossing. Returns (ns, allocs) per op.
fn place_batch<B: Book>(n: usize, timed_cancel: bool) -> (Duration, u64) {
    let mut b = B::new(2 * n + 201);
    // Steady state: the book has held n orders before (its storage is grown), then
    // a standing book so levels exist and inserts land among them.
    for i in 0..n as u32 {
        b.place(
            n as u32 + 201 + i,
            Side::Buy,
            MID - 1 - (i as i64 % 100),
            10,
        );
    }
    for i in 0..n as u32 {
        b.cancel(n as u32 + 201 + i);
    }
    for i in 0..200u32 {
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        let price = if side == Side::Buy {
            MID - 1 - (i as i64 % 100)
        } else {
            MID + 1 + (i as i64 % 100)
        };
        b.place(n as u32 + 1 + i, side, price, 10);
    }
    let prices: Vec<(Side, i64)> = (0..n)
        .map(|i| {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            let away = 1 + (i as i64 * 7919 % 100);
            (
                side,
                if side == Side::Buy {
                    MID - away
                } else {
                    MID + away
                },
            )
        })
        .collect();
    let a0 = allocs();
    let t0 = Instant::now();
    for (i, &(side, price)) in prices.iter().enumerate() {
        b.place(i as u32, side, price, 10);
    }
    let place = (t0.elapsed(), allocs() - a0);
    if !timed_cancel {
        return place;
    }
    let a0 = allocs();
    let t0 = Instant::now();
    cancel_scattered(&mut b, n);
    (t0.elapsed(), allocs() - a0)
}

/// The timed cancels of `place_batch`, in a scattered order (not just LIFO); a separate
/// symbol for `callgrind --toggle-collect=*cancel_scattered*`.
#[inline(never)]
fn cancel_scattered<B: Book>(b: &mut B, n: usize) {
    for i in 0..n as u32 {
        b.cancel((i as u64 * 2_654_435_761 % n as u64) as u32);
    }
}

/// `levels` price levels of `k` resting asks each; one aggressive buy per level fills exactly k
/// orders. Makers and taker on one account (self-trades, `self_trade = "allow"`).
fn fill_k<B: Book>(k: usize, levels: usize) -> (Duration, u64) {
    fill_k_accounts::<B>(k, levels, 0)
}

/// `fill_k` with the makers on a second account (fixgw; the crates run the same operations).
fn fill_k_two_accounts<B: Book>(k: usize, levels: usize) -> (Duration, u64) {
    fill_k_accounts::<B>(k, levels, 1)
}

fn fill_k_accounts<B: Book>(k: usize, levels: usize, maker_account: u32) -> (Duration, u64) {
    let mut b = B::new(levels * k + levels + 1);
    b.set_account(maker_account);
    let mut h = 0u32;
    for l in 0..levels {
        for _ in 0..k {
            b.place(h, Side::Sell, MID + 1 + l as i64, 10);
            h += 1;
        }
    }
    b.set_account(0);
    let a0 = allocs();
    let t0 = Instant::now();
    sweep(&mut b, h, k, levels);
    (t0.elapsed(), allocs() - a0)
}

/// The timed part of `fill_k` (a separate symbol for `callgrind --toggle-collect=*sweep*`).
#[inline(never)]
fn sweep<B: Book>(b: &mut B, first: u32, k: usize, levels: usize) {
    for h in first..first + levels as u32 {
        b.market(h, Side::Buy, 10 * k as u64);
    }
}

fn mixed<B: Book>(ops: &[Op]) -> (Duration, u64) {
    let mut b = B::new(handles(ops));
    // Warm the book with the first 10% (untimed), then time the rest.
    let warm = ops.len() / 10;
    b.run(&ops[..warm]);
    let a0 = allocs();
    let t0 = Instant::now();
    b.run(&ops[warm..]);
    (t0.elapsed(), allocs() - a0)
}

/// The mixed stream as engine commands (with real order ids), for replay.
fn engine_commands(ops: &[Op]) -> Vec<Command> {
    let mut f = Fixgw::new(handles(ops));
    let mut cmds = Vec::with_capacity(ops.len());
    for op in ops {
        let ts = f.ts;
        let cmd = match *op {
            Op::Place {
                h,
                side,
                price,
                qty,
            } => new_order(ts, side, OrdType::Limit, price, qty, Tif::Gtc, h as u64),
            Op::Market { h, side, qty } => {
                new_order(ts, side, OrdType::Market, 0, qty, Tif::Ioc, h as u64)
            }
            Op::Cancel { h } => Command::Cancel {
                ts_ns: ts,
                owner: 1,
                account: 0,
                order_id: f.ids[h as usize],
                client_ref: 0,
            },
        };
        if let (Some(id), Op::Place { h, .. }) = (f.apply(cmd), op) {
            f.ids[*h as usize] = id;
        }
        cmds.push(cmd);
    }
    cmds
}

// ------------------------------------------------------------------ criterion

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("place_resting");
    g.bench_function("fixgw", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<Fixgw>(m, false).0))
    });
    g.bench_function("lobster", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<Lobster>(m, false).0))
    });
    g.bench_function("matchcore", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<Matchcore>(m, false).0))
    });
    g.bench_function("orderbook-rs", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<OrderbookRs>(m, false).0))
    });
    g.finish();

    let mut g = c.benchmark_group("cancel");
    g.bench_function("fixgw", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<Fixgw>(m, true).0))
    });
    g.bench_function("lobster", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<Lobster>(m, true).0))
    });
    g.bench_function("matchcore", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<Matchcore>(m, true).0))
    });
    g.bench_function("orderbook-rs", |bch| {
        bch.iter_custom(|n| per_batches(n, |m| place_batch::<OrderbookRs>(m, true).0))
    });
    g.finish();

    for k in [1usize, 5, 50] {
        let mut g = c.benchmark_group(format!("aggressive_fills_{k}"));
        g.bench_function(BenchmarkId::new("fixgw", k), |bch| {
            bch.iter_custom(|n| per_levels(n, k, fill_k::<Fixgw>))
        });
        g.bench_function(BenchmarkId::new("lobster", k), |bch| {
            bch.iter_custom(|n| per_levels(n, k, fill_k::<Lobster>))
        });
        g.bench_function(BenchmarkId::new("matchcore", k), |bch| {
            bch.iter_custom(|n| per_levels(n, k, fill_k::<Matchcore>))
        });
        g.bench_function(BenchmarkId::new("orderbook-rs", k), |bch| {
            bch.iter_custom(|n| per_levels(n, k, fill_k::<OrderbookRs>))
        });
        g.finish();
    }

    let mut g = c.benchmark_group("aggressive_fills_50_two_accounts");
    g.bench_function("fixgw", |bch| {
        bch.iter_custom(|n| per_levels(n, 50, fill_k_two_accounts::<Fixgw>))
    });
    g.bench_function("lobster", |bch| {
        bch.iter_custom(|n| per_levels(n, 50, fill_k_two_accounts::<Lobster>))
    });
    g.bench_function("matchcore", |bch| {
        bch.iter_custom(|n| per_levels(n, 50, fill_k_two_accounts::<Matchcore>))
    });
    g.bench_function("orderbook-rs", |bch| {
        bch.iter_custom(|n| per_levels(n, 50, fill_k_two_accounts::<OrderbookRs>))
    });
    g.finish();

    let ops = mixed_stream(200_000, 42);
    let mut g = c.benchmark_group("mixed_stream_180k_timed_ops");
    g.sample_size(10);
    g.bench_function("fixgw", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| mixed::<Fixgw>(&ops).0).sum())
    });
    g.bench_function("lobster", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| mixed::<Lobster>(&ops).0).sum())
    });
    g.bench_function("matchcore", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| mixed::<Matchcore>(&ops).0).sum())
    });
    g.bench_function("orderbook-rs", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| mixed::<OrderbookRs>(&ops).0).sum())
    });
    g.finish();
}

/// Runs `n` timed ops in batches of at most 10k (fresh book per batch).
fn per_batches(n: u64, mut f: impl FnMut(usize) -> Duration) -> Duration {
    let mut left = n as usize;
    let mut total = Duration::ZERO;
    while left > 0 {
        let m = left.min(10_000);
        total += f(m);
        left -= m;
    }
    total
}

fn per_levels(n: u64, k: usize, f: fn(usize, usize) -> (Duration, u64)) -> Duration {
    let mut left = n as usize;
    let mut total = Duration::ZERO;
    while left > 0 {
        let m = left.min(1_000);
        total += f(k, m).0;
        left -= m;
    }
    total
}

// ------------------------------------------------------------------ summary table

fn best<F: FnMut() -> (Duration, u64)>(runs: usize, mut f: F) -> (Duration, u64) {
    (0..runs)
        .map(|_| f())
        .min_by_key(|r| r.0)
        .expect("runs > 0")
}

fn row<B: Book>(ops: &[Op]) -> String {
    let n = 10_000;
    let ns = |d: Duration, ops: usize| d.as_nanos() as f64 / ops as f64;
    let (pd, pa) = best(20, || place_batch::<B>(n, false));
    let (cd, ca) = best(20, || place_batch::<B>(n, true));
    let mut cells = vec![
        format!("{:.0} ({:.2})", ns(pd, n), pa as f64 / n as f64),
        format!("{:.0} ({:.2})", ns(cd, n), ca as f64 / n as f64),
    ];
    for k in [1, 5, 50] {
        let levels = 5_000 / k;
        let (d, a) = best(5, || fill_k::<B>(k, levels));
        cells.push(format!(
            "{:.0} ({:.2})",
            ns(d, levels),
            a as f64 / levels as f64
        ));
    }
    let timed = ops.len() - ops.len() / 10;
    let (md, ma) = best(3, || mixed::<B>(ops));
    cells.push(format!(
        "{:.0} ({:.2}); {:.2} M ops/s",
        ns(md, timed),
        ma as f64 / timed as f64,
        timed as f64 / md.as_secs_f64() / 1e6
    ));
    format!("| {} | {} |", B::NAME, cells.join(" | "))
}

/// The fills scenarios with makers and taker on two accounts.
fn row_two_accounts<B: Book>() -> String {
    let cells: Vec<String> = [1, 5, 50]
        .iter()
        .map(|&k| {
            let levels = 5_000 / k;
            let (d, a) = best(5, || fill_k_two_accounts::<B>(k, levels));
            format!(
                "{:.0} ({:.2})",
                d.as_nanos() as f64 / levels as f64,
                a as f64 / levels as f64
            )
        })
        .collect();
    format!("| {} | {} |", B::NAME, cells.join(" | "))
}

fn replay_rates(ops: &[Op]) {
    let cmds = engine_commands(ops);
    let cfg = venue();
    // (a) decode + apply from one in-memory buffer of CRC-framed records.
    let mut buf = Vec::new();
    let mut bounds = Vec::with_capacity(cmds.len());
    for c in &cmds {
        let s = buf.len();
        journal::encode_record(c, &mut buf);
        bounds.push((s, buf.len()));
    }
    let (d, _) = best(3, || {
        let mut e = Engine::new(&cfg).expect("engine");
        let mut out = Vec::with_capacity(1024);
        let t0 = Instant::now();
        for &(s, t) in &bounds {
            let cmd = journal::decode_record(&buf[s..t]).expect("record");
            out.clear();
            e.apply(&cmd, &mut out);
        }
        (t0.elapsed(), 0)
    });
    println!(
        "replay (CRC check + decode + apply, in memory): {} commands in {:.1} ms = {:.2} M commands/s",
        cmds.len(),
        d.as_secs_f64() * 1e3,
        cmds.len() as f64 / d.as_secs_f64() / 1e6
    );
    // (b) recover() from a sled journal on disk (page cache warm).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut j = SledJournal::open(dir.path()).expect("sled");
    for (i, c) in cmds.iter().enumerate() {
        j.append(i as u64 + 1, c).expect("append");
    }
    j.flush().expect("flush");
    let (d, _) = best(3, || {
        let t0 = Instant::now();
        let r = journal::recover(&cfg, &j, |_, ev| {
            black_box(ev);
        })
        .expect("recover");
        assert_eq!(r.replayed as usize, cmds.len());
        (t0.elapsed(), 0)
    });
    println!(
        "replay (journal::recover from sled): {} commands in {:.1} ms = {:.2} M commands/s",
        cmds.len(),
        d.as_secs_f64() * 1e3,
        cmds.len() as f64 / d.as_secs_f64() / 1e6
    );
    // Codec alone.
    let mut scratch = Vec::with_capacity(128);
    let t0 = Instant::now();
    for c in &cmds {
        scratch.clear();
        encode_command(c, &mut scratch);
        black_box(decode_command(&scratch).expect("decode"));
    }
    let d = t0.elapsed();
    println!(
        "codec encode+decode: {:.0} ns per command",
        d.as_nanos() as f64 / cmds.len() as f64
    );
}

fn summary() {
    let ops = mixed_stream(1_000_000, 7);
    println!("\n## fixgw engine benchmark summary\n");
    println!("ns per op (allocations per op); best of several runs; all implementations fed the same operations.\n");
    println!("| implementation | place (resting) | cancel | aggressive, fills 1 | fills 5 | fills 50 | mixed stream (1M ops: 45% place, 45% cancel, 10% market) |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", row::<Fixgw>(&ops));
    println!("{}", row::<Lobster>(&ops));
    println!("{}", row::<Matchcore>(&ops));
    println!("{}", row::<OrderbookRs>(&ops));
    println!();
    println!("Aggressive fills with the makers on one account and the taker on another (fixgw;");
    println!("the crates have no accounts and run exactly the same operations as above):\n");
    println!("| implementation | fills 1 | fills 5 | fills 50 |");
    println!("|---|---|---|---|");
    println!("{}", row_two_accounts::<Fixgw>());
    println!("{}", row_two_accounts::<Lobster>());
    println!("{}", row_two_accounts::<Matchcore>());
    println!("{}", row_two_accounts::<OrderbookRs>());
    println!();
    replay_rates(&ops);
}

fn main() {
    if std::env::args().any(|a| a == "--profile-fixgw") {
        // A loop to run under `perf record`.
        let ops = mixed_stream(1_000_000, 7);
        let what = std::env::var("FIXGW_PROFILE").unwrap_or_default();
        for _ in 0..10 {
            if what.is_empty() || what == "place" {
                black_box(place_batch::<Fixgw>(100_000, what.is_empty()));
            }
            if what == "cancel" {
                black_box(place_batch::<Fixgw>(10_000, true));
            }
            if what.is_empty() || what == "fill" {
                black_box(fill_k::<Fixgw>(50, 100));
            }
            if what == "fill1" {
                black_box(fill_k::<Fixgw>(1, 5000));
            }
            if what == "fill2" {
                black_box(fill_k_two_accounts::<Fixgw>(50, 100));
            }
            if what.is_empty() || what == "mixed" {
                black_box(mixed::<Fixgw>(&ops));
            }
        }
        return;
    }
    if std::env::args().any(|a| a == "--fills-only") {
        // Quick A/B of the fills 50 scenarios: fixgw and lobster only.
        for _ in 0..3 {
            let ns = |(d, _): (Duration, u64)| d.as_nanos() as f64 / 100.0;
            println!(
                "fills 50: fixgw {:.0} / two accounts {:.0}; lobster {:.0} / {:.0}",
                ns(best(15, || fill_k::<Fixgw>(50, 100))),
                ns(best(15, || fill_k_two_accounts::<Fixgw>(50, 100))),
                ns(best(15, || fill_k::<Lobster>(50, 100))),
                ns(best(15, || fill_k_two_accounts::<Lobster>(50, 100))),
            );
        }
        return;
    }
    let summary_only = std::env::args().any(|a| a == "--summary-only");
    if !summary_only {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20)
            .configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    if std::env::var_os("FIXGW_BENCH_NO_SUMMARY").is_none() {
        summary();
    }
}

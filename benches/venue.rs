//! Order-entry benchmark: CPU cost per FIX request of `fixgw::venue::order_entry::Venue`
//! (a parsed NewOrderSingle / OrderCancelRequest in, engine, ExecutionReports rendered out),
//! in process, so that changes to the venue's order indexes can be A/B compared without the
//! noise of the end-to-end load test (`benches/load.sh`).
//!
//! The venue is `sessions/bench-venue.toml` with one order-entry session, LOAD01 (account
//! B01), as `fixgw run --config sessions/bench.cfg --venue sessions/bench-venue.toml` serves
//! it. The requests are drawn by the load generator's own workload (`fixgw::load::workload`:
//! `--mix 60,30,10`, AAPL 150 / MSFT 400, qty 100, seed 1, as `fixgw load` session 0 draws
//! them): 60 % resting limit orders 50-99 bp away from the base price, 30 % limit orders
//! priced 150 bp through it (each fills the best resting order of the other side), 10 %
//! cancels of the session's oldest acknowledged open order. The load generator picks cancel
//! targets from the ExecutionReports it got back, so the stream is drawn against a venue
//! that answers each request before the next is drawn (no requests in flight). The frames
//! are encoded by the load generator's own `Request::encode_body` and parsed before anything
//! is timed.
//!
//! The first `WARMUP` requests are applied untimed: by their end the venue remembers
//! `DONE_ORDERS_KEPT` finished orders (checked), so the timed `TIMED` requests run with
//! the venue's maps at their working size, forgetting one old order per finished one.
//!
//! `cargo bench --bench venue` runs criterion (~17 s: one iteration is a pass of `TIMED`
//! requests) and then prints `ns per request` (median, min, max over the passes).
//! `cargo bench --bench venue -- --summary-only` skips criterion: three passes (~7 s).
//! `--profile` runs one pass, for `perf record` or an instruction count of the timed part:
//! `valgrind --tool=callgrind --toggle-collect='*timed_pass*' <bench binary> --profile`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use fixgw::engine::VenueConfig;
use fixgw::fix::parser::field;
use fixgw::fix::time::Precision;
use fixgw::fix::{Encoder, Message, BEGIN_STRING_FIX44};
use fixgw::load::workload::{order_number, Mix, OpenOrder, OpenOrders, Request, Workload};
use fixgw::load::LoadOptions;
use fixgw::session::{OutboundMessage, SessionRole};
use fixgw::venue::order_entry::{SessionInfo, Venue, DONE_ORDERS_KEPT};

/// Requests applied untimed before each timed pass.
const WARMUP: usize = 160_000;
/// Requests timed per pass.
const TIMED: usize = 240_000;
/// The order-entry session (sessions/bench.cfg), trading for B01 (sessions/bench-venue.toml).
const SESSION: &str = "LOAD01";
/// ClOrdID prefix: `fixgw load` writes `<run id>-<session index>-`, the run id being the
/// start time in ms in base 36 (8 characters).
const CLORDID_PREFIX: &str = "bnchvnue-0-";
/// TransactTime of the first request (2024-01-01T00:00:00Z) and the gap between requests
/// (10 000 requests/s).
const T0_NS: u64 = 1_704_067_200_000_000_000;
const STEP_NS: u64 = 100_000;

type Out = Vec<(Arc<str>, OutboundMessage)>;

fn venue() -> Venue {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/sessions/bench-venue.toml");
    let cfg = VenueConfig::load(path).expect("sessions/bench-venue.toml");
    Venue::new(&cfg, &[SessionInfo::new(SESSION, SessionRole::OrderEntry)]).expect("venue")
}

fn ts(i: usize) -> u64 {
    T0_NS + i as u64 * STEP_NS
}

// ------------------------------------------------------------------ the request stream

/// The value of `tag` in an outbound message's body (`tag=value<SOH>...`).
fn body_field(m: &OutboundMessage, tag: i32) -> Option<&[u8]> {
    let mut rest = &m.body[..];
    while let Ok((r, (t, v))) = field(rest) {
        if t == tag {
            return Some(v);
        }
        rest = r;
    }
    None
}

/// What the venue answered, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    requests: u64,
    /// ExecutionReports by ExecType (150).
    new: u64,
    fills: u64,
    canceled: u64,
    rejected: u64,
    other_exec: u64,
    /// Orders that reached a final OrdStatus (39 = 2, 4, 8, C): the venue's done list grows by these.
    finished: u64,
    /// OrderCancelRejects (35=9).
    cancel_rejects: u64,
    /// BusinessMessageRejects (35=j: `apply_fix` returned Err).
    business_rejects: u64,
    /// Anything else.
    other: u64,
}

impl Tally {
    fn count(&mut self, out: &Out, rejected: bool) {
        self.requests += 1;
        self.business_rejects += u64::from(rejected);
        for (_, m) in out {
            match &m.msg_type[..] {
                b"8" => {
                    match body_field(m, 150) {
                        Some(b"0") => self.new += 1,
                        Some(b"F") => self.fills += 1,
                        Some(b"4") => self.canceled += 1,
                        Some(b"8") => self.rejected += 1,
                        _ => self.other_exec += 1,
                    }
                    if matches!(body_field(m, 39), Some(b"2" | b"4" | b"8" | b"C")) {
                        self.finished += 1;
                    }
                }
                b"9" => self.cancel_rejects += 1,
                _ => self.other += 1,
            }
        }
    }
}

/// The pre-parsed requests and their timestamps.
struct Stream {
    msgs: Vec<Message>,
    ts: Vec<u64>,
}

/// Draws `n` requests with the load generator's workload, answering each on a venue and
/// feeding the answers back to the workload's open orders as `fixgw load` does
/// (`Client::on_message`: OrdStatus of ClOrdID and OrigClOrdID). Returns the stream (frames
/// in one buffer, parsed), what the venue answered to its first `WARMUP` requests, and
/// the rejects among its answers to the timed ones (the passes replay exactly these).
fn generate(n: usize) -> (Stream, Tally, Tally) {
    let opts = LoadOptions::default();
    let mix: Mix = "60,30,10".parse().expect("mix");
    let instruments = opts.instruments().expect("instruments");
    let mut w = Workload::new(mix, instruments, opts.qty, opts.seed);
    let mut open = OpenOrders::default();
    let mut v = venue();
    let mut enc = Encoder::new();
    let mut out = Out::new();
    let mut frames = Vec::with_capacity(n * 160);
    let mut ends = Vec::with_capacity(n);
    let mut tally = Tally::default();
    let mut timed = Tally::default();
    let order_number = |v: &[u8]| order_number(CLORDID_PREFIX, v);
    for k in 0..n {
        let req = w.next(&mut open);
        // The header as `fixgw load` writes it (src/load/client.rs `header`), then its body.
        enc.start(req.msg_type())
            .field_str(49, SESSION)
            .field_str(56, "FIXGW")
            .field_int(34, k as i64 + 2)
            .field_time(52, ts(k) as i64, Precision::Millis);
        req.encode_body(
            &mut enc,
            w.instruments(),
            k as u64,
            CLORDID_PREFIX,
            None,
            ts(k) as i64,
        );
        let frame = enc.finish(BEGIN_STRING_FIX44);
        frames.extend_from_slice(frame);
        ends.push(frames.len());
        if let Request::New {
            instrument,
            side,
            qty,
            ..
        } = req
        {
            open.sent(
                k as u64,
                OpenOrder {
                    instrument,
                    side,
                    qty,
                },
            );
        }
        let msg = Message::parse(Bytes::copy_from_slice(frame)).expect("parse");
        out.clear();
        let r = v.apply_fix(SESSION, ts(k), &msg, &mut out);
        if k < WARMUP {
            tally.count(&out, r.is_err());
        } else {
            timed.count(&out, r.is_err());
        }
        for (_, m) in out.iter().filter(|(_, m)| &m.msg_type[..] == b"8") {
            let (Some(st), Some(n)) = (
                body_field(m, 39).and_then(|s| s.first().copied()),
                body_field(m, 11).and_then(order_number),
            ) else {
                continue;
            };
            open.on_status(n, st);
            if let Some(orig) = body_field(m, 41).and_then(order_number) {
                open.on_status(orig, st);
            }
        }
    }
    let frames = Bytes::from(frames);
    let mut start = 0;
    let msgs = ends
        .iter()
        .map(|&end| {
            let m = Message::parse(frames.slice(start..end)).expect("parse");
            start = end;
            m
        })
        .collect();
    let ts = (0..n).map(ts).collect();
    (Stream { msgs, ts }, tally, timed)
}

/// A venue that has applied the warm-up requests (untimed); what it answered goes to `tally`.
fn warmed_up(s: &Stream, mut tally: Option<&mut Tally>) -> Venue {
    let mut v = venue();
    let mut out = Out::new();
    for (m, &t) in s.msgs[..WARMUP].iter().zip(&s.ts) {
        out.clear();
        let r = v.apply_fix(SESSION, t, m, &mut out);
        if let Some(tally) = tally.as_deref_mut() {
            tally.count(&out, r.is_err());
        }
    }
    v
}

/// The stream must measure what the load test does: fills and cancels, no rejects, and a
/// venue at its working size.
fn check(t: &Tally) {
    assert_eq!(t.requests, WARMUP as u64);
    assert!(
        t.fills > t.requests / 4,
        "too few fills (150=F) in the warm-up: {t:?}"
    );
    assert!(
        t.canceled > t.requests / 20,
        "too few cancels (150=4) in the warm-up: {t:?}"
    );
    assert_eq!(
        (t.rejected, t.cancel_rejects, t.business_rejects, t.other),
        (0, 0, 0, 0),
        "rejects (150=8, 35=9, 35=j) or unexpected messages in the warm-up: {t:?}"
    );
    assert!(
        t.finished >= DONE_ORDERS_KEPT as u64,
        "the warm-up finishes fewer orders than the venue remembers: {t:?}"
    );
}

// ------------------------------------------------------------------ timed

/// Applies the timed requests to a warmed-up venue. Returns the time taken and what was
/// produced (messages and body bytes, so that nothing rendered can be optimised away).
#[inline(never)]
fn timed_pass(v: &mut Venue, s: &Stream, out: &mut Out) -> (Duration, u64) {
    let msgs = &s.msgs[WARMUP..];
    let ts = &s.ts[WARMUP..];
    let mut produced = 0u64;
    let t0 = Instant::now();
    for (m, &t) in msgs.iter().zip(ts) {
        let r = v.apply_fix(SESSION, t, m, out);
        produced += u64::from(r.is_err());
        for (_, o) in out.iter() {
            produced += 1 + o.body.len() as u64;
        }
        out.clear();
    }
    let d = t0.elapsed();
    (d, black_box(produced))
}

/// One timed pass on a venue warmed up from scratch; the rebuild is not timed.
fn pass(s: &Stream, out: &mut Out) -> Duration {
    let mut v = warmed_up(s, None);
    let (d, _) = timed_pass(&mut v, s, out);
    // Dropping the venue (hundreds of MB of maps) stays out of the timing too.
    drop(v);
    d
}

fn ns_per_request(d: Duration) -> f64 {
    d.as_nanos() as f64 / TIMED as f64
}

fn main() {
    let t0 = Instant::now();
    let (stream, gen_tally, timed_tally) = generate(WARMUP + TIMED);
    let mut warm_tally = Tally::default();
    drop(warmed_up(&stream, Some(&mut warm_tally)));
    // The venue is deterministic: the warm-up replays exactly what was generated.
    assert_eq!(warm_tally, gen_tally);
    check(&warm_tally);
    assert_eq!(
        (
            timed_tally.rejected,
            timed_tally.cancel_rejects,
            timed_tally.business_rejects,
            timed_tally.other
        ),
        (0, 0, 0, 0),
        "rejects (150=8, 35=9, 35=j) or unexpected messages in the timed requests: {timed_tally:?}"
    );
    println!(
        "venue bench: {} requests ({} warm-up, {} timed) generated and checked in {:.1} s; warm-up answers: {:?}",
        WARMUP + TIMED,
        WARMUP,
        TIMED,
        t0.elapsed().as_secs_f64(),
        warm_tally
    );
    let mut out = Out::with_capacity(64);
    let mut passes = Vec::new();
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let passes_only = if has("--profile") {
        Some(1)
    } else if has("--summary-only") {
        Some(3)
    } else {
        None
    };
    if let Some(n) = passes_only {
        for _ in 0..n {
            let d = pass(&stream, &mut out);
            println!("pass: {:.0} ns per request", ns_per_request(d));
            passes.push(d);
        }
    } else {
        // One criterion iteration is one timed pass of the TIMED requests, each pass on a
        // venue rebuilt and warmed up outside the timing (`iter_custom` adds up only the
        // passes' own times). Carrying one venue on across iterations instead would run out
        // of stream: the venue cannot be rewound, and the requests drawn for it cannot be
        // replayed on a venue that has moved on (their cancels name orders already gone,
        // their ClOrdIDs are taken), so it would have to be rebuilt in the middle of some
        // samples and each sample would time a different slice of the stream. The slices
        // differ: the load generator's open orders accumulate (+0.2 resting order per
        // request), and later requests cost a few % more. Whole passes give every sample the
        // same requests on the same state. Flat sampling: one pass per sample (the rebuild,
        // ~0.5 s, is what bounds the sample count). Criterion sizes samples by the wall time
        // of a warm-up pass, rebuild included (~1.2-1.8 s), so it warns that 10 samples do not
        // fit in 5 s: expected; a longer target would only double the passes per sample.
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_secs(5))
            .sample_size(10)
            .configure_from_args();
        let mut g = c.benchmark_group("venue_apply_fix");
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Elements(TIMED as u64));
        g.bench_function("mix_60_30_10_pass", |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        let d = pass(&stream, &mut out);
                        passes.push(d);
                        d
                    })
                    .sum()
            })
        });
        g.finish();
        c.final_summary();
    }
    passes.sort();
    if let (Some(&min), Some(&max)) = (passes.first(), passes.last()) {
        println!(
            "ns per request: median {:.0}, min {:.0}, max {:.0} over {} timed passes of {} requests",
            ns_per_request(passes[passes.len() / 2]),
            ns_per_request(min),
            ns_per_request(max),
            passes.len(),
            TIMED
        );
    } else {
        println!("ns per request: no timed pass ran (a criterion filter excluded the bench?)");
    }
}

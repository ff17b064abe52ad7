//! `fixgw load`: a FIX 4.4 load generator for any acceptor.
//!
//! It opens N initiator sessions, sends a mix of NewOrderSingles (resting
//! and crossing limit orders) and OrderCancelRequests, and measures for each
//! request the time from its **scheduled** send time to its first answer
//! (ExecutionReport with the same ClOrdID, or OrderCancelReject for a
//! cancel). Latencies go into an HDR histogram; the report gives p50, p90,
//! p99, p99.9, max and the sustained rate (answers acknowledged during the
//! measured interval divided by its length).
//!
//! Two pacing modes:
//! - **fixed rate** (`--rate R`): request `j` (over all sessions, interleaved)
//!   is due at `start + j/R`. A pacer thread (OS sleep, well below tokio's
//!   millisecond timer) sends them itself; a request is sent when due whether or
//!   not earlier ones were answered, and its latency counts from when it was
//!   due, so a stalling acceptor shows up as latency (no coordinated omission).
//! - **max** (no `--rate`): each session keeps `--window` requests in
//!   flight; a request's scheduled time is the moment the window let it go.
//!
//! Only plain FIX 4.4 is used (no fixgw specifics): NewOrderSingle with 11,
//! 1 (optional), 21=1, 38, 40=2, 44, 54, 55, 59=0, 60; OrderCancelRequest with
//! 41, 11, 54, 55, 60, 38. The first `--warmup` seconds are sent but not measured.

pub mod client;
pub mod md;
pub mod report;
pub mod workload;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rust_decimal::Decimal;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use client::{Pacing, Plan, SessionSetup};
pub use report::{LoadReport, SessionStats};
pub use workload::{Instrument, Mix, Schedule, Workload};

/// Options of `fixgw load`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Acceptor host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Acceptor port.
    #[arg(long, default_value_t = 9878)]
    pub port: u16,
    /// Number of initiator sessions (one TCP connection each).
    #[arg(long, short = 'n', default_value_t = 1)]
    pub sessions: usize,
    /// SenderCompIDs, repeated or comma-separated; session i uses the i-th,
    /// cycling. Default: CLIENT1, CLIENT2, ... one per session.
    #[arg(long = "sender", value_name = "COMPID", value_delimiter = ',')]
    pub sender_comp_ids: Vec<String>,
    /// TargetCompID (the acceptor's CompID).
    #[arg(long = "target", value_name = "COMPID", default_value = "FIXGW")]
    pub target_comp_id: String,
    /// Fixed total rate in requests/s over all sessions. Without it, send as
    /// fast as the acceptor answers, `--window` in flight per session.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<u64>,
    /// Most requests in flight per session (max mode; fixed-rate mode sends on
    /// schedule regardless).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Length of the run in seconds, warm-up included.
    #[arg(long = "duration", value_name = "SECS", default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Seconds at the start whose requests are sent but not measured.
    #[arg(long = "warmup", value_name = "SECS", default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Request mix: resting,crossing,cancel weights (percentages).
    #[arg(long, value_name = "R,C,X", default_value = "60,30,10")]
    pub mix: Mix,
    /// Symbols to trade, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "AAPL,MSFT")]
    pub symbols: Vec<String>,
    /// Base price of each symbol, comma-separated (cycled if fewer).
    #[arg(long, value_delimiter = ',', default_value = "150,400")]
    pub prices: Vec<Decimal>,
    /// OrderQty of every order.
    #[arg(long, default_value_t = 100)]
    pub qty: u64,
    /// Account (1) on every order.
    #[arg(long)]
    pub account: Option<String>,
    /// Write the latency distribution (µs) in HdrHistogram .hgrm format here.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// HeartBtInt sent on Logon, seconds.
    #[arg(long = "heartbeat", value_name = "SECS", default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// Send ResetSeqNumFlag=Y (141) on Logon (`--reset-seq false` to not).
    #[arg(
        long = "reset-seq",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub reset_seq: bool,
    /// Seed of the workload's random choices (session i uses seed + i).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Market-data subscribers to open besides the order sessions; each
    /// subscribes to every symbol and counts the incremental entries it gets.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub md_subscribers: usize,
    /// SenderCompID prefix of the subscribers: PREFIX001, PREFIX002, ...
    #[arg(long, value_name = "PREFIX", default_value = "MD")]
    pub md_sender: String,
    /// MarketDepth (264) the subscribers ask for (0 = full book).
    #[arg(long, value_name = "LEVELS", default_value_t = 0)]
    pub md_depth: u32,
    /// Keep idle CPUs able to wake within this many µs during the run
    /// (Linux PM QoS, /dev/cpu_dma_latency; needs root), as `fixgw run`'s
    /// option of the same name. The request is machine-wide: on one machine
    /// it also serves the acceptor under test.
    #[arg(long, value_name = "MICROS")]
    pub cpu_wakeup_latency: Option<u32>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            host: "127.0.0.1".into(),
            port: 9878,
            sessions: 1,
            sender_comp_ids: Vec::new(),
            target_comp_id: "FIXGW".into(),
            rate: None,
            window: 64,
            duration_secs: 10.0,
            warmup_secs: 2.0,
            mix: Mix::default(),
            symbols: vec!["AAPL".into(), "MSFT".into()],
            prices: vec![Decimal::from(150), Decimal::from(400)],
            qty: 100,
            account: None,
            hgrm: None,
            heartbeat_secs: 30,
            reset_seq: true,
            seed: 1,
            md_subscribers: 0,
            md_sender: "MD".into(),
            md_depth: 0,
            cpu_wakeup_latency: None,
        }
    }
}

impl LoadOptions {
    /// SenderCompID of session `i`.
    pub fn sender_for(&self, i: usize) -> String {
        if self.sender_comp_ids.is_empty() {
            format!("CLIENT{}", i + 1)
        } else {
            self.sender_comp_ids[i % self.sender_comp_ids.len()].clone()
        }
    }

    /// SenderCompID of market-data subscriber `i`.
    pub fn md_sender_for(&self, i: usize) -> String {
        format!("{}{:03}", self.md_sender, i + 1)
    }

    /// The instruments: each symbol with its base price.
    pub fn instruments(&self) -> anyhow::Result<Vec<Instrument>> {
        if self.symbols.is_empty() || self.prices.is_empty() {
            bail!("at least one symbol and one price are needed");
        }
        self.symbols
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = self.prices[i % self.prices.len()];
                let cents = workload::parse_price_cents(&p.to_string())
                    .map_err(|e| anyhow::anyhow!("{s}: {e}"))?;
                Ok(Instrument {
                    symbol: s.clone(),
                    base_cents: cents,
                })
            })
            .collect()
    }

    /// Checks the options for consistency.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.sessions == 0 {
            bail!("--sessions must be at least 1");
        }
        if self.window == 0 {
            bail!("--window must be at least 1");
        }
        if self.rate == Some(0) {
            bail!("--rate must be positive");
        }
        if !(self.duration_secs.is_finite() && self.duration_secs > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
        if !(self.warmup_secs.is_finite()
            && self.warmup_secs >= 0.0
            && self.warmup_secs < self.duration_secs)
        {
            bail!("--warmup must be at least 0 and shorter than --duration");
        }
        if self.heartbeat_secs == 0 {
            bail!("--heartbeat must be at least 1 second");
        }
        if self.qty == 0 {
            bail!("--qty must be at least 1");
        }
        if self.sender_comp_ids.iter().any(String::is_empty) || self.target_comp_id.is_empty() {
            bail!("CompIDs must not be empty");
        }
        self.instruments()?;
        Ok(())
    }
}

/// Prefix making this run's ClOrdIDs unique (acceptors reject a ClOrdID
/// still live from an earlier run): the start time in ms, base 36.
fn run_id() -> String {
    let mut ms = u64::try_from(crate::fix::time::now_utc() / 1_000_000).unwrap_or(0);
    let mut s = Vec::new();
    while ms > 0 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(ms % 36) as usize]);
        ms /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// Runs a load test and returns its report (and writes `--hgrm` if asked).
///
/// Sessions that fail to log on, or are logged out or disconnected by the
/// acceptor, are listed in [`LoadReport::errors`]; the run fails only when
/// no session logs on at all.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    opts.validate()?;
    let instruments = opts.instruments()?;
    let _cpu_latency = opts
        .cpu_wakeup_latency
        .map(crate::cpu_latency::CpuLatencyRequest::hold)
        .transpose()?;
    let run_id = run_id();
    let duration = Duration::from_secs_f64(opts.duration_secs);
    let warmup = Duration::from_secs_f64(opts.warmup_secs);
    // Subscribers first, so the flow starts with them in place; they log on
    // and subscribe within LOGON_TIMEOUT, before the order sessions start.
    let mut md_tasks = Vec::new();
    let mut md_logons = Vec::new();
    let mut md_gos = Vec::new();
    for i in 0..opts.md_subscribers {
        let setup = SessionSetup {
            host: opts.host.clone(),
            port: opts.port,
            sender: opts.md_sender_for(i),
            target: opts.target_comp_id.clone(),
            heartbeat: Duration::from_secs(opts.heartbeat_secs),
            reset_seq: opts.reset_seq,
            account: None,
            workload: Workload::new(opts.mix, instruments.clone(), opts.qty, opts.seed),
            clordid_prefix: String::new(),
        };
        let (tx, rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        md_tasks.push(tokio::spawn(md::run_subscriber(
            setup,
            opts.symbols.clone(),
            opts.md_depth,
            tx,
            go_rx,
        )));
        md_logons.push(rx);
        md_gos.push(go_tx);
    }
    for rx in md_logons {
        let _ = rx.await;
    }
    let mut logons = Vec::new();
    let mut gos = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..opts.sessions {
        let setup = SessionSetup {
            host: opts.host.clone(),
            port: opts.port,
            sender: opts.sender_for(i),
            target: opts.target_comp_id.clone(),
            heartbeat: Duration::from_secs(opts.heartbeat_secs),
            reset_seq: opts.reset_seq,
            account: opts.account.clone(),
            workload: Workload::new(
                opts.mix,
                instruments.clone(),
                opts.qty,
                opts.seed.wrapping_add(i as u64),
            ),
            clordid_prefix: format!("{run_id}-{i}-"),
        };
        let (logon_tx, logon_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        tasks.push(tokio::spawn(client::run_session(setup, logon_tx, go_rx)));
        logons.push(logon_rx);
        gos.push(go_tx);
    }
    let mut live = Vec::new();
    for (i, rx) in logons.into_iter().enumerate() {
        if let Ok(Ok(desk)) = rx.await {
            live.push((i, desk));
        }
    }

    let start = Instant::now() + Duration::from_millis(20);
    for go in md_gos {
        let _ = go.send((start + warmup, start + duration));
    }
    let end = start + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let plan = |pacing| Plan {
        start,
        measure_from: start + warmup,
        end,
        pacing,
    };
    let mut plans: Vec<Option<Plan>> = vec![None; opts.sessions];
    let mut pacer = None;
    match opts.rate {
        None => {
            for (i, _) in &live {
                plans[*i] = Some(plan(Pacing::Max {
                    window: opts.window,
                }));
            }
        }
        Some(rate) if !live.is_empty() => {
            let schedule = Schedule {
                total_rate: rate,
                sessions: live.len() as u64,
            };
            let due = Arc::new(AtomicU64::new(0));
            let total = schedule.total(duration);
            let mut desks = Vec::new();
            for (slot, (i, desk)) in live.iter().enumerate() {
                let p = plan(Pacing::Fixed {
                    schedule,
                    slot: slot as u64,
                    total,
                    due: due.clone(),
                });
                desks.push((desk.clone(), p.clone()));
                plans[*i] = Some(p);
            }
            let stop = stop.clone();
            let start_std = start.into_std();
            pacer = Some(
                std::thread::Builder::new()
                    .name("fixgw-load-pacer".into())
                    .spawn(move || pace(start_std, schedule, total, &due, &desks, &stop))
                    .context("starting the pacer thread")?,
            );
        }
        Some(_) => {}
    }
    for (go, plan) in gos.into_iter().zip(plans) {
        let _ = go.send(plan);
    }

    let mut stats = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(s) => stats.push(s),
            Err(e) => {
                let mut s = SessionStats::new(&opts.sender_for(i));
                s.error = Some(format!("session task failed: {e}"));
                stats.push(s);
            }
        }
    }
    stop.store(true, Ordering::Release);
    if let Some(p) = pacer {
        let _ = tokio::task::spawn_blocking(move || p.join()).await;
    }
    if live.is_empty() {
        let why: Vec<String> = stats
            .iter()
            .filter_map(|s| {
                s.error
                    .as_ref()
                    .map(|e| format!("{}: {e}", s.sender_comp_id))
            })
            .collect();
        bail!("no session logged on: {}", why.join("; "));
    }
    let mut report = LoadReport::from_sessions(
        opts.sessions,
        &stats,
        opts.rate,
        opts.window,
        warmup,
        duration - warmup,
    );
    report.sessions_logged_on = live.len();
    for t in md_tasks {
        match t.await {
            Ok(s) => report.md.push(s),
            Err(e) => report.errors.push(format!("market-data task failed: {e}")),
        }
    }
    if let Some(path) = &opts.hgrm {
        report
            .write_hgrm(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Below this interval between requests the pacer keeps the default timer
/// slack (see [`crate::cpu_latency::tighten_timer_slack`]): each wake-up
/// then sends the few requests that fell due meanwhile. Waking for every request instead cost
/// the pacer twice the CPU at 50 000/s (35 % -> 64 % of a core) and, on a
/// two-core machine shared with the acceptor, made the acceptor's p99 many
/// times worse.
const PACER_MIN_PERIOD: Duration = Duration::from_micros(50);

/// Whether the pacer of `schedule` wakes for each request on time (see
/// [`PACER_MIN_PERIOD`]).
fn sleeps_on_time(schedule: &Schedule) -> bool {
    schedule.global_offset(1) >= PACER_MIN_PERIOD
}

/// Longest single sleep of the pacer, so that it notices `stop`.
const PACER_MAX_SLEEP: Duration = Duration::from_millis(50);

/// The pacer thread of fixed-rate mode: publishes how many requests are due
/// and sends each session's due requests itself (see [`client::Desk`]).
/// OS sleeps are precise to tens of microseconds, where tokio's timer rounds
/// to milliseconds.
fn pace(
    start: std::time::Instant,
    schedule: Schedule,
    total: u64,
    due: &AtomicU64,
    desks: &[(Arc<client::Desk>, Plan)],
    stop: &AtomicBool,
) {
    if sleeps_on_time(&schedule) {
        crate::cpu_latency::tighten_timer_slack();
    }
    let sessions = desks.len() as u64;
    let mut announced = 0u64;
    while announced < total && !stop.load(Ordering::Acquire) {
        let now = std::time::Instant::now();
        let global = now
            .checked_duration_since(start)
            .map_or(0, |e| schedule.due_at(e).min(total));
        if global > announced {
            due.store(global, Ordering::Release);
            let first = announced % sessions;
            let count = (global - announced).min(sessions);
            for j in 0..count {
                let (desk, plan) = &desks[((first + j) % sessions) as usize];
                desk.send_due_now(plan);
            }
            announced = global;
            continue;
        }
        let next = start + schedule.global_offset(announced);
        let wait = next.saturating_duration_since(std::time::Instant::now());
        std::thread::sleep(wait.min(PACER_MAX_SLEEP));
    }
}

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
//!   is due at `start + j/R`. One driver thread runs every session
//!   ([`driver`]: `ppoll` with a nanosecond timeout, well below tokio's
//!   millisecond timer); a request is sent when due whether or not earlier
//!   ones were answered, and its latency counts from when it was due, so a
//!   stalling acceptor shows up as latency (no coordinated omission).
//! - **max** (no `--rate`): each session keeps `--window` requests in
//!   flight; a request's scheduled time is the moment the window let it go.
//!
//! Only plain FIX 4.4 is used (no fixgw specifics): NewOrderSingle with 11,
//! 1 (optional), 21=1, 38, 40=2, 44, 54, 55, 59=0, 60; OrderCancelRequest with
//! 41, 11, 54, 55, 60, 38. The first `--warmup` seconds are sent but not measured.

pub mod client;
mod driver;
pub mod md;
pub mod report;
pub mod workload;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
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
    let setups: Vec<SessionSetup> = (0..opts.sessions)
        .map(|i| SessionSetup {
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
        })
        .collect();
    let timing = Timing { warmup, duration };
    let (stats, live) = match opts.rate {
        Some(rate) => run_fixed(opts, setups, rate, timing, md_gos).await?,
        None => run_max(opts, setups, timing, md_gos).await,
    };
    if live == 0 {
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
    report.sessions_logged_on = live;
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

/// When a run's requests are scheduled and measured.
#[derive(Debug, Clone, Copy)]
struct Timing {
    warmup: Duration,
    duration: Duration,
}

impl Timing {
    /// Time zero of the schedule, once every session has logged on; the
    /// market-data subscribers measure from the same moments.
    fn begin(&self, md_gos: Vec<oneshot::Sender<(Instant, Instant)>>) -> Instant {
        let start = Instant::now() + Duration::from_millis(20);
        for go in md_gos {
            let _ = go.send((start + self.warmup, start + self.duration));
        }
        start
    }

    fn plan(&self, start: Instant, pacing: Pacing) -> Plan {
        Plan {
            start,
            measure_from: start + self.warmup,
            end: start + self.duration,
            pacing,
        }
    }
}

/// Fixed-rate mode: logs every session on, then runs them all on the
/// driver thread ([`driver`]). Returns each session's statistics (in
/// session order) and how many logged on.
async fn run_fixed(
    opts: &LoadOptions,
    setups: Vec<SessionSetup>,
    rate: u64,
    timing: Timing,
    md_gos: Vec<oneshot::Sender<(Instant, Instant)>>,
) -> anyhow::Result<(Vec<SessionStats>, usize)> {
    let logons: Vec<_> = setups
        .into_iter()
        .map(|s| tokio::spawn(client::logon_for_driver(s)))
        .collect();
    let mut stats: Vec<Option<SessionStats>> = Vec::new();
    let mut logged_on = Vec::new();
    for (i, t) in logons.into_iter().enumerate() {
        stats.push(match t.await {
            Ok(Ok(session)) => {
                logged_on.push((i, session));
                None
            }
            Ok(Err(s)) => Some(s),
            Err(e) => Some(failed(opts, i, format!("session task failed: {e}"))),
        });
    }
    let start = timing.begin(md_gos);
    let live = logged_on.len();
    if live > 0 {
        let schedule = Schedule {
            total_rate: rate,
            sessions: live as u64,
        };
        let total = schedule.total(timing.duration);
        let (slots, mut conns): (Vec<usize>, Vec<driver::Conn>) = logged_on
            .into_iter()
            .enumerate()
            .map(|(slot, (i, (client, stream, inbuf)))| {
                let pacing = Pacing::Fixed {
                    schedule,
                    slot: slot as u64,
                    total,
                };
                (
                    i,
                    driver::Conn::new(client, stream, inbuf, timing.plan(start, pacing)),
                )
            })
            .unzip();
        let thread = std::thread::Builder::new()
            .name("fixgw-load".into())
            .spawn(move || {
                driver::drive(&mut conns, start, schedule, total);
                conns
                    .into_iter()
                    .map(driver::Conn::finish)
                    .collect::<Vec<_>>()
            })
            .context("starting the driver thread")?;
        let done = tokio::task::spawn_blocking(move || thread.join())
            .await
            .ok()
            .and_then(Result::ok);
        match done {
            Some(done) => {
                for (i, s) in slots.into_iter().zip(done) {
                    stats[i] = Some(s);
                }
            }
            // The sessions' counts went with the thread.
            None => {
                for i in slots {
                    let why = "the load generator's driver thread failed".to_string();
                    stats[i] = Some(failed(opts, i, why));
                }
            }
        }
    }
    Ok((stats.into_iter().flatten().collect(), live))
}

/// Max mode: one tokio task per session. Returns each session's statistics
/// (in session order) and how many logged on.
async fn run_max(
    opts: &LoadOptions,
    setups: Vec<SessionSetup>,
    timing: Timing,
    md_gos: Vec<oneshot::Sender<(Instant, Instant)>>,
) -> (Vec<SessionStats>, usize) {
    let mut logons = Vec::new();
    let mut gos = Vec::new();
    let mut tasks = Vec::new();
    for setup in setups {
        let (logon_tx, logon_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        tasks.push(tokio::spawn(client::run_session(setup, logon_tx, go_rx)));
        logons.push(logon_rx);
        gos.push(go_tx);
    }
    let mut live = 0;
    let mut ok = Vec::new();
    for rx in logons {
        let on = matches!(rx.await, Ok(Ok(())));
        live += usize::from(on);
        ok.push(on);
    }
    let start = timing.begin(md_gos);
    let pacing = Pacing::Max {
        window: opts.window,
    };
    for (go, on) in gos.into_iter().zip(ok) {
        let _ = go.send(on.then(|| timing.plan(start, pacing.clone())));
    }
    let mut stats = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        stats.push(match t.await {
            Ok(s) => s,
            Err(e) => failed(opts, i, format!("session task failed: {e}")),
        });
    }
    (stats, live)
}

/// The statistics of session `i`, lost with the task or thread that ran it.
fn failed(opts: &LoadOptions, i: usize, why: String) -> SessionStats {
    let mut s = SessionStats::new(&opts.sender_for(i));
    s.error = Some(why);
    s
}

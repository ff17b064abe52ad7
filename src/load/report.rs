//! Counting and reporting: per-session statistics, their merge into a
//! [`LoadReport`], the human summary and the HdrHistogram `.hgrm` text.

use std::fmt;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Lowest latency the histograms track, in nanoseconds.
const LOWEST_NS: u64 = 1;
/// Highest latency the histograms track (larger values saturate), in nanoseconds: one hour.
const HIGHEST_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits kept by the histograms.
const SIGFIG: u8 = 3;

/// A latency histogram in nanoseconds, as every session records it.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that the crate accepts; a failure is a bug here.
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("valid histogram bounds")
}

/// What one session counted.
#[derive(Debug, Clone)]
pub struct SessionStats {
    /// SenderCompID of the session.
    pub sender_comp_id: String,
    /// Requests sent (NewOrderSingle and OrderCancelRequest).
    pub sent: u64,
    /// Of which OrderCancelRequests.
    pub cancels_sent: u64,
    /// Requests whose first answer was an ExecutionReport other than a
    /// rejection, or an OrderCancelReject.
    pub acks: u64,
    /// Of the acks, OrderCancelRejects (35=9).
    pub cancel_rejects: u64,
    /// Requests rejected: ExecutionReport ExecType=8, session Reject (35=3)
    /// or BusinessMessageReject (35=j).
    pub rejects: u64,
    /// Acks received inside the measured interval.
    pub acks_measured: u64,
    /// Trade ExecutionReports (ExecType F) received for this session's orders.
    pub fills: u64,
    /// Requests still unanswered when the session ended.
    pub unanswered: u64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Latency of the first answer from the scheduled send time, in
    /// nanoseconds, for requests scheduled in the measured interval.
    pub histogram: Histogram<u64>,
    /// Why the session ended early, if it did.
    pub error: Option<String>,
    /// The first rejection received, as text (`|` for SOH), for diagnosis.
    pub first_reject: Option<String>,
}

impl SessionStats {
    /// Empty statistics for a session.
    pub fn new(sender_comp_id: &str) -> SessionStats {
        SessionStats {
            sender_comp_id: sender_comp_id.to_string(),
            sent: 0,
            cancels_sent: 0,
            acks: 0,
            cancel_rejects: 0,
            rejects: 0,
            acks_measured: 0,
            fills: 0,
            unanswered: 0,
            max_in_flight: 0,
            histogram: new_histogram(),
            error: None,
            first_reject: None,
        }
    }
}

/// The result of a load run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Sessions requested.
    pub sessions: usize,
    /// Sessions that logged on.
    pub sessions_logged_on: usize,
    /// Target rate in requests/s over all sessions (`None`: as fast as the
    /// acceptor keeps up with the in-flight window).
    pub target_rate: Option<u64>,
    /// The in-flight window per session (max mode).
    pub window: usize,
    /// Requests sent, warm-up included (NewOrderSingle + OrderCancelRequest).
    pub orders_sent: u64,
    /// Of which OrderCancelRequests.
    pub cancels_sent: u64,
    /// Requests acknowledged (first answer not a rejection; an
    /// OrderCancelReject counts: the cancel was processed).
    pub acks: u64,
    /// Of the acks, OrderCancelRejects (the order had already traded).
    pub cancel_rejects: u64,
    /// Requests rejected (ExecType=8, 35=3 or 35=j).
    pub rejects: u64,
    /// Requests never answered (before logout).
    pub unanswered: u64,
    /// Trade ExecutionReports received.
    pub fills: u64,
    /// Acks received during the measured interval.
    pub acks_measured: u64,
    /// Sustained rate: acks in the measured interval / its length.
    pub orders_per_sec: f64,
    /// Latency percentiles from the scheduled send time, microseconds.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Number of latencies in the histogram.
    pub samples: u64,
    /// Most requests in flight at once on one session.
    pub max_in_flight: usize,
    /// Length of the measured interval (the run after the warm-up).
    pub duration: Duration,
    /// Length of the warm-up.
    pub warmup: Duration,
    /// Errors that ended sessions, `SENDER: reason`.
    pub errors: Vec<String>,
    /// The first rejection any session received (`|` for SOH), if any.
    pub reject_sample: Option<String>,
    /// The merged latency histogram, nanoseconds.
    pub histogram: Histogram<u64>,
    /// Market-data subscribers (`--md-subscribers`), one entry each.
    pub md: Vec<super::md::MdStats>,
}

impl LoadReport {
    /// Why the run is not a clean measurement, if it is not: requests the
    /// acceptor never answered, sessions that failed or ended early, and
    /// market-data subscribers that did. `fixgw load` prints the report
    /// either way, and exits with status 3 when this is `Some`.
    pub fn problems(&self) -> Option<String> {
        let mut p = Vec::new();
        if self.unanswered > 0 {
            p.push(format!("{} requests unanswered", self.unanswered));
        }
        if !self.errors.is_empty() {
            p.push(format!("{} session errors", self.errors.len()));
        }
        let md = self.md.iter().filter(|m| m.error.is_some()).count();
        if md > 0 {
            p.push(format!("{md} market-data subscriber errors"));
        }
        (!p.is_empty()).then(|| p.join(", "))
    }

    /// Merges the sessions' statistics.
    pub fn from_sessions(
        sessions: usize,
        stats: &[SessionStats],
        target_rate: Option<u64>,
        window: usize,
        warmup: Duration,
        duration: Duration,
    ) -> LoadReport {
        let mut histogram = new_histogram();
        let mut r = LoadReport {
            sessions,
            sessions_logged_on: 0,
            target_rate,
            window,
            orders_sent: 0,
            cancels_sent: 0,
            acks: 0,
            cancel_rejects: 0,
            rejects: 0,
            unanswered: 0,
            fills: 0,
            acks_measured: 0,
            orders_per_sec: 0.0,
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
            mean_us: 0.0,
            samples: 0,
            max_in_flight: 0,
            duration,
            warmup,
            errors: Vec::new(),
            reject_sample: None,
            histogram: new_histogram(),
            md: Vec::new(),
        };
        for s in stats {
            r.orders_sent += s.sent;
            r.cancels_sent += s.cancels_sent;
            r.acks += s.acks;
            r.cancel_rejects += s.cancel_rejects;
            r.rejects += s.rejects;
            r.unanswered += s.unanswered;
            r.fills += s.fills;
            r.acks_measured += s.acks_measured;
            r.max_in_flight = r.max_in_flight.max(s.max_in_flight);
            // Same bounds on both sides: adding cannot fail.
            let _ = histogram.add(&s.histogram);
            if r.reject_sample.is_none() {
                r.reject_sample.clone_from(&s.first_reject);
            }
            if let Some(e) = &s.error {
                r.errors.push(format!("{}: {e}", s.sender_comp_id));
            }
        }
        let secs = duration.as_secs_f64();
        if secs > 0.0 {
            r.orders_per_sec = r.acks_measured as f64 / secs;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        if !histogram.is_empty() {
            r.p50_us = us(histogram.value_at_quantile(0.50));
            r.p90_us = us(histogram.value_at_quantile(0.90));
            r.p99_us = us(histogram.value_at_quantile(0.99));
            r.p999_us = us(histogram.value_at_quantile(0.999));
            r.max_us = us(histogram.max());
            r.mean_us = histogram.mean() / 1000.0;
        }
        r.samples = histogram.len();
        r.histogram = histogram;
        r
    }

    /// The latency distribution in HdrHistogram's `.hgrm` text format,
    /// values in microseconds.
    pub fn hgrm(&self) -> String {
        format_hgrm(&self.histogram, 1000.0)
    }

    /// Writes [`LoadReport::hgrm`] to `path`.
    pub fn write_hgrm(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.hgrm())
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.target_rate {
            Some(r) => format!("fixed rate {r} orders/s"),
            None => format!("max rate, window {} per session", self.window),
        };
        writeln!(
            f,
            "fixgw load: {}/{} sessions logged on, {mode}, measured {:.2} s after {:.2} s warm-up",
            self.sessions_logged_on,
            self.sessions,
            self.duration.as_secs_f64(),
            self.warmup.as_secs_f64()
        )?;
        writeln!(
            f,
            "  sustained   {:.0} orders/s ({} acknowledged in the measured interval)",
            self.orders_per_sec, self.acks_measured
        )?;
        writeln!(
            f,
            "  latency µs  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}  ({} samples, from scheduled send time)",
            self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.max_us, self.mean_us, self.samples
        )?;
        writeln!(
            f,
            "  requests    sent {} (cancels {})  acks {} (cancel rejects {})  rejects {}  unanswered {}  fills {}  max in flight {}",
            self.orders_sent,
            self.cancels_sent,
            self.acks,
            self.cancel_rejects,
            self.rejects,
            self.unanswered,
            self.fills,
            self.max_in_flight
        )?;
        if let Some(sample) = &self.reject_sample {
            writeln!(f, "  first reject {sample}")?;
        }
        if !self.md.is_empty() {
            let secs = self.duration.as_secs_f64().max(f64::MIN_POSITIVE);
            let measured: u64 = self.md.iter().map(|m| m.entries_measured).sum();
            let per_sub = self.md.iter().map(|m| m.entries_measured);
            let (lo, hi) = (
                per_sub.clone().min().unwrap_or(0),
                per_sub.max().unwrap_or(0),
            );
            writeln!(
                f,
                "  market data {} subscribers: {:.0} incremental entries/s delivered in total ({measured} in the measured interval; per subscriber {lo}..{hi}), {} X messages, {} entries overall",
                self.md.len(),
                measured as f64 / secs,
                self.md.iter().map(|m| m.messages).sum::<u64>(),
                self.md.iter().map(|m| m.entries).sum::<u64>(),
            )?;
            for m in self.md.iter().filter(|m| m.error.is_some()) {
                writeln!(
                    f,
                    "    {}: {}",
                    m.sender_comp_id,
                    m.error.as_deref().unwrap_or("")
                )?;
            }
        }
        if self.errors.is_empty() {
            write!(f, "  errors      none")
        } else {
            write!(f, "  errors      {}", self.errors.len())?;
            for e in &self.errors {
                write!(f, "\n    {e}")?;
            }
            Ok(())
        }
    }
}

/// HdrHistogram's percentile distribution text (`outputPercentileDistribution`
/// of the Java implementation, 5 ticks per half distance), values divided by
/// `scale` (1000.0 turns nanoseconds into microseconds).
pub fn format_hgrm(h: &Histogram<u64>, scale: f64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let len = h.len();
    if len > 0 {
        for v in h.iter_quantiles(5) {
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            let total = (v.quantile() * len as f64).round() as u64;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if len > 0 {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    } else {
        (0.0, 0.0, 0.0)
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(out, "#[Max     = {max:12.3}, Total count    = {len:12}]");
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        // The sub-bucket count is 2 × 10^sigfig rounded up to a power of two.
        (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, lat_us: &[u64]) -> SessionStats {
        let mut s = SessionStats::new(name);
        for &l in lat_us {
            s.histogram.record(l * 1000).unwrap();
        }
        s.sent = lat_us.len() as u64;
        s.acks = lat_us.len() as u64;
        s.acks_measured = lat_us.len() as u64;
        s
    }

    #[test]
    fn merges_sessions_and_computes_rate_and_percentiles() {
        let a = stats("CLIENT1", &(1..=500).collect::<Vec<_>>());
        let mut b = stats("CLIENT2", &(501..=1000).collect::<Vec<_>>());
        b.error = Some("acceptor logged out: bye".into());
        b.max_in_flight = 9;
        let r = LoadReport::from_sessions(
            2,
            &[a, b],
            Some(1000),
            64,
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        assert_eq!(r.orders_sent, 1000);
        assert_eq!(r.samples, 1000);
        assert!((r.orders_per_sec - 500.0).abs() < 1e-9);
        assert!((r.p50_us - 500.0).abs() < 1.0, "{}", r.p50_us);
        assert!((r.p90_us - 900.0).abs() < 1.0, "{}", r.p90_us);
        assert!((r.p99_us - 990.0).abs() < 1.0, "{}", r.p99_us);
        assert!((r.max_us - 1000.0).abs() < 1.0, "{}", r.max_us);
        assert_eq!(r.max_in_flight, 9);
        assert_eq!(
            r.errors,
            vec!["CLIENT2: acceptor logged out: bye".to_string()]
        );
        let text = r.to_string();
        assert!(text.contains("sustained   500 orders/s"), "{text}");
        assert!(text.contains("p99 99"), "{text}");
        assert!(text.contains("CLIENT2: acceptor logged out"), "{text}");
    }

    #[test]
    fn hgrm_has_java_layout() {
        let s = stats("X", &(1..=1000).collect::<Vec<_>>());
        let text = format_hgrm(&s.histogram, 1000.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert!(lines[2].starts_with("       1.000 0.000000000000          1           1.00"));
        let last_value = lines[lines.len() - 4];
        assert!(
            last_value.ends_with(" 1.000000000000       1000"),
            "{last_value:?}"
        );
        assert!(lines[lines.len() - 3].starts_with("#[Mean    =      500.505"));
        assert!(lines[lines.len() - 2].ends_with("Total count    =         1000]"));
        assert_eq!(
            lines[lines.len() - 1],
            "#[Buckets =           32, SubBuckets     =         2048]"
        );
        // Percentiles are increasing and values non-decreasing.
        let rows: Vec<(f64, f64)> = lines[2..lines.len() - 3]
            .iter()
            .map(|l| {
                let mut it = l.split_whitespace();
                (
                    it.next().unwrap().parse().unwrap(),
                    it.next().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        // An empty histogram still yields a parseable file.
        assert!(format_hgrm(&new_histogram(), 1000.0).contains("Total count    =            0"));
    }
}

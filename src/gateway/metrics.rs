//! The core's metrics, kept as plain numbers on the core thread (no atomics
//! on the hot path) and rendered in Prometheus' text format when the admin
//! API asks (`GET /metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A Prometheus histogram with fixed upper bounds.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Seconds: 25 µs to 1 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.000_025, 0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];
/// Messages per batch.
pub const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records `n` observations of `v`.
    pub fn observe_n(&mut self, v: f64, n: u64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += n;
        }
        self.sum += v * n as f64;
        self.count += n;
    }

    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        self.observe_n(v, 1);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Everything the core counts.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    /// Session names (TargetCompID), by core entry index.
    pub sessions: Vec<String>,
    /// Per session (entry index): MsgType -> messages received.
    pub msgs_in: Vec<BTreeMap<Vec<u8>, u64>>,
    /// Per session: MsgType -> messages sent.
    pub msgs_out: Vec<BTreeMap<Vec<u8>, u64>>,
    /// Session-level rejects sent: (MsgType 3 or j, reason) -> count.
    pub session_rejects: BTreeMap<(String, String), u64>,
    /// Orders (D, F, G) received.
    pub orders: u64,
    /// Batches processed.
    pub batches: u64,
    /// Messages per batch.
    pub batch_size: Histogram,
    /// Batch commit (journal + stores, flush) time.
    pub commit_seconds: Histogram,
    /// From the core taking an order off its queue to its answer handed to the connection.
    pub order_latency: Histogram,
    /// Messages waiting in the core's queue at the last batch.
    pub queue_depth: usize,
    /// Slow consumers logged out.
    pub slow_consumers: u64,
    /// Application messages refused by a session's rate limit.
    pub throttled: u64,
    /// Times the store stopped writing.
    pub store_failures: u64,
    /// Batch records deleted by compaction while running.
    pub compacted_records: u64,
}

impl CoreMetrics {
    /// Metrics for the named sessions (core entry order).
    pub fn new(sessions: Vec<String>) -> Self {
        CoreMetrics {
            msgs_in: vec![BTreeMap::new(); sessions.len()],
            msgs_out: vec![BTreeMap::new(); sessions.len()],
            sessions,
            session_rejects: BTreeMap::new(),
            orders: 0,
            batches: 0,
            batch_size: Histogram::new(BATCH_BOUNDS),
            commit_seconds: Histogram::new(LATENCY_BOUNDS),
            order_latency: Histogram::new(LATENCY_BOUNDS),
            queue_depth: 0,
            slow_consumers: 0,
            throttled: 0,
            store_failures: 0,
            compacted_records: 0,
        }
    }
}

/// Counts one message of `msg_type` (allocates only for a type's first message).
pub fn count(map: &mut BTreeMap<Vec<u8>, u64>, msg_type: &[u8]) {
    match map.get_mut(msg_type) {
        Some(n) => *n += 1,
        None => {
            map.insert(msg_type.to_vec(), 1);
        }
    }
}

/// The MsgType of an encoded message (the value after `<SOH>35=`).
pub fn msg_type_of(frame: &[u8]) -> &[u8] {
    let head = &frame[..frame.len().min(40)];
    let Some(at) = head.windows(4).position(|w| w == b"\x0135=") else {
        return b"?";
    };
    let rest = &frame[at + 4..];
    let end = rest.iter().position(|&b| b == 1).unwrap_or(rest.len());
    &rest[..end]
}

/// Gauges and counters owned by other parts, read at render time.
pub struct Live<'a> {
    /// Sessions with a connection.
    pub connected: usize,
    /// Configured sessions.
    pub configured: usize,
    /// Trades since the journal began.
    pub trades: u64,
    /// Market-data subscriptions.
    pub md_subscriptions: usize,
    /// The store cannot write right now.
    pub store_down: bool,
    /// Order / cancel rejects by (kind, code, reason).
    pub venue_rejects: &'a [(&'static str, u32, &'static str, u64)],
}

impl CoreMetrics {
    /// Prometheus text exposition.
    pub fn render(&self, live: &Live<'_>) -> String {
        let mut o = String::with_capacity(4096);
        let counter = |o: &mut String, name: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        for (name, help, map) in [
            (
                "fixgw_messages_received_total",
                "FIX messages received, by session and MsgType.",
                &self.msgs_in,
            ),
            (
                "fixgw_messages_sent_total",
                "FIX messages sent, by session and MsgType.",
                &self.msgs_out,
            ),
        ] {
            counter(&mut o, name, help);
            for (session, types) in self.sessions.iter().zip(map) {
                for (t, n) in types {
                    let t = String::from_utf8_lossy(t);
                    let _ = writeln!(o, "{name}{{session=\"{session}\",msg_type=\"{t}\"}} {n}");
                }
            }
        }
        counter(&mut o, "fixgw_rejects_total", "Rejects sent, by kind (session 35=3 by 373, business 35=j by 380, order ExecType=8 by OrdRejReason, cancel 35=9 by CxlRejReason).");
        for ((kind, reason), n) in &self.session_rejects {
            let _ = writeln!(
                o,
                "fixgw_rejects_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            );
        }
        for (kind, code, text, n) in live.venue_rejects {
            let _ = writeln!(
                o,
                "fixgw_rejects_total{{kind=\"{kind}\",reason=\"{code}\",text=\"{text}\"}} {n}"
            );
        }
        counter(
            &mut o,
            "fixgw_orders_total",
            "Orders received (NewOrderSingle, OrderCancelRequest, OrderCancelReplaceRequest).",
        );
        let _ = writeln!(o, "fixgw_orders_total {}", self.orders);
        counter(&mut o, "fixgw_trades_total", "Trades matched.");
        let _ = writeln!(o, "fixgw_trades_total {}", live.trades);
        counter(&mut o, "fixgw_batches_total", "Engine batches committed.");
        let _ = writeln!(o, "fixgw_batches_total {}", self.batches);
        counter(
            &mut o,
            "fixgw_slow_consumers_total",
            "Connections logged out for falling behind (MaxOutboundQueue).",
        );
        let _ = writeln!(o, "fixgw_slow_consumers_total {}", self.slow_consumers);
        counter(
            &mut o,
            "fixgw_throttled_total",
            "Application messages refused by a session's rate limit (ThrottleRate).",
        );
        let _ = writeln!(o, "fixgw_throttled_total {}", self.throttled);
        counter(
            &mut o,
            "fixgw_store_failures_total",
            "Times the store stopped writing (disk full, I/O error).",
        );
        let _ = writeln!(o, "fixgw_store_failures_total {}", self.store_failures);
        counter(
            &mut o,
            "fixgw_store_compacted_records_total",
            "Batch records deleted by compaction while running (CompactStore).",
        );
        let _ = writeln!(
            &mut o,
            "fixgw_store_compacted_records_total {}",
            self.compacted_records
        );
        let gauge = |o: &mut String, name: &str, help: &str, v: usize| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut o,
            "fixgw_sessions_connected",
            "Sessions with a connection.",
            live.connected,
        );
        gauge(
            &mut o,
            "fixgw_sessions_configured",
            "Configured sessions.",
            live.configured,
        );
        gauge(
            &mut o,
            "fixgw_md_subscriptions",
            "Live market-data subscriptions.",
            live.md_subscriptions,
        );
        gauge(
            &mut o,
            "fixgw_store_down",
            "1 while the store cannot write: orders are refused until it can.",
            usize::from(live.store_down),
        );
        gauge(
            &mut o,
            "fixgw_engine_queue_depth",
            "Messages waiting for the core at the last batch.",
            self.queue_depth,
        );
        self.batch_size
            .render(&mut o, "fixgw_batch_size", "Messages per engine batch.");
        self.commit_seconds.render(
            &mut o,
            "fixgw_journal_flush_seconds",
            "Time to write and flush one batch (journal + session stores).",
        );
        self.order_latency.render(&mut o, "fixgw_order_latency_seconds", "From the core taking an order off its queue to its ExecutionReport handed to the connection.");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe_n(1.5, 2);
        h.observe(9.0);
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"2\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_count 4\n"), "{s}");
    }

    #[test]
    fn msg_type_of_a_frame() {
        let f = b"8=FIX.4.4\x019=20\x0135=3\x0134=2\x01373=5\x0158=x\x0110=000\x01";
        assert_eq!(msg_type_of(f), b"3");
        assert_eq!(msg_type_of(b"garbage"), b"?");
    }
}

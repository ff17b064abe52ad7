//! What the load generator sends and when: the order mix, prices, the
//! session's own open orders (the targets of cancels) and the fixed-rate
//! schedule. Pure code, no I/O, so every rule here is unit-tested.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::fix::encoder::push_int;
use crate::fix::time::Precision;
use crate::fix::Encoder;

/// Distance of the nearest resting order from the base price, in basis points.
pub const REST_MIN_BPS: i64 = 50;
/// Resting orders are spread over this many one-basis-point steps beyond [`REST_MIN_BPS`].
pub const REST_SPREAD_BPS: u64 = 50;
/// How far through the base price a crossing order is priced, in basis points
/// (beyond every resting order of the other side, so it trades with the best one).
pub const CROSS_BPS: i64 = 150;

/// The order mix: relative weights of resting, crossing and cancel requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Limit orders away from the touch, which do not trade on arrival.
    pub resting: u32,
    /// Limit orders priced through the other side's resting orders.
    pub crossing: u32,
    /// OrderCancelRequests for one of the session's own open orders.
    pub cancel: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            resting: 60,
            crossing: 30,
            cancel: 10,
        }
    }
}

impl Mix {
    fn total(&self) -> u64 {
        u64::from(self.resting) + u64::from(self.crossing) + u64::from(self.cancel)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.resting, self.crossing, self.cancel)
    }
}

impl FromStr for Mix {
    type Err = String;

    /// Parses `resting,crossing,cancel`, e.g. `60,30,10` (weights; they need not add up to 100).
    fn from_str(s: &str) -> Result<Mix, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!(
                "mix `{s}`: expected three numbers resting,crossing,cancel (e.g. 60,30,10)"
            ));
        }
        let mut w = [0u32; 3];
        for (slot, p) in w.iter_mut().zip(&parts) {
            *slot = p
                .parse()
                .map_err(|_| format!("mix `{s}`: `{p}` is not a non-negative integer"))?;
        }
        let mix = Mix {
            resting: w[0],
            crossing: w[1],
            cancel: w[2],
        };
        if mix.total() == 0 {
            return Err(format!("mix `{s}`: all weights are zero"));
        }
        Ok(mix)
    }
}

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// 54=1.
    Buy,
    /// 54=2.
    Sell,
}

impl Side {
    /// The FIX Side (54) value.
    pub fn fix(self) -> &'static [u8] {
        match self {
            Side::Buy => b"1",
            Side::Sell => b"2",
        }
    }

    fn flip(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Kind of a scheduled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A NewOrderSingle that rests.
    Resting,
    /// A NewOrderSingle that crosses.
    Crossing,
    /// An OrderCancelRequest.
    Cancel,
}

/// An instrument and its base price in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// Symbol (55).
    pub symbol: String,
    /// Base price, in hundredths.
    pub base_cents: i64,
}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A NewOrderSingle (35=D).
    New {
        /// Resting or crossing.
        kind: Kind,
        /// Index into the instruments.
        instrument: usize,
        /// Side.
        side: Side,
        /// Limit price in cents.
        price_cents: i64,
        /// Quantity.
        qty: u64,
    },
    /// An OrderCancelRequest (35=F) for an open order.
    Cancel {
        /// Order number (the generator's ClOrdID counter) of the order to cancel.
        orig: u64,
        /// The open order's details.
        order: OpenOrder,
    },
}

impl Request {
    /// MsgType (35) of the request.
    pub fn msg_type(&self) -> &'static [u8] {
        match self {
            Request::New { .. } => b"D",
            Request::Cancel { .. } => b"F",
        }
    }

    /// Writes the request's body after a header begun with [`Request::msg_type`]:
    /// NewOrderSingle 11, (1), 21=1, 55, 54, 60, 38, 40=2, 44, 59=0;
    /// OrderCancelRequest 41, 11, (1), 55, 54, 60, 38. ClOrdIDs are
    /// `clordid_prefix` + the request number (`k`, and `orig` for a cancel);
    /// `transact_time` is in ns since the epoch.
    pub fn encode_body(
        &self,
        enc: &mut Encoder,
        instruments: &[Instrument],
        k: u64,
        clordid_prefix: &str,
        account: Option<&str>,
        transact_time: i64,
    ) {
        let clordid = |enc: &mut Encoder, tag, n: u64| {
            enc.field_with(tag, |b| {
                b.extend_from_slice(clordid_prefix.as_bytes());
                push_int(b, n as i64);
            });
        };
        let (instrument, side, qty) = match *self {
            Request::New {
                instrument,
                side,
                qty,
                ..
            } => {
                clordid(enc, 11, k);
                (instrument, side, qty)
            }
            Request::Cancel { orig, order } => {
                clordid(enc, 41, orig);
                clordid(enc, 11, k);
                (order.instrument, order.side, order.qty)
            }
        };
        if let Some(acct) = account {
            enc.field_str(1, acct);
        }
        if let Request::New { .. } = self {
            enc.field(21, b"1");
        }
        enc.field_str(55, &instruments[instrument].symbol)
            .field(54, side.fix())
            .field_time(60, transact_time, Precision::Millis)
            .field_int(38, qty as i64);
        if let Request::New { price_cents, .. } = *self {
            enc.field(40, b"2")
                .field_with(44, |b| format_price(price_cents, b))
                .field(59, b"0");
        }
    }
}

/// The request number in a ClOrdID written by [`Request::encode_body`]
/// with `clordid_prefix` (None: not one of ours).
pub fn order_number(clordid_prefix: &str, clordid: &[u8]) -> Option<u64> {
    crate::fix::message::parse_u64(clordid.strip_prefix(clordid_prefix.as_bytes())?)
}

/// SplitMix64: small, fast and good enough to draw a workload; seeded per
/// session so runs are reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Draws the requests of one session.
#[derive(Debug, Clone)]
pub struct Workload {
    mix: Mix,
    instruments: Vec<Instrument>,
    qty: u64,
    rng: SplitMix64,
    /// Side of the next crossing order, per instrument (alternates so both
    /// sides keep getting liquidity taken and leftovers are consumed).
    next_cross: Vec<Side>,
}

impl Workload {
    /// A workload over `instruments` (at least one), `qty` per order.
    pub fn new(mix: Mix, instruments: Vec<Instrument>, qty: u64, seed: u64) -> Workload {
        let next_cross = instruments
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if (i as u64).wrapping_add(seed).is_multiple_of(2) {
                    Side::Buy
                } else {
                    Side::Sell
                }
            })
            .collect();
        Workload {
            mix,
            instruments,
            qty,
            rng: SplitMix64::new(seed),
            next_cross,
        }
    }

    /// The instruments.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// Draws the kind of the next request (before the fallback of a cancel
    /// with nothing open).
    pub fn draw_kind(&mut self) -> Kind {
        let r = self.rng.below(self.mix.total());
        if r < u64::from(self.mix.resting) {
            Kind::Resting
        } else if r < u64::from(self.mix.resting) + u64::from(self.mix.crossing) {
            Kind::Crossing
        } else {
            Kind::Cancel
        }
    }

    /// The next request. A cancel takes an order from `open`; with none
    /// open a resting order is sent instead.
    pub fn next(&mut self, open: &mut OpenOrders) -> Request {
        match self.draw_kind() {
            Kind::Cancel => match open.take_for_cancel() {
                Some((orig, order)) => Request::Cancel { orig, order },
                None => self.new_order(Kind::Resting),
            },
            kind => self.new_order(kind),
        }
    }

    /// A new order of `kind` (resting or crossing).
    pub fn new_order(&mut self, kind: Kind) -> Request {
        let instrument = self.rng.below(self.instruments.len() as u64) as usize;
        let base = self.instruments[instrument].base_cents;
        let (side, price_cents) = match kind {
            Kind::Crossing => {
                let side = self.next_cross[instrument];
                self.next_cross[instrument] = side.flip();
                (side, price_at(base, side, -CROSS_BPS))
            }
            _ => {
                let side = if self.rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let away = REST_MIN_BPS + self.rng.below(REST_SPREAD_BPS) as i64;
                (side, price_at(base, side, away))
            }
        };
        Request::New {
            kind,
            instrument,
            side,
            price_cents,
            qty: self.qty,
        }
    }
}

/// The price `bps` basis points away from `base` on the passive side of
/// `side` (below for a buy, above for a sell); negative `bps` goes through.
/// Never below one cent.
pub fn price_at(base_cents: i64, side: Side, bps: i64) -> i64 {
    let signed = match side {
        Side::Buy => -bps,
        Side::Sell => bps,
    };
    let p = base_cents + (base_cents * signed).div_euclid(10_000);
    p.max(1)
}

/// Writes a price in cents as a FIX Price (`150.25`, `0.05`).
pub fn format_price(cents: i64, out: &mut Vec<u8>) {
    use std::io::Write;
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{sign}{}.{:02}", c / 100, c % 100);
}

/// Parses a base price (`150`, `399.5`) into cents.
pub fn parse_price_cents(s: &str) -> Result<i64, String> {
    let d =
        rust_decimal::Decimal::from_str(s.trim()).map_err(|_| format!("`{s}` is not a price"))?;
    let cents = (d * rust_decimal::Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let cents: i64 = cents
        .try_into()
        .map_err(|_| format!("price `{s}` is out of range"))?;
    if cents <= 0 {
        return Err(format!("price `{s}` must be positive"));
    }
    Ok(cents)
}

/// An order of this session that the acceptor acknowledged and that has
/// not reached a final state as far as we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOrder {
    /// Index into the instruments.
    pub instrument: usize,
    /// Side.
    pub side: Side,
    /// Original quantity (38 on the cancel).
    pub qty: u64,
}

/// The session's own orders, by order number: those sent and not yet final,
/// and, in arrival order of their acknowledgement, the candidates for a cancel.
#[derive(Debug, Default)]
pub struct OpenOrders {
    live: HashMap<u64, (OpenOrder, bool)>,
    acked: VecDeque<u64>,
}

impl OpenOrders {
    /// Notes a NewOrderSingle just sent.
    pub fn sent(&mut self, n: u64, order: OpenOrder) {
        self.live.insert(n, (order, false));
    }

    /// Applies an ExecutionReport's OrdStatus (39) for order `n`: a final
    /// status (filled, canceled, rejected, expired, done for day, replaced)
    /// forgets it; any other makes it a candidate for a cancel.
    pub fn on_status(&mut self, n: u64, ord_status: u8) {
        if matches!(ord_status, b'2' | b'3' | b'4' | b'5' | b'8' | b'C') {
            self.live.remove(&n);
        } else if let Some((_, acked)) = self.live.get_mut(&n) {
            if !*acked {
                *acked = true;
                self.acked.push_back(n);
            }
        }
    }

    /// Removes and returns the oldest acknowledged open order (to cancel it).
    pub fn take_for_cancel(&mut self) -> Option<(u64, OpenOrder)> {
        while let Some(n) = self.acked.pop_front() {
            if let Some((order, _)) = self.live.remove(&n) {
                return Some((n, order));
            }
        }
        None
    }

    /// Number of orders not known to be final.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no order is open.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// The fixed-rate schedule: `total_rate` requests per second over all
/// `sessions`, interleaved. Request `k` of session `s` has the global index
/// `j = k * sessions + s` and is due `j / total_rate` seconds after the start,
/// whether or not earlier requests were answered (so a stalled acceptor
/// shows up as latency: no coordinated omission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Requests per second, all sessions together (> 0).
    pub total_rate: u64,
    /// Number of sessions sharing the rate (> 0).
    pub sessions: u64,
}

impl Schedule {
    /// When global request `j` is due, from the start.
    pub fn global_offset(&self, j: u64) -> Duration {
        let nanos = u128::from(j) * 1_000_000_000 / u128::from(self.total_rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When request `k` of session `s` is due, from the start.
    pub fn offset(&self, session: u64, k: u64) -> Duration {
        self.global_offset(k * self.sessions + session)
    }

    /// Number of global requests due `elapsed` after the start (those with
    /// an offset ≤ elapsed).
    pub fn due_at(&self, elapsed: Duration) -> u64 {
        let j = elapsed.as_nanos() * u128::from(self.total_rate) / 1_000_000_000;
        u64::try_from(j + 1).unwrap_or(u64::MAX)
    }

    /// Number of global requests due before `duration` ends (offset < duration).
    pub fn total(&self, duration: Duration) -> u64 {
        let n = duration.as_nanos() * u128::from(self.total_rate);
        u64::try_from(n.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }

    /// How many of session `s`'s requests are among the first `global_due`.
    pub fn session_due(&self, session: u64, global_due: u64) -> u64 {
        if global_due <= session {
            0
        } else {
            (global_due - session).div_ceil(self.sessions)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instruments() -> Vec<Instrument> {
        vec![
            Instrument {
                symbol: "AAPL".into(),
                base_cents: 15_000,
            },
            Instrument {
                symbol: "MSFT".into(),
                base_cents: 40_000,
            },
        ]
    }

    #[test]
    fn mix_parses_and_rejects_junk() {
        assert_eq!(
            "60,30,10".parse::<Mix>().unwrap(),
            Mix {
                resting: 60,
                crossing: 30,
                cancel: 10
            }
        );
        assert_eq!(" 1, 0 ,0".parse::<Mix>().unwrap().resting, 1);
        assert!("60,30".parse::<Mix>().is_err());
        assert!("60,30,x".parse::<Mix>().is_err());
        assert!("0,0,0".parse::<Mix>().is_err());
        assert!("-1,30,10".parse::<Mix>().is_err());
        assert_eq!(Mix::default().to_string(), "60,30,10");
    }

    #[test]
    fn kinds_follow_the_mix() {
        let mut w = Workload::new("60,30,10".parse().unwrap(), instruments(), 100, 7);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[w.draw_kind() as usize] += 1;
        }
        for (got, want) in counts.iter().zip([60_000, 30_000, 10_000]) {
            assert!(
                (i64::from(*got) - want).abs() < 1_000,
                "{counts:?} vs 60/30/10"
            );
        }
        let mut only_cross = Workload::new("0,1,0".parse().unwrap(), instruments(), 100, 7);
        assert!((0..100).all(|_| only_cross.draw_kind() == Kind::Crossing));
    }

    #[test]
    fn resting_prices_stay_away_from_the_touch_and_crossing_goes_through() {
        let mut w = Workload::new("50,50,0".parse().unwrap(), instruments(), 100, 3);
        let mut open = OpenOrders::default();
        let mut cross_sides = [Vec::new(), Vec::new()];
        for _ in 0..10_000 {
            let Request::New {
                kind,
                instrument,
                side,
                price_cents,
                qty,
            } = w.next(&mut open)
            else {
                panic!("no cancels in this mix")
            };
            assert_eq!(qty, 100);
            let base = instruments()[instrument].base_cents;
            let (rest_lo, rest_hi) = (base * 99 / 100, base * 995 / 1000);
            match (kind, side) {
                (Kind::Resting, Side::Buy) => {
                    assert!((rest_lo..=rest_hi).contains(&price_cents), "{price_cents}")
                }
                (Kind::Resting, Side::Sell) => assert!(
                    (2 * base - rest_hi..=2 * base - rest_lo).contains(&price_cents),
                    "{price_cents}"
                ),
                // A crossing buy is above every resting sell and vice versa.
                (Kind::Crossing, Side::Buy) => assert!(price_cents > base * 101 / 100),
                (Kind::Crossing, Side::Sell) => assert!(price_cents < base * 99 / 100),
                (Kind::Cancel, _) => unreachable!(),
            }
            if kind == Kind::Crossing {
                cross_sides[instrument].push(side);
            }
        }
        // Crossing orders alternate sides per instrument.
        for sides in &cross_sides {
            assert!(sides.len() > 1000);
            assert!(sides.windows(2).all(|p| p[0] != p[1]));
        }
    }

    #[test]
    fn cancel_targets_an_acked_open_order_or_falls_back_to_resting() {
        let mut w = Workload::new("0,0,1".parse().unwrap(), instruments(), 100, 1);
        let mut open = OpenOrders::default();
        // Nothing open: a resting order instead.
        let r = w.next(&mut open);
        assert!(matches!(
            r,
            Request::New {
                kind: Kind::Resting,
                ..
            }
        ));
        let o = OpenOrder {
            instrument: 1,
            side: Side::Sell,
            qty: 100,
        };
        open.sent(1, o);
        open.sent(2, o);
        open.sent(3, o);
        // Sent but not acknowledged: not a target yet.
        assert!(matches!(w.next(&mut open), Request::New { .. }));
        open.on_status(2, b'0');
        open.on_status(1, b'0');
        open.on_status(3, b'0');
        open.on_status(2, b'2'); // filled meanwhile
        assert_eq!(open.len(), 2);
        assert_eq!(w.next(&mut open), Request::Cancel { orig: 1, order: o });
        assert_eq!(w.next(&mut open), Request::Cancel { orig: 3, order: o });
        assert!(open.is_empty());
        assert!(matches!(w.next(&mut open), Request::New { .. }));
        // A partial fill keeps it open; unknown numbers are ignored.
        open.sent(4, o);
        open.on_status(4, b'1');
        open.on_status(4, b'1');
        open.on_status(99, b'0');
        assert_eq!(open.take_for_cancel(), Some((4, o)));
        assert_eq!(open.take_for_cancel(), None);
    }

    #[test]
    fn prices_format_and_parse() {
        let mut v = Vec::new();
        format_price(15_025, &mut v);
        v.push(b' ');
        format_price(5, &mut v);
        v.push(b' ');
        format_price(40_000, &mut v);
        assert_eq!(v, b"150.25 0.05 400.00");
        assert_eq!(parse_price_cents("150"), Ok(15_000));
        assert_eq!(parse_price_cents("399.505"), Ok(39_951));
        assert!(parse_price_cents("0").is_err());
        assert!(parse_price_cents("abc").is_err());
        assert_eq!(price_at(15_000, Side::Buy, 50), 14_925);
        assert_eq!(price_at(15_000, Side::Sell, 50), 15_075);
        assert_eq!(price_at(15_000, Side::Buy, -150), 15_225);
        assert_eq!(price_at(1, Side::Buy, 9_999), 1);
    }

    #[test]
    fn schedule_interleaves_sessions_at_the_total_rate() {
        let s = Schedule {
            total_rate: 1000,
            sessions: 4,
        };
        assert_eq!(s.offset(0, 0), Duration::ZERO);
        assert_eq!(s.offset(1, 0), Duration::from_millis(1));
        assert_eq!(s.offset(3, 0), Duration::from_millis(3));
        assert_eq!(s.offset(0, 1), Duration::from_millis(4));
        assert_eq!(s.offset(2, 10), Duration::from_millis(42));
        // Non-integral intervals do not drift: the schedule is start + j/rate.
        let third = Schedule {
            total_rate: 3,
            sessions: 1,
        };
        assert_eq!(third.offset(0, 3), Duration::from_secs(1));
        assert_eq!(third.offset(0, 1), Duration::from_nanos(333_333_333));
        assert_eq!(third.offset(0, 3_000_000), Duration::from_secs(1_000_000));
    }

    #[test]
    fn due_counts_match_offsets() {
        let s = Schedule {
            total_rate: 2000,
            sessions: 3,
        };
        assert_eq!(s.due_at(Duration::ZERO), 1);
        assert_eq!(s.due_at(Duration::from_micros(499)), 1);
        assert_eq!(s.due_at(Duration::from_micros(500)), 2);
        assert_eq!(s.total(Duration::from_secs(2)), 4000);
        assert_eq!(s.total(Duration::from_nanos(1)), 1);
        assert_eq!(s.total(Duration::ZERO), 0);
        // Every request counted as due by session_due is due by its offset,
        // and the sessions' shares add up to the global count.
        for global in 0..50u64 {
            let mut sum = 0;
            for sess in 0..3 {
                let n = s.session_due(sess, global);
                sum += n;
                if n > 0 {
                    assert!((n - 1) * 3 + sess < global);
                }
                assert!(
                    n * 3 + sess >= global,
                    "request {n} of {sess} is not yet due"
                );
            }
            assert_eq!(sum, global);
        }
    }

    #[test]
    fn rng_is_reproducible_and_bounded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            let x = a.below(7);
            assert_eq!(x, b.below(7));
            assert!(x < 7);
        }
    }
}

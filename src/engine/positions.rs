//! Positions and P&L per account and instrument: net quantity, cost basis,
//! realised P&L (flips from long to short included) and unrealised P&L
//! against a mark price. Integer ticks x lots throughout; no rounding is lost:
//! realised + open cost always account for every fill exactly.

use crate::engine::types::{Lots, Side, Ticks};

/// Position of one account in one instrument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Net quantity, lots (+ long, - short).
    pub net_qty: i64,
    /// Signed cost of the open position, ticks x lots (same sign as `net_qty`).
    pub open_cost: i64,
    /// Realised P&L, ticks x lots.
    pub realized: i64,
    /// Total bought, lots.
    pub bought_qty: u64,
    /// Total sold, lots.
    pub sold_qty: u64,
}

impl Position {
    /// Applies a fill; returns the realised P&L it produced (ticks x lots).
    #[inline]
    pub fn apply_fill(&mut self, side: Side, qty: Lots, price: Ticks) -> i64 {
        let q = qty as i64;
        let signed = match side {
            Side::Buy => {
                self.bought_qty += qty;
                q
            }
            Side::Sell => {
                self.sold_qty += qty;
                -q
            }
        };
        let net = self.net_qty;
        if net == 0 || (net ^ signed) >= 0 {
            // Opening or adding in the same direction.
            self.net_qty = net + signed;
            self.open_cost += signed * price;
            return 0;
        }
        self.reduce(q, side.sign(), price)
    }

    /// A fill of `q` lots on side `sign` (+1 buy, -1 sell) against the position (the
    /// position's sign is -`sign`): closes min(|net|, q) at `price` against a proportional
    /// share of the cost basis (the remainder stays in open_cost, so no tick is lost), and
    /// opens the rest the other way.
    #[inline]
    fn reduce(&mut self, q: i64, sign: i64, price: Ticks) -> i64 {
        let (net, cost) = (self.net_qty, self.open_cost);
        let held = net.abs();
        // Long closes by selling: proceeds - cost. Short closes by buying: cost - outlay.
        if q >= held {
            // Closes all of it, then opens q - held the other way.
            let pnl = -sign * (held * price) - cost;
            self.realized += pnl;
            let opening = sign * (q - held);
            self.net_qty = opening;
            self.open_cost = opening * price;
            return pnl;
        }
        let removed = match cost.checked_mul(q) {
            Some(c) => c / held,
            None => ((cost as i128 * q as i128) / held as i128) as i64,
        };
        let pnl = -sign * (q * price) - removed;
        self.realized += pnl;
        self.open_cost = cost - removed;
        self.net_qty = net + sign * q;
        pnl
    }

    /// True when a fill on `side` adds to the position (flat, or already on that side): such
    /// fills at one price book as one, exactly (`apply_fill` of their sum).
    #[inline]
    pub(crate) fn grows_with(&self, side: Side) -> bool {
        self.net_qty == 0 || (self.net_qty ^ side.sign()) >= 0
    }

    /// Unrealised P&L against a mark price, ticks x lots.
    pub fn unrealized(&self, mark: Ticks) -> i64 {
        self.net_qty * mark - self.open_cost
    }

    /// Average open price in ticks (0.0 when flat).
    pub fn avg_price_ticks(&self) -> f64 {
        if self.net_qty == 0 {
            0.0
        } else {
            self.open_cost as f64 / self.net_qty as f64
        }
    }
}

/// A position with its P&L marked, as reported by `Engine::position`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionView {
    /// The raw position.
    pub position: Position,
    /// Mark (last trade price), ticks, if any trade happened.
    pub mark: Option<Ticks>,
    /// Unrealised P&L at the mark, ticks x lots (0 without a mark).
    pub unrealized: i64,
}

/// Money totals of an account across instruments, in cash units (1e-6 currency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountTotals {
    /// Realised P&L.
    pub realized_cash: i64,
    /// Unrealised P&L at last trade prices.
    pub unrealized_cash: i64,
    /// Absolute cost of open positions.
    pub position_cost_cash: i64,
    /// Notional reserved by working buy orders.
    pub open_buy_cash: i64,
    /// Working orders.
    pub open_orders: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_then_partial_close_realises_proportionally() {
        let mut p = Position::default();
        p.apply_fill(Side::Buy, 10, 100);
        p.apply_fill(Side::Buy, 10, 110);
        assert_eq!((p.net_qty, p.open_cost), (20, 2100));
        assert_eq!(p.apply_fill(Side::Sell, 5, 120), 5 * 120 - 525);
        assert_eq!((p.net_qty, p.open_cost), (15, 1575));
        assert_eq!(p.unrealized(100), 1500 - 1575);
    }

    #[test]
    fn flip_long_to_short_realises_then_opens_at_trade_price() {
        let mut p = Position::default();
        p.apply_fill(Side::Buy, 10, 100);
        let pnl = p.apply_fill(Side::Sell, 15, 90);
        assert_eq!(pnl, -100);
        assert_eq!((p.net_qty, p.open_cost), (-5, -450));
        let pnl = p.apply_fill(Side::Buy, 5, 80);
        assert_eq!(pnl, 50);
        assert_eq!(
            p,
            Position {
                net_qty: 0,
                open_cost: 0,
                realized: -50,
                bought_qty: 15,
                sold_qty: 15
            }
        );
    }

    /// The textbook form of `apply_fill` (one path for every case, i128 share of the cost).
    fn apply_reference(p: &mut Position, side: Side, qty: Lots, price: Ticks) -> i64 {
        let q = qty as i64;
        let signed = side.sign() * q;
        match side {
            Side::Buy => p.bought_qty += qty,
            Side::Sell => p.sold_qty += qty,
        }
        if p.net_qty == 0 || p.net_qty.signum() == signed.signum() {
            p.net_qty += signed;
            p.open_cost += signed * price;
            return 0;
        }
        let closing = q.min(p.net_qty.abs());
        let removed = if closing == p.net_qty.abs() {
            p.open_cost
        } else {
            ((p.open_cost as i128 * closing as i128) / p.net_qty.abs() as i128) as i64
        };
        let pnl = p.net_qty.signum() * (closing * price) - removed;
        p.realized += pnl;
        p.open_cost -= removed;
        p.net_qty += signed.signum() * closing;
        let opening = q - closing;
        p.net_qty += signed.signum() * opening;
        p.open_cost += signed.signum() * opening * price;
        pnl
    }

    #[test]
    fn apply_fill_matches_the_textbook_form() {
        let (mut p, mut r) = (Position::default(), Position::default());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let side = if x & 1 == 0 { Side::Buy } else { Side::Sell };
            // Small and large quantities and prices, zero included; large ones take the
            // i128 share of the cost.
            let big = i % 1000 == 0;
            let qty = (x >> 8) % if big { 1 << 31 } else { 40 };
            let price = 1 + ((x >> 40) % if big { 1 << 31 } else { 300 }) as i64;
            assert_eq!(
                p.apply_fill(side, qty, price),
                apply_reference(&mut r, side, qty, price)
            );
            assert_eq!(p, r, "after fill {i}");
            if big {
                (p, r) = (Position::default(), Position::default());
            }
        }
    }

    #[test]
    fn rounding_never_loses_ticks() {
        let mut p = Position::default();
        p.apply_fill(Side::Buy, 3, 100);
        p.apply_fill(Side::Buy, 0, 0);
        p.apply_fill(Side::Buy, 1, 101);
        // 4 @ 100.25; close 1, 1, 2: totals must match cash flows exactly.
        for q in [1, 1, 2] {
            p.apply_fill(Side::Sell, q, 103);
        }
        assert_eq!(p.net_qty, 0);
        assert_eq!(p.open_cost, 0);
        assert_eq!(p.realized, 4 * 103 - 401);
    }
}

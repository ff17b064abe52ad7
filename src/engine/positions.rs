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
    pub fn apply_fill(&mut self, side: Side, qty: Lots, price: Ticks) -> i64 {
        let q = qty as i64;
        let signed = side.sign() * q;
        match side {
            Side::Buy => self.bought_qty += qty,
            Side::Sell => self.sold_qty += qty,
        }
        if self.net_qty == 0 || self.net_qty.signum() == signed.signum() {
            self.net_qty += signed;
            self.open_cost += signed * price;
            return 0;
        }
        // Reducing (and maybe flipping): close min(|net|, q) at `price`.
        let closing = q.min(self.net_qty.abs());
        let removed_cost = if closing == self.net_qty.abs() {
            self.open_cost
        } else {
            // Proportional share of the cost basis; the remainder stays in open_cost.
            ((self.open_cost as i128 * closing as i128) / self.net_qty.abs() as i128) as i64
        };
        // Long closes by selling: proceeds - cost. Short closes by buying: cost - outlay.
        let pnl = self.net_qty.signum() * (closing * price) - removed_cost;
        self.realized += pnl;
        self.open_cost -= removed_cost;
        self.net_qty += signed.signum() * closing;
        let opening = q - closing;
        if opening > 0 {
            self.net_qty += signed.signum() * opening;
            self.open_cost += signed.signum() * opening * price;
        }
        pnl
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

//! Pre-trade risk: per-account limits and the exposure they are checked
//! against (working orders, open buy notional, position cost). Each limit has
//! its own reject reason. Reservations are taken when an order is accepted and
//! released exactly as it fills, is cancelled or expires.

use crate::engine::config::AccountSpec;
use crate::engine::event::RejectReason;
use crate::engine::positions::Position;
use crate::engine::types::{Lots, Side, StpMode, Ticks};

/// Account-wide risk state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountState {
    pub blocked: bool,
    pub stp: StpMode,
    pub max_open_orders: u32,
    pub max_order_notional_cash: i64,
    pub credit_limit_cash: i64,
    pub open_orders: u32,
    pub open_buy_cash: i64,
    pub position_cost_cash: i64,
}

/// Risk and position state of one account in one instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcctInst {
    pub max_order_lots: Lots,
    pub max_position_lots: Lots,
    pub open_buy_lots: Lots,
    pub open_sell_lots: Lots,
    pub pos: Position,
}

impl AcctInst {
    pub(crate) fn new(spec: &AccountSpec) -> AcctInst {
        AcctInst {
            max_order_lots: spec.max_order_lots,
            max_position_lots: spec.max_position_lots,
            open_buy_lots: 0,
            open_sell_lots: 0,
            pos: Position::default(),
        }
    }
}

/// A risk rejection: reason, offending value, limit.
pub(crate) type RiskReject = (RejectReason, i64, i64);

/// What is being asked for: an order's new shape and, for a replace, what it held before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exposure {
    pub side: Side,
    /// Order quantity (for max_order_qty / notional).
    pub qty: Lots,
    /// Quantity that will be working (reserved).
    pub leaves: Lots,
    /// Price for notional and credit.
    pub risk_price: Ticks,
    /// Leaves already reserved by this order (replace), else 0.
    pub old_leaves: Lots,
    /// Risk price of the existing reservation.
    pub old_risk_price: Ticks,
    /// A new order counts against max_open_orders; a replace does not.
    pub new_order: bool,
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Runs every pre-trade limit in a fixed order; the first violation wins.
pub(crate) fn check(
    acct: &AccountState,
    ai: &AcctInst,
    e: &Exposure,
    cash_per_tick_lot: i64,
) -> Result<(), RiskReject> {
    if e.qty > ai.max_order_lots {
        return Err((
            RejectReason::MaxOrderQty,
            e.qty as i64,
            ai.max_order_lots as i64,
        ));
    }
    let notional = e.qty as i128 * e.risk_price as i128 * cash_per_tick_lot as i128;
    if notional > acct.max_order_notional_cash as i128 {
        return Err((
            RejectReason::MaxOrderNotional,
            clamp(notional),
            acct.max_order_notional_cash,
        ));
    }
    if e.new_order && acct.open_orders >= acct.max_open_orders {
        return Err((
            RejectReason::MaxOpenOrders,
            acct.open_orders as i64 + 1,
            acct.max_open_orders as i64,
        ));
    }
    let net = ai.pos.net_qty as i128;
    let (open_same, sign) = match e.side {
        Side::Buy => (ai.open_buy_lots, 1i128),
        Side::Sell => (ai.open_sell_lots, -1i128),
    };
    let open_after = open_same as i128 - e.old_leaves as i128 + e.leaves as i128;
    let worst = sign * net + open_after;
    if worst > ai.max_position_lots as i128 {
        return Err((
            RejectReason::MaxPosition,
            clamp(worst),
            ai.max_position_lots as i64,
        ));
    }
    if e.side == Side::Buy {
        let add = e.leaves as i128 * e.risk_price as i128
            - e.old_leaves as i128 * e.old_risk_price as i128;
        let used = acct.open_buy_cash as i128
            + acct.position_cost_cash as i128
            + add * cash_per_tick_lot as i128;
        if add > 0 && used > acct.credit_limit_cash as i128 {
            return Err((
                RejectReason::CreditLimit,
                clamp(used),
                acct.credit_limit_cash,
            ));
        }
    }
    Ok(())
}

/// Reserves (`sign` = 1) or releases (`sign` = -1) `lots` of a working order.
#[inline]
pub(crate) fn reserve(
    acct: &mut AccountState,
    ai: &mut AcctInst,
    side: Side,
    lots: Lots,
    risk_price: Ticks,
    cash_per_tick_lot: i64,
    sign: i64,
) {
    match side {
        Side::Buy => {
            ai.open_buy_lots = ai.open_buy_lots.wrapping_add_signed(sign * lots as i64);
            let cash = (lots as i64)
                .saturating_mul(risk_price)
                .saturating_mul(cash_per_tick_lot);
            acct.open_buy_cash = acct.open_buy_cash.saturating_add(sign * cash);
        }
        Side::Sell => {
            ai.open_sell_lots = ai.open_sell_lots.wrapping_add_signed(sign * lots as i64);
        }
    }
}

//! Events: everything the engine reports. Each order event carries an
//! `OrderInfo` with what a FIX ExecutionReport needs, except Trade, which names its two
//! orders by id: their state after the fill is their last full report (Accepted,
//! Replaced, Triggered) plus the trades since (`OrderStates` keeps that for a consumer).
//! Events are plain data (no heap), so pushing them into the caller's Vec does not allocate.

use std::collections::HashMap;

use crate::engine::types::{
    AccountId, InstrumentId, Lots, OrdType, OrderId, Owner, Side, Ticks, Tif, TradeId,
};

/// State of an order after the event that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderInfo {
    /// Engine order id (0 for an order that was rejected before it existed).
    pub order_id: OrderId,
    /// Caller reference of the order's latest accepted request.
    pub client_ref: u64,
    /// Owner (session) id.
    pub owner: Owner,
    /// Account.
    pub account: AccountId,
    /// Instrument.
    pub instrument: InstrumentId,
    /// Side.
    pub side: Side,
    /// Order type as entered.
    pub ord_type: OrdType,
    /// Time in force.
    pub tif: Tif,
    /// Limit price, ticks (0 if none).
    pub price: Ticks,
    /// Stop price, ticks (0 if none).
    pub stop_price: Ticks,
    /// Order quantity, lots.
    pub qty: Lots,
    /// Filled so far, lots.
    pub cum_qty: Lots,
    /// Still working, lots (0 once done).
    pub leaves_qty: Lots,
    /// Sum of fill price x qty, ticks x lots: avg price = cum_notional / cum_qty.
    pub cum_notional: i64,
}

impl OrderInfo {
    /// The order after a fill of `qty` lots at `price` (as the engine books it).
    pub fn after_fill(&self, qty: Lots, price: Ticks) -> OrderInfo {
        OrderInfo {
            cum_qty: self.cum_qty + qty,
            leaves_qty: self.qty - (self.cum_qty + qty),
            cum_notional: self.cum_notional + qty as i64 * price,
            ..*self
        }
    }

    /// Average fill price in ticks (0.0 if nothing filled).
    pub fn avg_price_ticks(&self) -> f64 {
        if self.cum_qty == 0 {
            0.0
        } else {
            self.cum_notional as f64 / self.cum_qty as f64
        }
    }
}

/// The last full state of every working order, kept from the events, for consumers that
/// want a Trade's orders in full (a journal dump, tests). Orders are forgotten once done.
/// Not used by the engine (it allocates).
#[derive(Debug, Clone, Default)]
pub struct OrderStates {
    orders: HashMap<OrderId, OrderInfo>,
}

impl OrderStates {
    /// A working order's last known state.
    pub fn get(&self, order_id: OrderId) -> Option<&OrderInfo> {
        self.orders.get(&order_id)
    }

    /// A known order's state after a fill of `qty` lots at `price` (not recorded: `update`
    /// does that).
    pub fn after_fill(&self, order_id: OrderId, qty: Lots, price: Ticks) -> Option<OrderInfo> {
        self.orders.get(&order_id).map(|o| o.after_fill(qty, price))
    }

    /// Working orders known.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// True when no working order is known.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// Takes one event into account (call it after reading the event, in event order).
    pub fn update(&mut self, ev: &Event) {
        match *ev {
            Event::Accepted { order }
            | Event::Replaced { order, .. }
            | Event::Triggered { order } => {
                if order.leaves_qty > 0 {
                    self.orders.insert(order.order_id, order);
                } else {
                    self.orders.remove(&order.order_id);
                }
            }
            Event::Trade {
                price,
                qty,
                maker_order_id,
                taker_order_id,
                ..
            } => {
                for id in [maker_order_id, taker_order_id] {
                    if let Some(o) = self.orders.get_mut(&id) {
                        *o = o.after_fill(qty, price);
                        if o.leaves_qty == 0 {
                            self.orders.remove(&id);
                        }
                    }
                }
            }
            Event::Cancelled { order, .. } | Event::Expired { order } => {
                self.orders.remove(&order.order_id);
            }
            _ => {}
        }
    }
}

/// Why an order was rejected; each risk limit has its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No such instrument.
    UnknownInstrument,
    /// No such account.
    UnknownAccount,
    /// Quantity zero or not representable.
    InvalidQuantity,
    /// Price missing, not positive, or inconsistent with the order type.
    InvalidPrice,
    /// Combination of type, TIF and instructions not supported.
    InvalidOrder,
    /// GTD expiry already passed.
    AlreadyExpired,
    /// The instrument is halted.
    InstrumentHalted,
    /// Account blocked by the kill switch.
    AccountBlocked,
    /// Quantity above the account's max_order_qty.
    MaxOrderQty,
    /// Price x quantity above the account's max_order_notional.
    MaxOrderNotional,
    /// Price outside the instrument's price band.
    PriceBand,
    /// The account already has max_open_orders working orders.
    MaxOpenOrders,
    /// Open buy notional + position cost would exceed the credit limit.
    CreditLimit,
    /// Position plus open orders would exceed max_position.
    MaxPosition,
    /// Post-only order would take liquidity.
    WouldTakeLiquidity,
    /// The engine holds its maximum number of orders.
    EngineFull,
}

impl RejectReason {
    /// Short human text.
    pub fn text(self) -> &'static str {
        match self {
            RejectReason::UnknownInstrument => "unknown instrument",
            RejectReason::UnknownAccount => "unknown account",
            RejectReason::InvalidQuantity => "invalid quantity",
            RejectReason::InvalidPrice => "invalid price",
            RejectReason::InvalidOrder => "unsupported order type / time in force combination",
            RejectReason::AlreadyExpired => "expire time already passed",
            RejectReason::InstrumentHalted => "instrument halted",
            RejectReason::AccountBlocked => "account blocked (kill switch)",
            RejectReason::MaxOrderQty => "order quantity exceeds max order quantity",
            RejectReason::MaxOrderNotional => "order notional exceeds max order notional",
            RejectReason::PriceBand => "price outside the price band",
            RejectReason::MaxOpenOrders => "too many open orders",
            RejectReason::CreditLimit => "credit limit exceeded",
            RejectReason::MaxPosition => "position limit exceeded",
            RejectReason::WouldTakeLiquidity => "post-only order would take liquidity",
            RejectReason::EngineFull => "engine order capacity reached",
        }
    }
}

/// Why an order left the book without trading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// Cancel request.
    User,
    /// IOC (or market) remainder after matching.
    IocRemainder,
    /// FOK that could not fill completely.
    FokUnfilled,
    /// Self-trade prevention.
    SelfTrade,
    /// Mass cancel request.
    MassCancel,
    /// Account blocked with cancel_open.
    KillSwitch,
    /// Market order found no (more) liquidity.
    MarketNoLiquidity,
    /// Market order stopped at the edge of the price band.
    PriceBand,
}

/// Why a cancel or replace request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelRejectReason {
    /// No working order with that id for that account.
    UnknownOrder,
    /// Replace to a quantity at or below the filled quantity.
    QtyBelowFilled,
    /// Instrument halted (replace only).
    InstrumentHalted,
    /// Replace fields invalid for the order type.
    InvalidReplace,
    /// The replaced order would fail a risk check.
    Risk(RejectReason),
}

/// Something that happened; pushed by `Engine::apply` into the caller's Vec in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new order was accepted (it may trade in the events that follow).
    Accepted {
        /// The order.
        order: OrderInfo,
    },
    /// A new order was refused; `order.order_id` is 0.
    Rejected {
        /// The order as requested.
        order: OrderInfo,
        /// Why.
        reason: RejectReason,
        /// The offending value (units of the limit), 0 if not applicable.
        value: i64,
        /// The limit it broke, 0 if not applicable.
        limit: i64,
    },
    /// A trade between a resting maker and an aggressing taker.
    Trade {
        /// Trade id.
        trade_id: TradeId,
        /// Instrument.
        instrument: InstrumentId,
        /// Trade price (the maker's price), ticks.
        price: Ticks,
        /// Trade quantity, lots.
        qty: Lots,
        /// Side of the taker.
        aggressor: Side,
        /// The maker (liquidity provider); its side is the opposite of `aggressor`.
        maker_order_id: OrderId,
        /// The taker (liquidity remover).
        taker_order_id: OrderId,
    },
    /// An order left the book unfilled (remainder).
    Cancelled {
        /// The order (leaves_qty 0).
        order: OrderInfo,
        /// Why.
        reason: CancelReason,
        /// Reference of the request that caused it (0 if unsolicited).
        request_ref: u64,
    },
    /// An order was changed.
    Replaced {
        /// The order after the change (client_ref = the replace request's).
        order: OrderInfo,
        /// The order's client_ref before the change.
        orig_client_ref: u64,
    },
    /// A cancel request was refused.
    CancelRejected {
        /// Requesting owner.
        owner: Owner,
        /// Order id requested.
        order_id: OrderId,
        /// Reference of the request.
        request_ref: u64,
        /// Why.
        reason: CancelRejectReason,
    },
    /// A replace request was refused.
    ReplaceRejected {
        /// Requesting owner.
        owner: Owner,
        /// Order id requested.
        order_id: OrderId,
        /// Reference of the request.
        request_ref: u64,
        /// Why.
        reason: CancelRejectReason,
    },
    /// An order expired (Day at end of day, GTD at its expire time).
    Expired {
        /// The order (leaves_qty 0).
        order: OrderInfo,
    },
    /// A stop order was triggered and now works as market / limit.
    Triggered {
        /// The order.
        order: OrderInfo,
    },
    /// Mass cancel done.
    MassCancelDone {
        /// Requesting owner.
        owner: Owner,
        /// Reference of the request.
        request_ref: u64,
        /// How many orders were cancelled.
        cancelled: u32,
    },
    /// Aggregate of one visible price level after a command (qty 0 = level gone).
    BookLevelChanged {
        /// Instrument.
        instrument: InstrumentId,
        /// Side.
        side: Side,
        /// Level price, ticks.
        price: Ticks,
        /// Displayed quantity, lots.
        qty: Lots,
        /// Orders at the level.
        order_count: u32,
    },
    /// Instrument halted or resumed.
    InstrumentStatus {
        /// Instrument.
        instrument: InstrumentId,
        /// True while halted.
        halted: bool,
    },
    /// Account blocked or unblocked.
    AccountStatus {
        /// Account.
        account: AccountId,
        /// True while blocked.
        blocked: bool,
    },
    /// The reference price of an instrument's band changed.
    ReferencePrice {
        /// Instrument.
        instrument: InstrumentId,
        /// New reference, ticks.
        price: Ticks,
    },
}

impl Event {
    /// Human text for a reject, with the value and the limit it broke.
    /// Money amounts (notional, credit) are shown in currency units; others as integers
    /// (quantities and positions in lots, prices in ticks).
    pub fn reject_text(reason: RejectReason, value: i64, limit: i64) -> String {
        let money = |v: i64| rust_decimal::Decimal::new(v, 6).normalize().to_string();
        match reason {
            _ if value == 0 && limit == 0 => reason.text().to_string(),
            RejectReason::MaxOrderNotional | RejectReason::CreditLimit => {
                format!(
                    "{} ({} > limit {})",
                    reason.text(),
                    money(value),
                    money(limit)
                )
            }
            RejectReason::PriceBand => {
                format!(
                    "{} (price {} ticks, band edge {})",
                    reason.text(),
                    value,
                    limit
                )
            }
            _ => format!("{} ({} > limit {})", reason.text(), value, limit),
        }
    }
}

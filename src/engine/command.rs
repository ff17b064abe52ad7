//! Commands: the only way to change engine state. Each carries the caller's
//! timestamp, so applying the same commands always yields the same events.

use crate::engine::types::{
    AccountId, InstrumentId, Lots, OrdType, OrderId, Owner, Side, Ticks, Tif,
};

/// A new order request (FIX NewOrderSingle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    /// Caller's timestamp, nanoseconds.
    pub ts_ns: u64,
    /// Opaque owner (session) id echoed in events.
    pub owner: Owner,
    /// Trading account.
    pub account: AccountId,
    /// Instrument.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: Side,
    /// Limit, market, stop, stop-limit.
    pub ord_type: OrdType,
    /// Limit price in ticks (Limit, StopLimit; ignored otherwise).
    pub price: Ticks,
    /// Trigger price in ticks (Stop, StopLimit; ignored otherwise).
    pub stop_price: Ticks,
    /// Order quantity in lots.
    pub qty: Lots,
    /// Time in force.
    pub tif: Tif,
    /// Expiry time for `Tif::Gtd`, nanoseconds.
    pub expire_ts_ns: u64,
    /// Reject (never trade as aggressor) if it would take liquidity.
    pub post_only: bool,
    /// Iceberg display quantity in lots (0 = fully displayed).
    pub max_floor: Lots,
    /// Opaque caller reference echoed in events (e.g. a ClOrdID handle).
    pub client_ref: u64,
}

/// An input to `Engine::apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Enter an order.
    NewOrder(NewOrder),
    /// Cancel an order of `account`.
    Cancel {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Requesting owner.
        owner: Owner,
        /// The account the order must belong to.
        account: AccountId,
        /// Order to cancel.
        order_id: OrderId,
        /// Reference of the cancel request.
        client_ref: u64,
    },
    /// Change quantity and/or prices of an order of `account`.
    Replace {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Requesting owner.
        owner: Owner,
        /// The account the order must belong to.
        account: AccountId,
        /// Order to change.
        order_id: OrderId,
        /// Reference of the replace request; becomes the order's `client_ref`.
        client_ref: u64,
        /// New total order quantity (filled quantity included).
        new_qty: Lots,
        /// New limit price (Limit, StopLimit).
        new_price: Ticks,
        /// New stop price (untriggered Stop, StopLimit).
        new_stop_price: Ticks,
    },
    /// Cancel every working order matching all the given filters.
    MassCancel {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Requesting owner.
        owner: Owner,
        /// Reference of the request.
        client_ref: u64,
        /// Only this account's orders.
        account: Option<AccountId>,
        /// Only this instrument.
        instrument: Option<InstrumentId>,
        /// Only this side.
        side: Option<Side>,
    },
    /// Stop trading an instrument: new orders and replaces rejected, cancels allowed.
    Halt {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Instrument.
        instrument: InstrumentId,
    },
    /// Resume trading an instrument.
    Resume {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Instrument.
        instrument: InstrumentId,
    },
    /// Kill switch: block (or unblock) an account, optionally cancelling its orders.
    SetAccountBlocked {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Account.
        account: AccountId,
        /// New state.
        blocked: bool,
        /// Cancel all its working orders too.
        cancel_open: bool,
    },
    /// Set the reference price of the instrument's price band.
    SetReferencePrice {
        /// Timestamp, ns.
        ts_ns: u64,
        /// Instrument.
        instrument: InstrumentId,
        /// New reference, ticks (> 0).
        price: Ticks,
    },
    /// End of the trading day: Day orders expire.
    EndOfDay {
        /// Timestamp, ns.
        ts_ns: u64,
    },
    /// Time passes: GTD orders whose expiry is reached expire (every command does this too).
    Tick {
        /// Timestamp, ns.
        ts_ns: u64,
    },
}

impl Command {
    /// The caller's timestamp carried by every command.
    pub fn ts_ns(&self) -> u64 {
        match *self {
            Command::NewOrder(ref o) => o.ts_ns,
            Command::Cancel { ts_ns, .. }
            | Command::Replace { ts_ns, .. }
            | Command::MassCancel { ts_ns, .. }
            | Command::Halt { ts_ns, .. }
            | Command::Resume { ts_ns, .. }
            | Command::SetAccountBlocked { ts_ns, .. }
            | Command::SetReferencePrice { ts_ns, .. }
            | Command::EndOfDay { ts_ns }
            | Command::Tick { ts_ns } => ts_ns,
        }
    }
}

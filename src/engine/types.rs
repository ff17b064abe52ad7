//! Small value types shared by every engine module: ids, sides, order types,
//! time in force. Integers only; decimals never cross this line.

/// Engine-assigned order id: `(generation << 32) | slab slot`, never 0.
pub type OrderId = u64;
/// Engine-assigned trade id, counting from 1.
pub type TradeId = u64;
/// Index of an instrument in `VenueConfig::instruments`.
pub type InstrumentId = u32;
/// Index of an account in `VenueConfig::accounts`.
pub type AccountId = u32;
/// Opaque id chosen by the caller (e.g. a FIX session), echoed in events.
pub type Owner = u32;
/// A price in instrument ticks.
pub type Ticks = i64;
/// A quantity in instrument lots.
pub type Lots = u64;

/// Side of an order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    /// Bid.
    Buy,
    /// Offer.
    Sell,
}

impl Side {
    /// The side this one trades against.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    /// +1 for buy, -1 for sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Order type (FIX OrdType 1, 2, 3, 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OrdType {
    /// Trades at its price or better, remainder rests (per TIF).
    Limit,
    /// Trades at any price inside the price band; remainder cancelled.
    Market,
    /// Becomes a market order when the last trade reaches the stop price.
    Stop,
    /// Becomes a limit order when the last trade reaches the stop price.
    StopLimit,
}

impl OrdType {
    /// True for the types that carry a limit price.
    pub fn has_price(self) -> bool {
        matches!(self, OrdType::Limit | OrdType::StopLimit)
    }
    /// True for the types that wait for a trigger.
    pub fn is_stop(self) -> bool {
        matches!(self, OrdType::Stop | OrdType::StopLimit)
    }
}

/// Time in force (FIX TimeInForce 0, 1, 3, 4, 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Tif {
    /// Expires at `EndOfDay`.
    Day,
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel: the unfilled remainder is cancelled.
    Ioc,
    /// Fill or kill: trades its whole quantity at once or nothing.
    Fok,
    /// Good till date: expires when time reaches `expire_ts_ns`.
    Gtd,
}

impl Tif {
    /// True if the order may rest on the book.
    pub fn rests(self) -> bool {
        matches!(self, Tif::Day | Tif::Gtc | Tif::Gtd)
    }
}

/// Self-trade prevention mode of an account.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum StpMode {
    /// Orders of the same account may trade with each other.
    Allow,
    /// The resting order is cancelled; the aggressor goes on matching.
    CancelResting,
    /// The aggressor's remainder is cancelled; the resting order stays.
    #[default]
    CancelAggressor,
    /// Both are cancelled.
    CancelBoth,
}

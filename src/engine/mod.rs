//! The exchange core: order books, matching, risk, positions, journal and replay.
//! Pure and deterministic; knows nothing of FIX, sockets or clocks. Feed it
//! `Command`s through `Engine::apply` and read back `Event`s; persist the
//! commands with `journal` and rebuild the state with `snapshot` + replay.

pub mod book;
pub mod codec;
pub mod command;
pub mod config;
pub mod event;
pub mod journal;
pub mod matching;
pub(crate) mod order;
pub mod positions;
pub(crate) mod risk;
pub mod snapshot;
pub mod types;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use book::{Book, LevelView};
pub use command::{Command, NewOrder};
pub use config::{ConfigError, ConvertError, InstrumentSpec, VenueConfig};
pub use event::{CancelReason, CancelRejectReason, Event, OrderInfo, OrderStates, RejectReason};
pub use matching::Engine;
pub use positions::{AccountTotals, Position, PositionView};
pub use types::{
    AccountId, InstrumentId, Lots, OrdType, OrderId, Owner, Side, StpMode, Ticks, Tif, TradeId,
};

//! The glue between FIX sessions and the exchange core: order entry, market
//! data, drop copy, and the acceptance-test echo application.

pub mod echo;
pub mod input;
pub mod market_data;
pub mod order_entry;

//! fixgw: a FIX 4.4 exchange gateway.
//!
//! Layers (dependencies point down): `venue` glues `session` (FIX session
//! protocol, over `fix`, the wire format) to `engine` (the exchange core,
//! which knows nothing of FIX).

pub mod admin;
pub mod arena;
pub mod cli;
pub mod cpu_latency;
pub mod engine;
pub mod fix;
pub mod gateway;
pub mod load;
pub mod logging;
pub mod seq_window;
pub mod session;
pub mod sled_open;
pub mod venue;

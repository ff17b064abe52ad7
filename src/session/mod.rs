//! The FIX session protocol: a pure state machine (`Session`), its settings
//! (`.cfg` files), the message store (sled) and the tokio acceptor that
//! drives it. Everything above the session layer sees only validated,
//! in-sequence application messages.

pub mod acceptor;
pub mod application;
pub mod batch_store;
pub mod bucket;
pub mod config;
pub mod heartbeat;
pub mod log_backend;
pub mod logon;
pub mod out_queue;
pub mod outbound;
pub mod resend;
pub mod schedule;
pub mod settings;
pub mod state;
pub mod store;
pub mod tls;

pub use application::{Application, BusinessReject, OutboundMessage};
pub use config::{SessionConfig, SessionId, SessionRole};
pub use state::{Action, Session, Status};
pub use store::{MemoryStore, MessageStore, StoreError};

#[cfg(test)]
mod tests;

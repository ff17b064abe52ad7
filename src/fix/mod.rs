//! The FIX wire: tag=value parsing, encoding, the framing codec, UTC
//! timestamps and the data dictionary with message validation.
//!
//! Nothing here knows about sessions, sequence numbers or sockets.

pub mod codec;
pub mod dictionary;
pub mod encoder;
pub mod message;
pub mod parser;
pub mod redact;
pub mod reject;
pub mod tags;
pub mod time;
pub mod validate;

pub use codec::{FixCodec, FrameError};
pub use encoder::Encoder;
pub use message::{FieldSpan, Message};
pub use parser::ParseError;
pub use reject::{Rejection, SessionRejectReason};

/// The FIX field delimiter.
pub const SOH: u8 = 0x01;

/// BeginString of every message this gateway speaks.
pub const BEGIN_STRING_FIX44: &[u8] = b"FIX.4.4";
pub use dictionary::{Dictionary, DictionaryError, FieldType};
pub use validate::{canonical_body, validate, ValidationOptions};

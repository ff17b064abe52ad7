//! What the session layer hands to the business layer, and what it takes back.

use bytes::Bytes;

use crate::fix::Message;

use super::config::SessionId;

/// An outbound application message before the session stamps its header.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// MsgType (35).
    pub msg_type: Bytes,
    /// Header fields other than 8, 9, 35, 34, 49, 52, 56 (e.g. 97, 115, 128).
    pub header: Vec<(i32, Bytes)>,
    /// Body fields, already encoded as `tag=value<SOH>` in wire order.
    pub body: Bytes,
}

/// A BusinessMessageReject (35=j) the application asks the session to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessReject {
    /// BusinessRejectReason (380).
    pub reason: u32,
    /// Text (58).
    pub text: String,
    /// BusinessRejectRefID (379), e.g. the ClOrdID.
    pub ref_id: Option<String>,
}

impl BusinessReject {
    /// 380=3 "Unsupported Message Type", QuickFIX's answer to a valid message
    /// type the application does not handle.
    pub fn unsupported_message_type() -> BusinessReject {
        BusinessReject {
            reason: 3,
            text: "Unsupported Message Type".to_string(),
            ref_id: None,
        }
    }
}

/// The business side of a session. Called synchronously by the state machine,
/// in sequence order, so responses interleave correctly with session messages.
pub trait Application {
    /// The session completed a Logon.
    fn on_logon(&mut self, _session: &SessionId) {}
    /// The session logged out or its connection dropped.
    fn on_logout(&mut self, _session: &SessionId) {}
    /// An in-sequence, validated application message. Push any immediate
    /// responses to `out`, or return a BusinessMessageReject. (QuickFIX's
    /// name for this callback.)
    #[allow(clippy::wrong_self_convention)]
    fn from_app(
        &mut self,
        session: &SessionId,
        msg: &Message,
        out: &mut Vec<OutboundMessage>,
    ) -> Result<(), BusinessReject>;
}

/// An application that refuses every application message (35=j, 380=3).
#[derive(Debug, Default)]
pub struct RejectAll;

impl Application for RejectAll {
    fn from_app(
        &mut self,
        _session: &SessionId,
        _msg: &Message,
        _out: &mut Vec<OutboundMessage>,
    ) -> Result<(), BusinessReject> {
        Err(BusinessReject::unsupported_message_type())
    }
}

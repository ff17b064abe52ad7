//! The settings of one FIX session as the state machine uses them, with
//! QuickFIX's defaults. Parsed from `.cfg` files by `settings`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::fix::dictionary::Dictionary;
use crate::fix::time::Precision;
use crate::fix::validate::ValidationOptions;

use super::schedule::Schedule;

/// Default bound on messages queued towards one connection.
pub const DEFAULT_MAX_OUTBOUND_QUEUE: usize = 65_536;

/// What a session is for (our own `SessionRole=` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SessionRole {
    /// Sends orders, receives its ExecutionReports and subscribed market data.
    #[default]
    OrderEntry,
    /// Subscribes to market data only.
    MarketData,
    /// Receives copies of ExecutionReports; sends only admin messages.
    DropCopy,
    /// QuickFIX's acceptance-test application (echo), for the conformance suite.
    Echo,
}

impl SessionRole {
    /// Parses the `SessionRole=` value.
    pub fn parse(s: &str) -> Option<SessionRole> {
        match s {
            "order-entry" => Some(SessionRole::OrderEntry),
            "market-data" => Some(SessionRole::MarketData),
            "drop-copy" => Some(SessionRole::DropCopy),
            "echo" => Some(SessionRole::Echo),
            _ => None,
        }
    }

    /// The `SessionRole=` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionRole::OrderEntry => "order-entry",
            SessionRole::MarketData => "market-data",
            SessionRole::DropCopy => "drop-copy",
            SessionRole::Echo => "echo",
        }
    }
}

/// Identity of a session: BeginString and the CompIDs seen from our side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    /// BeginString, e.g. `FIX.4.4`.
    pub begin_string: String,
    /// Our CompID (SenderCompID on what we send).
    pub sender_comp_id: String,
    /// The counterparty's CompID.
    pub target_comp_id: String,
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}->{}",
            self.begin_string, self.sender_comp_id, self.target_comp_id
        )
    }
}

/// Everything the session state machine needs to know about one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Who we are and who they are.
    pub id: SessionId,
    /// Role of the session.
    pub role: SessionRole,
    /// HeartBtInt in seconds if configured (acceptors normally adopt the client's).
    pub heart_bt_int: Option<u32>,
    /// Reset sequence numbers on every received Logon.
    pub reset_on_logon: bool,
    /// Reset sequence numbers after a Logout exchange.
    pub reset_on_logout: bool,
    /// Reset sequence numbers when the connection drops.
    pub reset_on_disconnect: bool,
    /// Reject messages whose SendingTime is too far from our clock.
    pub check_latency: bool,
    /// Largest tolerated |now - SendingTime| in seconds.
    pub max_latency_secs: i64,
    /// Seconds to wait for a Logon on a new connection.
    pub logon_timeout_secs: u32,
    /// Seconds to wait for the Logout reply to a Logout we sent.
    pub logout_timeout_secs: u32,
    /// Store application messages for resend (N: gap-fill everything).
    pub persist_messages: bool,
    /// Send a new ResendRequest for every too-high message.
    pub send_redundant_resend_requests: bool,
    /// Put NextExpectedMsgSeqNum (789) in our Logon reply.
    pub send_next_expected_msg_seq_num: bool,
    /// Check the CompIDs of every message.
    pub check_comp_id: bool,
    /// Dictionary validation switches.
    pub validation: ValidationOptions,
    /// Validate messages against the dictionary at all (UseDataDictionary).
    pub use_data_dictionary: bool,
    /// The dictionary (shared between sessions that name the same file).
    pub dictionary: Option<Arc<Dictionary>>,
    /// Path the dictionary was loaded from (for messages).
    pub dictionary_path: Option<PathBuf>,
    /// Precision of SendingTime / OrigSendingTime we write.
    pub timestamp_precision: Precision,
    /// Daily session window.
    pub schedule: Schedule,
    /// Cancel the session's open orders when it disconnects.
    pub cancel_on_disconnect: bool,
    /// Username (553) the Logon must carry, if set.
    pub username: Option<String>,
    /// Password (554) the Logon must carry, if set.
    pub password: Option<String>,
    /// Put TrdMatchID (880) on fills (QuickFIX's stock FIX44.xml lacks it).
    pub send_trd_match_id: bool,
    /// Put RptSeq (83) on market data (QuickFIX's stock FIX44.xml lacks it).
    pub send_rpt_seq: bool,
    /// Drop copy: source sessions (client CompIDs) in scope; empty = all.
    pub drop_copy_sessions: Vec<String>,
    /// Drop copy: accounts in scope; empty = all.
    pub drop_copy_accounts: Vec<String>,
    /// Most messages queued towards the connection; a consumer that falls
    /// further behind is logged out ("slow consumer").
    pub max_outbound_queue: usize,
    /// Application-message rate limit, if any.
    pub throttle: Option<Throttle>,
    /// Addresses the session may connect from (AllowedRemoteAddresses); empty: any.
    pub allowed_remote_addresses: Vec<std::net::IpAddr>,
    /// Directory of the session's message and event logs (QuickFIX's
    /// FileLogPath); None: no message log.
    pub file_log_path: Option<PathBuf>,
    /// Tags masked in the message log besides Password and NewPassword
    /// (LogRedactTags).
    pub log_redact_tags: Vec<u32>,
}

/// A per-session application-message rate limit (token bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Sustained messages per second.
    pub rate: f64,
    /// Messages allowed in a burst above the rate.
    pub burst: f64,
    /// What happens to a message over the limit.
    pub action: ThrottleAction,
}

/// What the gateway does with a message over the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleAction {
    /// BusinessMessageReject (35=j) saying so; the message is not processed.
    Reject,
    /// The same reject, then Logout with a reason and disconnect.
    Logout,
}

impl SessionConfig {
    /// A session with QuickFIX's defaults and no dictionary.
    pub fn new(begin_string: &str, sender: &str, target: &str) -> SessionConfig {
        SessionConfig {
            id: SessionId {
                begin_string: begin_string.to_string(),
                sender_comp_id: sender.to_string(),
                target_comp_id: target.to_string(),
            },
            role: SessionRole::default(),
            heart_bt_int: None,
            reset_on_logon: false,
            reset_on_logout: false,
            reset_on_disconnect: false,
            check_latency: true,
            max_latency_secs: 120,
            logon_timeout_secs: 10,
            logout_timeout_secs: 2,
            persist_messages: true,
            send_redundant_resend_requests: false,
            send_next_expected_msg_seq_num: false,
            check_comp_id: true,
            validation: ValidationOptions::default(),
            use_data_dictionary: true,
            dictionary: None,
            dictionary_path: None,
            timestamp_precision: Precision::Millis,
            schedule: Schedule::always(),
            cancel_on_disconnect: false,
            username: None,
            password: None,
            send_trd_match_id: false,
            send_rpt_seq: true,
            drop_copy_sessions: Vec::new(),
            drop_copy_accounts: Vec::new(),
            max_outbound_queue: DEFAULT_MAX_OUTBOUND_QUEUE,
            throttle: None,
            allowed_remote_addresses: Vec::new(),
            file_log_path: None,
            log_redact_tags: Vec::new(),
        }
    }
}

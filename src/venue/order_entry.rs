//! Order entry over FIX: the deterministic translation between FIX 4.4
//! application messages (D, F, G, H, q) and the exchange core, and back from
//! engine events to ExecutionReports, OrderCancelRejects and
//! OrderMassCancelReports for the sessions that own the orders.
//!
//! `Venue::apply` is a pure function of its state and one `VenueInput`: it
//! never reads a clock or does I/O, and every id it hands out (OrderID,
//! ExecID) comes from its own counters, so replaying the journaled inputs
//! rebuilds the same state and the same bytes.

mod checkpoint;
#[cfg(test)]
mod md_tests;
pub(super) mod report;
mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

use compact_str::CompactString;
use rust_decimal::Decimal;

use crate::engine::config::{ConfigError, ConvertError, InstrumentSpec, VenueConfig};
use crate::engine::{
    AccountId, CancelReason, CancelRejectReason, Command, Engine, Event, InstrumentId, Lots,
    NewOrder, OrdType, OrderId, OrderInfo, Owner, RejectReason, Side, Ticks, Tif,
};
use crate::fix::time::{parse_utc, UtcNanos};
use crate::fix::{tags, Message};
use crate::session::{BusinessReject, OutboundMessage, SessionConfig, SessionRole};

use report::{CancelReject, ExecReport, LastFill, MassCancelReport, Val};
use table::{EngineIds, OrderTable};

use super::market_data::MarketData;

/// A map keyed by client-chosen strings (foldhash, randomly seeded).
type StrMap<V> = HashMap<String, V, foldhash::fast::RandomState>;
/// The same for ClOrdIDs, short ones stored inline in the map.
type ClOrdIdMap<V> = HashMap<CompactString, V, foldhash::fast::RandomState>;

pub use super::input::{DecodeError, VenueInput};
pub use checkpoint::CheckpointError;

/// Most FIX sessions one venue serves.
pub const MAX_SESSIONS: usize = 4096;
/// Finished orders remembered for status requests and late cancels; the oldest are forgotten first.
pub const DONE_ORDERS_KEPT: usize = 100_000;
/// Order numbers the venue's order table indexes directly (`table`): an
/// order still remembered when this many more have been entered moves to
/// the table's spill map. A finished order is forgotten once
/// `DONE_ORDERS_KEPT` more have finished, so mostly long-working orders
/// get that far.
const ORDER_WINDOW: usize = 4 * DONE_ORDERS_KEPT;
/// Longest ClOrdID accepted (bounds the memory of every remembered order).
pub const MAX_CL_ORD_ID_BYTES: usize = 64;

/// One configured FIX session as the venue sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    /// The client's CompID (TargetCompID of our session).
    pub comp_id: Arc<str>,
    /// What the session may do.
    pub role: SessionRole,
    /// Cancel the session's open orders when its connection drops.
    pub cancel_on_disconnect: bool,
    /// Put TrdMatchID (880) on fills.
    pub trd_match_id: bool,
    /// Put RptSeq (83) on market data.
    pub rpt_seq: bool,
    /// Drop copy scope: source sessions (client CompIDs); empty = all.
    pub drop_copy_sessions: Vec<String>,
    /// Drop copy scope: accounts; empty = all.
    pub drop_copy_accounts: Vec<String>,
}

impl SessionInfo {
    /// A session with the venue's defaults: no cancel-on-disconnect,
    /// TrdMatchID and RptSeq on, drop copy (if that is its role) of everything.
    pub fn new(comp_id: &str, role: SessionRole) -> SessionInfo {
        SessionInfo {
            comp_id: comp_id.into(),
            role,
            cancel_on_disconnect: false,
            trd_match_id: true,
            rpt_seq: true,
            drop_copy_sessions: Vec::new(),
            drop_copy_accounts: Vec::new(),
        }
    }

    /// The venue's view of a session's settings.
    pub fn from_config(cfg: &SessionConfig) -> SessionInfo {
        SessionInfo {
            comp_id: cfg.id.target_comp_id.as_str().into(),
            role: cfg.role,
            cancel_on_disconnect: cfg.cancel_on_disconnect,
            trd_match_id: cfg.send_trd_match_id,
            rpt_seq: cfg.send_rpt_seq,
            drop_copy_sessions: cfg.drop_copy_sessions.clone(),
            drop_copy_accounts: cfg.drop_copy_accounts.clone(),
        }
    }
}

/// Why a venue could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VenueError {
    /// The venue config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Two sessions share a CompID.
    #[error("session {0} is configured twice")]
    DuplicateSession(String),
    /// More sessions than `MAX_SESSIONS`.
    #[error("{0} sessions configured; at most {MAX_SESSIONS} are supported")]
    TooManySessions(usize),
    /// A drop copy scope names a session or account that does not exist.
    #[error("drop-copy session {session}: {what} {name} is not configured")]
    UnknownDropCopyScope {
        /// The drop-copy session.
        session: String,
        /// "session" or "account".
        what: &'static str,
        /// The unknown name.
        name: String,
    },
}

/// A listed instrument with its conversion data.
#[derive(Debug, Clone)]
struct Instrument {
    symbol: String,
    spec: InstrumentSpec,
}

impl Instrument {
    fn price(&self, ticks: Ticks) -> Decimal {
        self.spec.ticks_to_price(ticks)
    }
    fn qty(&self, lots: Lots) -> Decimal {
        Decimal::from(lots)
            .checked_mul(self.spec.lot_size)
            .unwrap_or(Decimal::MAX)
    }
    /// Average price of `cum_notional` (ticks x lots) over `cum_qty` lots, at most 8 decimals.
    fn avg_px(&self, cum_notional: i64, cum_qty: Lots) -> Decimal {
        if cum_qty == 0 {
            return Decimal::ZERO;
        }
        Decimal::from(cum_notional)
            .checked_mul(self.spec.tick_size)
            .and_then(|n| n.checked_div(Decimal::from(cum_qty)))
            .map_or(Decimal::ZERO, |d| d.round_dp(8))
    }
}

/// Per-session state.
#[derive(Debug, Clone)]
struct SessionState {
    info: SessionInfo,
    account: Option<AccountId>,
    /// Every ClOrdID of a remembered order -> its OrderID.
    cl_ord_ids: ClOrdIdMap<u64>,
    /// OrderIDs of the session's working orders, in entry order.
    live: BTreeSet<u64>,
    /// Drop-copy sessions that receive a copy of this session's reports.
    copies_to: Vec<Owner>,
}

/// OrdStatus (39) values the venue reports.
mod status {
    pub const NEW: u8 = b'0';
    pub const PARTIALLY_FILLED: u8 = b'1';
    pub const FILLED: u8 = b'2';
    pub const CANCELED: u8 = b'4';
    pub const REJECTED: u8 = b'8';
    pub const EXPIRED: u8 = b'C';
}

/// ExecType (150) values the venue reports.
mod exec_type {
    pub const NEW: u8 = b'0';
    pub const CANCELED: u8 = b'4';
    pub const REPLACED: u8 = b'5';
    pub const REJECTED: u8 = b'8';
    pub const EXPIRED: u8 = b'C';
    pub const TRADE: u8 = b'F';
    pub const ORDER_STATUS: u8 = b'I';
    pub const TRIGGERED: u8 = b'L';
}

/// OrdRejReason (103) values the venue reports.
mod rej {
    pub const BROKER_OPTION: u32 = 0;
    pub const UNKNOWN_SYMBOL: u32 = 1;
    pub const EXCHANGE_CLOSED: u32 = 2;
    pub const EXCEEDS_LIMIT: u32 = 3;
    pub const TOO_LATE: u32 = 4;
    pub const DUPLICATE_ORDER: u32 = 6;
    pub const UNSUPPORTED: u32 = 11;
    pub const INCORRECT_QTY: u32 = 13;
    pub const UNKNOWN_ACCOUNT: u32 = 15;
    pub const OTHER: u32 = 99;

    /// FIX's name of an OrdRejReason.
    pub fn name(code: u32) -> &'static str {
        match code {
            BROKER_OPTION => "broker option",
            UNKNOWN_SYMBOL => "unknown symbol",
            EXCHANGE_CLOSED => "exchange closed",
            EXCEEDS_LIMIT => "order exceeds limit",
            TOO_LATE => "too late to enter",
            DUPLICATE_ORDER => "duplicate order",
            UNSUPPORTED => "unsupported order characteristic",
            INCORRECT_QTY => "incorrect quantity",
            UNKNOWN_ACCOUNT => "unknown account",
            _ => "other",
        }
    }
}

/// Reject kinds counted for metrics.
const REJECT_ORDER: &str = "order";
const REJECT_CANCEL: &str = "cancel";

/// CxlRejReason (102) values the venue reports.
mod cxl {
    pub const TOO_LATE: u32 = 0;
    pub const UNKNOWN_ORDER: u32 = 1;
    pub const BROKER_OPTION: u32 = 2;
    pub const DUPLICATE_CL_ORD_ID: u32 = 6;
    pub const OTHER: u32 = 99;

    /// FIX's name of a CxlRejReason.
    pub fn name(code: u32) -> &'static str {
        match code {
            TOO_LATE => "too late to cancel",
            UNKNOWN_ORDER => "unknown order",
            BROKER_OPTION => "broker option",
            DUPLICATE_CL_ORD_ID => "duplicate ClOrdID",
            _ => "other",
        }
    }
}

/// What the venue remembers of an order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OrderRec {
    engine_id: OrderId,
    owner: Owner,
    cl_ord_id: CompactString,
    orig_cl_ord_id: Option<CompactString>,
    /// The earlier ClOrdIDs that still name this order in its session's index
    /// (the current one is `cl_ord_id`).
    aliases: Vec<CompactString>,
    instrument: InstrumentId,
    side: Side,
    ord_type: OrdType,
    tif: Tif,
    price: Ticks,
    stop_price: Ticks,
    qty: Lots,
    cum_qty: Lots,
    leaves_qty: Lots,
    cum_notional: i64,
    status: u8,
    expire_ts_ns: u64,
    max_floor: Lots,
    post_only: bool,
}

impl OrderRec {
    fn is_live(&self) -> bool {
        matches!(self.status, status::NEW | status::PARTIALLY_FILLED)
    }

    fn update(&mut self, o: &OrderInfo) {
        self.qty = o.qty;
        self.price = o.price;
        self.stop_price = o.stop_price;
        self.cum_qty = o.cum_qty;
        self.leaves_qty = o.leaves_qty;
        self.cum_notional = o.cum_notional;
        self.status = working_status(o.cum_qty);
    }

    /// A fill of `qty` lots at `price` (as the engine books it).
    fn fill(&mut self, qty: Lots, price: Ticks) {
        self.cum_qty += qty;
        self.leaves_qty = self.qty - self.cum_qty;
        self.cum_notional += qty as i64 * price;
        self.status = working_status(self.cum_qty);
    }
}

fn working_status(cum_qty: Lots) -> u8 {
    if cum_qty == 0 {
        status::NEW
    } else {
        status::PARTIALLY_FILLED
    }
}

/// The request whose engine command is being applied: tells events apart
/// (a cancel we asked for vs. an unsolicited one) and supplies the ClOrdIDs.
#[derive(Debug, Clone, Copy)]
enum Ctx<'a> {
    /// Ticks and anything else not tied to a client request.
    Unsolicited,
    /// A NewOrderSingle.
    New {
        cl_ord_id: &'a str,
        req_ref: u64,
        /// The request as entered: the engine does not echo expiry, display and post-only.
        order: NewOrder,
    },
    /// An OrderCancelRequest (`response_to` b'1') or OrderCancelReplaceRequest (b'2').
    Amend {
        cl_ord_id: &'a str,
        orig_cl_ord_id: &'a str,
        req_ref: u64,
        response_to: u8,
    },
    /// An OrderMassCancelRequest.
    MassCancel {
        cl_ord_id: &'a str,
        req_ref: u64,
        request_type: &'a [u8],
        symbol: Option<&'a [u8]>,
        side: Option<&'a [u8]>,
    },
    /// Cancel-on-disconnect of a session.
    Disconnect,
}

/// A new order parsed and converted, ready for the engine.
struct ParsedOrder<'a> {
    cl_ord_id: &'a str,
    order: NewOrder,
}

/// A refusal before the engine: OrdRejReason and Text.
type Refusal = (u32, String);

/// The exchange core plus order-entry state: FIX in, FIX out.
#[derive(Debug, Clone)]
pub struct Venue {
    engine: Engine,
    instruments: Vec<Instrument>,
    symbols: StrMap<InstrumentId>,
    account_names: Vec<String>,
    sessions: Vec<SessionState>,
    session_ids: StrMap<Owner>,
    /// Remembered orders by venue order number (OrderID).
    orders: OrderTable<OrderRec>,
    /// Venue order number of each working order, by engine OrderId.
    by_engine_id: EngineIds,
    /// Finished orders, oldest first, forgotten beyond `DONE_ORDERS_KEPT`.
    done: VecDeque<u64>,
    next_order_id: u64,
    next_exec_id: u64,
    next_request_ref: u64,
    /// Engine events of the last `apply`.
    events: Vec<Event>,
    /// Rejects sent, by (kind, OrdRejReason / CxlRejReason), for metrics.
    rejects: BTreeMap<(&'static str, u32), u64>,
    /// Market data: subscriptions, feeds and their RptSeq.
    md: MarketData,
    /// Replaying the journal at start-up: state changes exactly as live, but
    /// ExecutionReports are not rendered (nobody would receive them).
    replaying: bool,
    /// The configuration it runs under ([`Venue::config_text`]).
    config: Arc<str>,
}

/// Why a journaled input could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The record is damaged.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A configuration the journal switches to does not take over the
    /// venue's state.
    #[error("the journal's configuration switch: {0}")]
    Configure(String),
}

impl Venue {
    /// Builds a venue over a fresh engine. `sessions`: every configured FIX
    /// session; accounts come from the venue config's session -> account mapping.
    pub fn new(cfg: &VenueConfig, sessions: &[SessionInfo]) -> Result<Venue, VenueError> {
        let engine = Engine::new(cfg)?;
        if sessions.len() > MAX_SESSIONS {
            return Err(VenueError::TooManySessions(sessions.len()));
        }
        let mut instruments = Vec::with_capacity(cfg.instruments.len());
        let mut symbols = StrMap::default();
        for (i, ins) in cfg.instruments.iter().enumerate() {
            instruments.push(Instrument {
                symbol: ins.symbol.clone(),
                spec: InstrumentSpec::from_config(ins)?,
            });
            symbols.insert(ins.symbol.clone(), i as InstrumentId);
        }
        // Sized up front: growing a map of 100 000s of orders stalls the
        // core for milliseconds (rehash, page faults, unmapping the old one).
        // Each order-entry session's ClOrdID index too: one session may
        // send them all. Untouched capacity costs address space only.
        let capacity = cfg.engine.order_capacity as usize;
        let mut states = Vec::with_capacity(sessions.len());
        let mut session_ids = StrMap::default();
        for (i, s) in sessions.iter().enumerate() {
            if session_ids
                .insert(s.comp_id.to_string(), i as Owner)
                .is_some()
            {
                return Err(VenueError::DuplicateSession(s.comp_id.to_string()));
            }
            states.push(SessionState {
                info: s.clone(),
                account: cfg.account_for_session(&s.comp_id),
                cl_ord_ids: ClOrdIdMap::with_capacity_and_hasher(
                    if s.role == SessionRole::OrderEntry {
                        capacity
                    } else {
                        0
                    },
                    Default::default(),
                ),
                live: BTreeSet::new(),
                copies_to: Vec::new(),
            });
        }
        for (dc, s) in sessions.iter().enumerate() {
            if s.role != SessionRole::DropCopy {
                continue;
            }
            let unknown = |what, name: &String| VenueError::UnknownDropCopyScope {
                session: s.comp_id.to_string(),
                what,
                name: name.clone(),
            };
            let mut sources = Vec::new();
            for name in &s.drop_copy_sessions {
                sources.push(
                    *session_ids
                        .get(name)
                        .ok_or_else(|| unknown("session", name))?,
                );
            }
            let mut accounts = Vec::new();
            for name in &s.drop_copy_accounts {
                accounts.push(
                    cfg.account_id(name)
                        .ok_or_else(|| unknown("account", name))?,
                );
            }
            for (src, state) in states.iter_mut().enumerate() {
                let by_session = sources.is_empty() || sources.contains(&(src as Owner));
                let by_account =
                    accounts.is_empty() || state.account.is_some_and(|a| accounts.contains(&a));
                if state.info.role == SessionRole::OrderEntry && by_session && by_account {
                    state.copies_to.push(dc as Owner);
                }
            }
        }
        Ok(Venue {
            engine,
            symbols,
            account_names: cfg.accounts.iter().map(|a| a.name.clone()).collect(),
            sessions: states,
            session_ids,
            // The window spans the numbers from the oldest remembered order
            // on: the finished ones kept, plus the working ones, plus the
            // forgotten numbers between them.
            orders: OrderTable::with_capacity(ORDER_WINDOW, capacity + DONE_ORDERS_KEPT),
            by_engine_id: EngineIds::with_capacity(capacity),
            done: VecDeque::new(),
            next_order_id: 1,
            next_exec_id: 1,
            next_request_ref: 1,
            events: Vec::with_capacity(64),
            rejects: BTreeMap::new(),
            md: MarketData::new(
                instruments
                    .iter()
                    .map(|i| (i.symbol.clone(), i.spec.clone()))
                    .collect(),
            ),
            instruments,
            replaying: false,
            // Plain data: serialising it cannot fail.
            config: serde_json::to_string(&(cfg, sessions))
                .expect("the configuration serialises")
                .into(),
        })
    }

    /// Sends an ExecutionReport to the session that owns it and a copy
    /// (797=Y, OnBehalfOfCompID = the owner) to each drop-copy session in scope.
    fn send_report(
        &self,
        owner: Owner,
        er: &ExecReport<'_>,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        if self.replaying {
            return;
        }
        let sess = &self.sessions[owner as usize];
        out.push((
            sess.info.comp_id.clone(),
            er.render(sess.info.trd_match_id, false),
        ));
        for &dc in &sess.copies_to {
            let to = &self.sessions[dc as usize].info;
            let mut m = er.render(to.trd_match_id, true);
            m.header.push(on_behalf_of(&sess.info.comp_id));
            out.push((to.comp_id.clone(), m));
        }
    }

    /// Sends an OrderCancelReject to its session and a copy (OnBehalfOfCompID
    /// = the owner; FIX 4.4 has no CopyMsgIndicator in 35=9) to each drop copy in scope.
    fn send_cancel_reject(
        &self,
        owner: Owner,
        m: OutboundMessage,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let sess = &self.sessions[owner as usize];
        out.push((sess.info.comp_id.clone(), m.clone()));
        for &dc in &sess.copies_to {
            let mut copy = m.clone();
            copy.header.push(on_behalf_of(&sess.info.comp_id));
            out.push((self.sessions[dc as usize].info.comp_id.clone(), copy));
        }
    }

    /// Queued market data to its subscribers; call once per batch (after the
    /// batch's inputs, before committing).
    pub fn flush_market_data(&mut self, out: &mut Vec<(Arc<str>, OutboundMessage)>) {
        let sessions = &self.sessions;
        self.md.flush(|o| &sessions[o as usize].info.comp_id, out);
    }

    /// Start-up replay mode: while on, ExecutionReports are not rendered
    /// (every state change, id and counter advances exactly as live).
    pub fn set_replaying(&mut self, on: bool) {
        self.replaying = on;
    }

    /// Drops queued market data (journal replay: nobody to send it to).
    pub fn discard_market_data(&mut self) {
        self.md.discard_pending();
    }

    /// Sessions whose state assumes a live connection (market-data
    /// subscriptions, or working orders to cancel on disconnect). After a
    /// restart none is connected: the gateway journals a SessionDown for each.
    pub fn sessions_assumed_up(&self) -> Vec<String> {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(o, s)| {
                self.md.has_subscriptions(*o as Owner)
                    || (s.info.cancel_on_disconnect && !s.live.is_empty())
            })
            .map(|(_, s)| s.info.comp_id.to_string())
            .collect()
    }

    fn count_reject(&mut self, kind: &'static str, code: u32) {
        *self.rejects.entry((kind, code)).or_default() += 1;
    }

    /// Rejects sent so far: (kind, code, name of the code, count); kind is
    /// `order` (ExecType=8, OrdRejReason) or `cancel` (35=9, CxlRejReason).
    pub fn reject_counts(&self) -> Vec<(&'static str, u32, &'static str, u64)> {
        self.rejects
            .iter()
            .map(|(&(kind, code), &n)| {
                let name = if kind == REJECT_ORDER {
                    rej::name(code)
                } else {
                    cxl::name(code)
                };
                (kind, code, name, n)
            })
            .collect()
    }

    /// Live market-data subscriptions.
    pub fn md_subscriptions(&self) -> usize {
        self.md.subscription_count()
    }

    /// The exchange core.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine events produced by the last `apply`, in order.
    pub fn last_events(&self) -> &[Event] {
        &self.events
    }

    /// Working orders the venue tracks for a session (by client CompID).
    pub fn live_order_count(&self, comp_id: &str) -> usize {
        self.session_ids
            .get(comp_id)
            .map_or(0, |&o| self.sessions[o as usize].live.len())
    }

    /// Replays one journaled input (the venue in replay mode, see
    /// [`Venue::set_replaying`]): what it would send goes to `scratch` and
    /// is dropped, market data with it. Start-up's replay and the
    /// checkpoint thread's shadow venue both go through here.
    pub fn replay_journaled(
        &mut self,
        raw: &[u8],
        scratch: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) -> Result<(), ReplayError> {
        let (input, _) = VenueInput::decode(raw)?;
        if let VenueInput::Configure { config, .. } = &input {
            // Live, only a configuration that takes over is journaled.
            return self.reconfigure(config).map_err(ReplayError::Configure);
        }
        scratch.clear();
        let _ = self.apply(&input, scratch);
        self.discard_market_data();
        Ok(())
    }

    /// The venue a replay of journaled inputs starts from, when the state
    /// it starts from (none: the whole journal; or a checkpoint written
    /// before checkpoints kept theirs) does not say which configuration it
    /// was under: a fresh one under the configuration of the first
    /// `Configure` among `inputs` (journaled by the first start of a fixgw
    /// that journals them, which replayed the inputs before it under that
    /// configuration), else this fresh venue.
    pub fn for_journal<'a>(
        self,
        mut inputs: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Venue, ReplayError> {
        match inputs.find(|raw| VenueInput::is_configure(raw)) {
            Some(raw) => match VenueInput::decode(raw)? {
                (VenueInput::Configure { config, .. }, _) => {
                    self.fresh_under(&config).map_err(ReplayError::Configure)
                }
                _ => Ok(self),
            },
            None => Ok(self),
        }
    }

    /// This fresh venue if it runs under `text`, else a fresh one under it.
    pub(crate) fn fresh_under(self, text: &str) -> Result<Venue, String> {
        if text == self.config_text() {
            Ok(self)
        } else {
            Venue::from_config_text(text)
        }
    }

    /// What the venue's behaviour depends on, as text: the venue
    /// configuration (instruments, accounts with their limits, sessions'
    /// accounts, engine settings) and every session's settings. Journaled
    /// at every start ([`VenueInput::Configure`]) and kept in checkpoints.
    pub fn config_text(&self) -> &str {
        &self.config
    }

    /// The venue configuration and sessions of a [`Venue::config_text`].
    pub fn parse_config_text(text: &str) -> Result<(VenueConfig, Vec<SessionInfo>), String> {
        serde_json::from_str(text).map_err(|e| format!("unreadable configuration: {e}"))
    }

    /// A fresh venue under a configuration from [`Venue::config_text`].
    pub fn from_config_text(text: &str) -> Result<Venue, String> {
        let (cfg, sessions) = Venue::parse_config_text(text)?;
        Venue::new(&cfg, &sessions).map_err(|e| e.to_string())
    }

    /// Runs under another configuration from here on, with the state so
    /// far: the venue is rebuilt under it and takes its own checkpoint
    /// over (which refuses a configuration that lost or changed an
    /// instrument, account or session; limits and session settings may
    /// change freely). The same text again changes nothing.
    pub fn reconfigure(&mut self, text: &str) -> Result<(), String> {
        if text == &*self.config {
            return Ok(());
        }
        // Between batches (a `Configure` comes first in its batch): no
        // market data is pending, which a checkpoint would not keep.
        self.discard_market_data();
        let fresh = Venue::from_config_text(text)?;
        let mut v = fresh
            .restored_onto_own_config(&self.checkpoint())
            .map_err(|e| e.to_string())?;
        v.replaying = self.replaying;
        *self = v;
        Ok(())
    }

    /// Applies one input. Messages to send go to `out` as (client CompID,
    /// message); a BusinessMessageReject for the input's own session is
    /// returned as Err. Deterministic: the same inputs in the same order give
    /// byte-identical outputs, which is how state is rebuilt after a restart.
    pub fn apply(
        &mut self,
        input: &VenueInput,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) -> Result<(), BusinessReject> {
        self.events.clear();
        match input {
            VenueInput::Tick { ts_ns } => {
                let cmd = Command::Tick { ts_ns: *ts_ns };
                self.run(&cmd, Ctx::Unsolicited, *ts_ns, out);
                Ok(())
            }
            VenueInput::SessionDown { session, ts_ns } => {
                self.session_down(session, *ts_ns, out);
                Ok(())
            }
            VenueInput::Operator { action, ts_ns, .. } => self.operator(action, *ts_ns, out),
            VenueInput::Configure { config, .. } => {
                self.reconfigure(config).map_err(|text| BusinessReject {
                    reason: 0,
                    text,
                    ref_id: None,
                })
            }
            VenueInput::Fix {
                session,
                ts_ns,
                raw,
            } => {
                let msg = Message::parse(raw.clone()).map_err(|e| BusinessReject {
                    reason: 0,
                    text: format!("Unparseable message: {e}"),
                    ref_id: None,
                })?;
                self.apply_fix(session, *ts_ns, &msg, out)
            }
        }
    }

    /// Applies an application message already parsed by the session layer:
    /// the same as `apply(&VenueInput::Fix { .. })` for its frame, without
    /// parsing the frame a second time on the live order path.
    pub fn apply_fix(
        &mut self,
        session: &str,
        ts: u64,
        msg: &Message,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) -> Result<(), BusinessReject> {
        self.events.clear();
        self.on_fix(session, ts, msg, out)
    }

    // ------------------------------------------------------------------ inbound

    fn on_fix(
        &mut self,
        session: &str,
        ts: u64,
        msg: &Message,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) -> Result<(), BusinessReject> {
        let Some(&owner) = self.session_ids.get(session) else {
            return Err(BusinessReject {
                reason: 0,
                text: format!("Session {session} is not configured for the venue"),
                ref_id: None,
            });
        };
        let info = &self.sessions[owner as usize].info;
        match (info.role, msg.msg_type()) {
            (SessionRole::OrderEntry | SessionRole::MarketData, b"V") => {
                let mut replies = Vec::new();
                self.md.on_request(owner, info.rpt_seq, msg, &mut replies);
                let comp = &info.comp_id;
                out.extend(replies.into_iter().map(|m| (comp.clone(), m)));
                return Ok(());
            }
            (SessionRole::OrderEntry, _) => {}
            _ => return Err(BusinessReject::unsupported_message_type()),
        }
        match msg.msg_type() {
            b"D" => self.on_new_order(owner, msg, ts, out),
            b"F" => self.on_amend(owner, msg, ts, b'1', out),
            b"G" => self.on_amend(owner, msg, ts, b'2', out),
            b"H" => self.on_status(owner, msg, ts, out),
            b"q" => self.on_mass_cancel(owner, msg, ts, out),
            _ => return Err(BusinessReject::unsupported_message_type()),
        }
        Ok(())
    }

    fn take_request_ref(&mut self) -> u64 {
        let r = self.next_request_ref;
        self.next_request_ref += 1;
        r
    }

    fn on_new_order(
        &mut self,
        owner: Owner,
        msg: &Message,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let req_ref = self.take_request_ref();
        match self.parse_new_order(owner, msg, ts, req_ref) {
            Ok(p) => {
                let ctx = Ctx::New {
                    cl_ord_id: p.cl_ord_id,
                    req_ref,
                    order: p.order,
                };
                self.run(&Command::NewOrder(p.order), ctx, ts, out);
            }
            Err((reason, text)) => self.refuse_new(owner, msg, ts, reason, &text, out),
        }
    }

    /// Validates and converts a NewOrderSingle; a refusal names the field at fault.
    fn parse_new_order<'m>(
        &self,
        owner: Owner,
        msg: &'m Message,
        ts: u64,
        req_ref: u64,
    ) -> Result<ParsedOrder<'m>, Refusal> {
        let sess = &self.sessions[owner as usize];
        let cl_ord_id = cl_ord_id(msg, tags::CL_ORD_ID)?;
        let Some(account) = sess.account else {
            return Err((
                rej::UNKNOWN_ACCOUNT,
                format!("No account is configured for session {}", sess.info.comp_id),
            ));
        };
        if let Some(a) = msg.get(tags::ACCOUNT) {
            if a != self.account_names[account as usize].as_bytes() {
                return Err((
                    rej::UNKNOWN_ACCOUNT,
                    format!(
                        "Account {} is not permitted for this session",
                        String::from_utf8_lossy(a)
                    ),
                ));
            }
        }
        if let Some(&no) = sess.cl_ord_ids.get(cl_ord_id) {
            if self.orders.get(no).is_some_and(OrderRec::is_live) {
                return Err((rej::DUPLICATE_ORDER, "Duplicate order".into()));
            }
        }
        let (instrument, ins) = self.instrument(msg)?;
        let side = parse_side(msg.get(tags::SIDE))
            .ok_or_else(|| (rej::UNSUPPORTED, "Unsupported Side (54)".to_string()))?;
        let ord_type = parse_ord_type(msg.get(tags::ORD_TYPE))
            .ok_or_else(|| (rej::UNSUPPORTED, "Unsupported OrdType (40)".to_string()))?;
        let tif = parse_tif(msg.get(tags::TIME_IN_FORCE))
            .ok_or_else(|| (rej::UNSUPPORTED, "Unsupported TimeInForce (59)".to_string()))?;
        let qty = qty_field(msg, tags::ORDER_QTY, "OrderQty", ins)?
            .ok_or_else(|| (rej::INCORRECT_QTY, "OrderQty (38) is required".to_string()))?;
        let price = if ord_type.has_price() {
            price_field(msg, tags::PRICE, "Price", ins)?
                .ok_or_else(|| (rej::OTHER, "Price (44) is required for this OrdType".into()))?
        } else {
            0
        };
        let stop_price = if ord_type.is_stop() {
            price_field(msg, tags::STOP_PX, "StopPx", ins)?
                .ok_or_else(|| (rej::OTHER, "StopPx (99) is required for stop orders".into()))?
        } else {
            0
        };
        let expire_ts_ns = if tif == Tif::Gtd {
            let t = msg
                .get(tags::EXPIRE_TIME)
                .and_then(parse_utc)
                .ok_or_else(|| {
                    (
                        rej::UNSUPPORTED,
                        "ExpireTime (126) is required for TimeInForce=6 (GTD)".to_string(),
                    )
                })?;
            u64::try_from(t).unwrap_or(0)
        } else {
            0
        };
        let post_only = match msg.get(tags::EXEC_INST) {
            None => false,
            Some(v) => {
                let mut post_only = false;
                for inst in v.split(|&b| b == b' ').filter(|s| !s.is_empty()) {
                    if inst != b"6" {
                        return Err((
                            rej::UNSUPPORTED,
                            format!(
                                "Unsupported ExecInst (18) {}",
                                String::from_utf8_lossy(inst)
                            ),
                        ));
                    }
                    post_only = true;
                }
                post_only
            }
        };
        let max_floor = match msg.get(tags::MAX_FLOOR) {
            None => 0,
            Some(_) => qty_field(msg, tags::MAX_FLOOR, "MaxFloor", ins)?.unwrap_or(0),
        };
        Ok(ParsedOrder {
            cl_ord_id,
            order: NewOrder {
                ts_ns: ts,
                owner,
                account,
                instrument,
                side,
                ord_type,
                price,
                stop_price,
                qty,
                tif,
                expire_ts_ns,
                post_only,
                max_floor,
                client_ref: req_ref,
            },
        })
    }

    /// The instrument named by Symbol (55).
    fn instrument(&self, msg: &Message) -> Result<(InstrumentId, &Instrument), Refusal> {
        let id = msg
            .get_str(tags::SYMBOL)
            .and_then(|s| self.symbols.get(s))
            .copied()
            .ok_or_else(|| (rej::UNKNOWN_SYMBOL, "Unknown symbol".to_string()))?;
        Ok((id, &self.instruments[id as usize]))
    }

    /// Rejects a NewOrderSingle before the engine, echoing what was sent.
    fn refuse_new(
        &mut self,
        owner: Owner,
        msg: &Message,
        ts: u64,
        reason: u32,
        text: &str,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        self.count_reject(REJECT_ORDER, reason);
        let exec_id = self.take_exec_id();
        let sess = &self.sessions[owner as usize];
        let er = ExecReport {
            order_id: None,
            cl_ord_id: msg.get(tags::CL_ORD_ID).unwrap_or_default(),
            orig_cl_ord_id: None,
            exec_id,
            exec_type: exec_type::REJECTED,
            ord_status: status::REJECTED,
            account: sess
                .account
                .map(|a| self.account_names[a as usize].as_bytes()),
            symbol: msg.get(tags::SYMBOL),
            side: msg.get(tags::SIDE),
            ord_type: msg.get(tags::ORD_TYPE),
            tif: msg.get(tags::TIME_IN_FORCE),
            order_qty: msg.get(tags::ORDER_QTY).map(Val::Raw),
            price: msg.get(tags::PRICE).map(Val::Raw),
            stop_px: msg.get(tags::STOP_PX).map(Val::Raw),
            max_floor: None,
            exec_inst: None,
            expire_time: None,
            leaves_qty: Decimal::ZERO,
            cum_qty: Decimal::ZERO,
            avg_px: Decimal::ZERO,
            last: None,
            ord_rej_reason: Some(reason),
            text: Some(text),
            ord_status_req_id: None,
            transact_time: utc(ts),
        };
        self.send_report(owner, &er, out);
    }

    /// OrderCancelRequest (`response_to` b'1') or OrderCancelReplaceRequest (b'2').
    fn on_amend(
        &mut self,
        owner: Owner,
        msg: &Message,
        ts: u64,
        response_to: u8,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let req_ref = self.take_request_ref();
        let cl = msg.get_str(tags::CL_ORD_ID).unwrap_or_default();
        let orig = msg.get_str(tags::ORIG_CL_ORD_ID).unwrap_or_default();
        let ctx = Ctx::Amend {
            cl_ord_id: cl,
            orig_cl_ord_id: orig,
            req_ref,
            response_to,
        };
        let cmd = match self.amend_command(owner, msg, ts, req_ref, response_to) {
            Ok(cmd) => cmd,
            Err((order_no, reason, text)) => {
                return self.cancel_reject(owner, ctx, order_no, reason, &text, ts, out)
            }
        };
        self.run(&cmd, ctx, ts, out);
    }

    /// The engine command for a cancel or replace, or why there is none
    /// (the order it names, CxlRejReason, Text).
    fn amend_command(
        &self,
        owner: Owner,
        msg: &Message,
        ts: u64,
        req_ref: u64,
        response_to: u8,
    ) -> Result<Command, (Option<u64>, u32, String)> {
        let sess = &self.sessions[owner as usize];
        let cl = cl_ord_id(msg, tags::CL_ORD_ID).map_err(|(_, t)| (None, cxl::OTHER, t))?;
        let orig = msg.get_str(tags::ORIG_CL_ORD_ID).unwrap_or_default();
        if let Some(&no) = sess.cl_ord_ids.get(cl) {
            if self.orders.get(no).is_some_and(OrderRec::is_live) {
                return Err((None, cxl::DUPLICATE_CL_ORD_ID, "Duplicate ClOrdID".into()));
            }
        }
        let found = sess
            .cl_ord_ids
            .get(orig)
            .and_then(|no| Some((*no, self.orders.get(*no)?)));
        let (Some((no, rec)), Some(account)) = (found, sess.account) else {
            return Err((None, cxl::UNKNOWN_ORDER, "Unknown order".into()));
        };
        if !rec.is_live() {
            let what = if response_to == b'1' {
                "cancel"
            } else {
                "replace"
            };
            let text = format!("Too late to {what}: order is {}", status_name(rec.status));
            return Err((Some(no), cxl::TOO_LATE, text));
        }
        let other = |t: &str| (Some(no), cxl::OTHER, t.to_string());
        let ins = &self.instruments[rec.instrument as usize];
        if msg.get_str(tags::SYMBOL) != Some(ins.symbol.as_str()) {
            return Err(other("Symbol (55) does not match the order"));
        }
        if parse_side(msg.get(tags::SIDE)) != Some(rec.side) {
            return Err(other("Side (54) does not match the order"));
        }
        if response_to == b'1' {
            return Ok(Command::Cancel {
                ts_ns: ts,
                owner,
                account,
                order_id: rec.engine_id,
                client_ref: req_ref,
            });
        }
        if msg.has(tags::ORD_TYPE) && parse_ord_type(msg.get(tags::ORD_TYPE)) != Some(rec.ord_type)
        {
            return Err(other("OrdType (40) cannot be changed"));
        }
        if msg.has(tags::TIME_IN_FORCE) && parse_tif(msg.get(tags::TIME_IN_FORCE)) != Some(rec.tif)
        {
            return Err(other("TimeInForce (59) cannot be changed"));
        }
        let conv = |(_, t): Refusal| (Some(no), cxl::OTHER, t);
        let new_qty = qty_field(msg, tags::ORDER_QTY, "OrderQty", ins)
            .map_err(conv)?
            .unwrap_or(rec.qty);
        let new_price = if rec.ord_type.has_price() {
            price_field(msg, tags::PRICE, "Price", ins)
                .map_err(conv)?
                .unwrap_or(rec.price)
        } else {
            0
        };
        let new_stop_price = if rec.ord_type.is_stop() {
            price_field(msg, tags::STOP_PX, "StopPx", ins)
                .map_err(conv)?
                .unwrap_or(rec.stop_price)
        } else {
            0
        };
        Ok(Command::Replace {
            ts_ns: ts,
            owner,
            account,
            order_id: rec.engine_id,
            client_ref: req_ref,
            new_qty,
            new_price,
            new_stop_price,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn cancel_reject(
        &mut self,
        owner: Owner,
        ctx: Ctx<'_>,
        order_no: Option<u64>,
        reason: u32,
        text: &str,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        self.count_reject(REJECT_CANCEL, reason);
        let Ctx::Amend {
            cl_ord_id,
            orig_cl_ord_id,
            response_to,
            ..
        } = ctx
        else {
            debug_assert!(false, "cancel reject outside a cancel/replace");
            return;
        };
        let sess = &self.sessions[owner as usize];
        let rec = order_no.and_then(|no| self.orders.get(no));
        let m = CancelReject {
            account: sess
                .account
                .map(|a| self.account_names[a as usize].as_bytes()),
            cl_ord_id: cl_ord_id.as_bytes(),
            order_id: order_no.filter(|_| rec.is_some()),
            ord_status: rec.map_or(status::REJECTED, |r| r.status),
            orig_cl_ord_id: orig_cl_ord_id.as_bytes(),
            text,
            transact_time: utc(ts),
            reason,
            response_to,
        }
        .render();
        self.send_cancel_reject(owner, m, out);
    }

    /// OrderStatusRequest: ExecType=I with the order's current state.
    fn on_status(
        &mut self,
        owner: Owner,
        msg: &Message,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let exec_id = self.take_exec_id();
        let sess = &self.sessions[owner as usize];
        let by_cl = msg
            .get_str(tags::CL_ORD_ID)
            .and_then(|c| sess.cl_ord_ids.get(c))
            .copied();
        let by_id = || {
            msg.get_u64(tags::ORDER_ID)
                .filter(|&no| self.orders.get(no).is_some_and(|r| r.owner == owner))
        };
        let req_id = msg.get(tags::ORD_STATUS_REQ_ID);
        let found = by_cl
            .or_else(by_id)
            .and_then(|no| Some((no, self.orders.get(no)?)));
        let er = match found {
            Some((no, rec)) => {
                let mut er = self.order_report(no, rec, exec_type::ORDER_STATUS, exec_id, ts);
                er.ord_status_req_id = req_id;
                er
            }
            None => ExecReport {
                order_id: None,
                cl_ord_id: msg.get(tags::CL_ORD_ID).unwrap_or_default(),
                orig_cl_ord_id: None,
                exec_id,
                exec_type: exec_type::ORDER_STATUS,
                ord_status: status::REJECTED,
                account: sess
                    .account
                    .map(|a| self.account_names[a as usize].as_bytes()),
                symbol: msg.get(tags::SYMBOL),
                side: msg.get(tags::SIDE),
                ord_type: None,
                tif: None,
                order_qty: None,
                price: None,
                stop_px: None,
                max_floor: None,
                exec_inst: None,
                expire_time: None,
                leaves_qty: Decimal::ZERO,
                cum_qty: Decimal::ZERO,
                avg_px: Decimal::ZERO,
                last: None,
                ord_rej_reason: None,
                text: Some("Unknown order"),
                ord_status_req_id: req_id,
                transact_time: utc(ts),
            },
        };
        self.send_report(owner, &er, out);
    }

    /// OrderMassCancelRequest: by security (530=1) or all orders (530=7) of the session's account.
    fn on_mass_cancel(
        &mut self,
        owner: Owner,
        msg: &Message,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let req_ref = self.take_request_ref();
        let request_type = msg.get(tags::MASS_CANCEL_REQUEST_TYPE).unwrap_or(b"7");
        let ctx = Ctx::MassCancel {
            cl_ord_id: msg.get_str(tags::CL_ORD_ID).unwrap_or_default(),
            req_ref,
            request_type,
            symbol: msg.get(tags::SYMBOL),
            side: msg.get(tags::SIDE),
        };
        let sess = &self.sessions[owner as usize];
        let refuse = |reason: u32, text: &str| (reason, text.to_string());
        let cmd = (|| {
            let account = sess
                .account
                .ok_or_else(|| refuse(99, "No account is configured for this session"))?;
            let instrument = match request_type {
                b"7" => None,
                b"1" => Some(
                    self.instrument(msg)
                        .map_err(|_| refuse(1, "Unknown symbol"))?
                        .0,
                ),
                _ => {
                    return Err(refuse(
                        0,
                        "MassCancelRequestType not supported (use 1 or 7)",
                    ))
                }
            };
            let side = match msg.get(tags::SIDE) {
                None => None,
                v => Some(parse_side(v).ok_or_else(|| refuse(99, "Unsupported Side (54)"))?),
            };
            Ok(Command::MassCancel {
                ts_ns: ts,
                owner,
                client_ref: req_ref,
                account: Some(account),
                instrument,
                side,
            })
        })();
        match cmd {
            Ok(cmd) => self.run(&cmd, ctx, ts, out),
            Err((reason, text)) => {
                self.mass_cancel_report(owner, ctx, None, Some((reason, &text)), ts, out)
            }
        }
    }

    fn mass_cancel_report(
        &mut self,
        owner: Owner,
        ctx: Ctx<'_>,
        cancelled: Option<u32>,
        refused: Option<(u32, &str)>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let Ctx::MassCancel {
            cl_ord_id,
            req_ref,
            request_type,
            symbol,
            side,
        } = ctx
        else {
            debug_assert!(false, "mass cancel report outside a mass cancel");
            return;
        };
        let m = MassCancelReport {
            cl_ord_id: cl_ord_id.as_bytes(),
            report_id: req_ref,
            side,
            symbol,
            text: refused.map(|r| r.1),
            transact_time: utc(ts),
            request_type,
            response: if refused.is_some() {
                b"0"
            } else {
                request_type
            },
            reject_reason: refused.map(|r| r.0),
            total_affected: cancelled,
        }
        .render();
        out.push((self.sessions[owner as usize].info.comp_id.clone(), m));
    }

    /// An operator action: `halt SYMBOL`, `resume SYMBOL`, `kill ACCOUNT`
    /// (block and cancel all its orders), `unblock ACCOUNT`. Session actions
    /// (`logout ...`, `seq ...`) are the core's; the venue only sees them in
    /// the journal.
    fn operator(
        &mut self,
        action: &str,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) -> Result<(), BusinessReject> {
        let refuse = |text: String| BusinessReject {
            reason: 0,
            text,
            ref_id: None,
        };
        let mut words = action.split_whitespace();
        let (verb, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let cmd = match verb {
            "halt" | "resume" => {
                let instrument = *self
                    .symbols
                    .get(name)
                    .ok_or_else(|| refuse(format!("unknown symbol {name}")))?;
                if verb == "halt" {
                    Command::Halt {
                        ts_ns: ts,
                        instrument,
                    }
                } else {
                    Command::Resume {
                        ts_ns: ts,
                        instrument,
                    }
                }
            }
            "kill" | "unblock" => {
                let account = self
                    .account_names
                    .iter()
                    .position(|a| a == name)
                    .ok_or_else(|| refuse(format!("unknown account {name}")))?;
                Command::SetAccountBlocked {
                    ts_ns: ts,
                    account: account as AccountId,
                    blocked: verb == "kill",
                    cancel_open: verb == "kill",
                }
            }
            "logout" | "seq" => return Ok(()),
            _ => return Err(refuse(format!("unknown operator action {action:?}"))),
        };
        self.run(&cmd, Ctx::Unsolicited, ts, out);
        Ok(())
    }

    /// Whether an instrument is halted (by symbol).
    pub fn is_halted(&self, symbol: &str) -> Option<bool> {
        self.symbols.get(symbol).map(|&i| self.engine.is_halted(i))
    }

    /// Listed symbols, in instrument order.
    pub fn symbol_names(&self) -> impl Iterator<Item = &str> {
        self.instruments.iter().map(|i| i.symbol.as_str())
    }

    /// Instrument id and conversion of a symbol (admin queries).
    pub fn instrument_spec(&self, symbol: &str) -> Option<(InstrumentId, &InstrumentSpec)> {
        let &id = self.symbols.get(symbol)?;
        Some((id, &self.instruments[id as usize].spec))
    }

    /// Account names, in account-id order.
    pub fn account_list(&self) -> &[String] {
        &self.account_names
    }

    /// Cancel-on-disconnect: cancels the session's working orders, oldest first.
    fn session_down(&mut self, session: &str, ts: u64, out: &mut Vec<(Arc<str>, OutboundMessage)>) {
        let Some(&owner) = self.session_ids.get(session) else {
            return;
        };
        self.md.session_down(owner);
        let sess = &self.sessions[owner as usize];
        let (Some(account), true) = (sess.account, sess.info.cancel_on_disconnect) else {
            return;
        };
        let live: Vec<u64> = sess.live.iter().copied().collect();
        for no in live {
            let Some(rec) = self.orders.get(no) else {
                continue;
            };
            let cmd = Command::Cancel {
                ts_ns: ts,
                owner,
                account,
                order_id: rec.engine_id,
                client_ref: 0,
            };
            self.run(&cmd, Ctx::Disconnect, ts, out);
        }
    }

    // ------------------------------------------------------------------ engine events

    /// Applies one engine command and turns its events into FIX messages.
    fn run(
        &mut self,
        cmd: &Command,
        ctx: Ctx<'_>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let start = self.events.len();
        self.engine.apply(cmd, &mut self.events);
        self.md.on_events(&self.events[start..]);
        for i in start..self.events.len() {
            let ev = self.events[i];
            self.on_event(&ev, ctx, ts, out);
        }
    }

    fn on_event(
        &mut self,
        ev: &Event,
        ctx: Ctx<'_>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        match *ev {
            Event::Accepted { order } => self.on_accepted(&order, ctx, ts, out),
            Event::Rejected {
                order,
                reason,
                value,
                limit,
            } => self.on_rejected(&order, ctx, reason, value, limit, ts, out),
            Event::Trade {
                trade_id,
                price,
                qty,
                maker_order_id,
                taker_order_id,
                ..
            } => {
                for (id, liquidity) in [(maker_order_id, 1), (taker_order_id, 2)] {
                    self.report_fill(id, (qty, price, trade_id, liquidity), ts, out);
                }
            }
            Event::Cancelled {
                order,
                reason,
                request_ref,
            } => self.on_cancelled(&order, reason, request_ref, ctx, ts, out),
            Event::Replaced { order, .. } => {
                let Ctx::Amend {
                    cl_ord_id,
                    orig_cl_ord_id,
                    ..
                } = ctx
                else {
                    debug_assert!(false, "Replaced outside a replace");
                    return;
                };
                self.rename(&order, cl_ord_id, orig_cl_ord_id);
                self.report(&order, exec_type::REPLACED, None, None, ts, out);
            }
            Event::CancelRejected {
                owner,
                order_id,
                reason,
                ..
            }
            | Event::ReplaceRejected {
                owner,
                order_id,
                reason,
                ..
            } => {
                let (code, text) = cancel_reject_reason(reason);
                let no = self.by_engine_id.get(order_id);
                self.cancel_reject(owner, ctx, no, code, &text, ts, out);
            }
            Event::Expired { order } => {
                let text = if order.tif == Tif::Gtd {
                    "Expired: ExpireTime reached"
                } else {
                    "Expired: end of day"
                };
                self.report(&order, exec_type::EXPIRED, None, Some(text), ts, out);
            }
            Event::Triggered { order } => self.report(
                &order,
                exec_type::TRIGGERED,
                None,
                Some("Stop triggered"),
                ts,
                out,
            ),
            Event::MassCancelDone {
                owner, cancelled, ..
            } => {
                if matches!(ctx, Ctx::MassCancel { .. }) {
                    self.mass_cancel_report(owner, ctx, Some(cancelled), None, ts, out);
                }
            }
            Event::BookLevelChanged { .. }
            | Event::InstrumentStatus { .. }
            | Event::AccountStatus { .. }
            | Event::ReferencePrice { .. } => {}
        }
    }

    fn on_accepted(
        &mut self,
        o: &OrderInfo,
        ctx: Ctx<'_>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let Ctx::New {
            cl_ord_id,
            req_ref,
            order,
        } = ctx
        else {
            debug_assert!(false, "Accepted outside a new order");
            return;
        };
        debug_assert_eq!(o.client_ref, req_ref);
        let no = self.next_order_id;
        self.next_order_id += 1;
        let rec = OrderRec {
            engine_id: o.order_id,
            owner: o.owner,
            cl_ord_id: CompactString::new(cl_ord_id),
            orig_cl_ord_id: None,
            aliases: Vec::new(),
            instrument: o.instrument,
            side: o.side,
            ord_type: o.ord_type,
            tif: o.tif,
            price: o.price,
            stop_price: o.stop_price,
            qty: o.qty,
            cum_qty: o.cum_qty,
            leaves_qty: o.leaves_qty,
            cum_notional: o.cum_notional,
            status: status::NEW,
            expire_ts_ns: order.expire_ts_ns,
            max_floor: if order.max_floor < order.qty {
                order.max_floor
            } else {
                0
            },
            post_only: order.post_only,
        };
        let sess = &mut self.sessions[o.owner as usize];
        sess.cl_ord_ids.insert(CompactString::new(cl_ord_id), no);
        sess.live.insert(no);
        self.by_engine_id.insert(o.order_id, no);
        self.orders.insert(no, rec);
        self.report(o, exec_type::NEW, None, None, ts, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_rejected(
        &mut self,
        o: &OrderInfo,
        ctx: Ctx<'_>,
        reason: RejectReason,
        value: i64,
        limit: i64,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let Ctx::New { cl_ord_id, .. } = ctx else {
            debug_assert!(false, "Rejected outside a new order");
            return;
        };
        self.count_reject(REJECT_ORDER, ord_rej_reason(reason));
        let exec_id = self.take_exec_id();
        let Some(ins) = self.instruments.get(o.instrument as usize) else {
            return;
        };
        let text = self.reject_text(ins, reason, value, limit);
        let er = ExecReport {
            order_id: None,
            cl_ord_id: cl_ord_id.as_bytes(),
            orig_cl_ord_id: None,
            exec_id,
            exec_type: exec_type::REJECTED,
            ord_status: status::REJECTED,
            account: self.account_name(o.account),
            symbol: Some(ins.symbol.as_bytes()),
            side: Some(side_code(o.side)),
            ord_type: Some(ord_type_code(o.ord_type)),
            tif: Some(tif_code(o.tif)),
            order_qty: Some(Val::Dec(ins.qty(o.qty))),
            price: o.ord_type.has_price().then(|| Val::Dec(ins.price(o.price))),
            stop_px: o
                .ord_type
                .is_stop()
                .then(|| Val::Dec(ins.price(o.stop_price))),
            max_floor: None,
            exec_inst: None,
            expire_time: None,
            leaves_qty: Decimal::ZERO,
            cum_qty: Decimal::ZERO,
            avg_px: Decimal::ZERO,
            last: None,
            ord_rej_reason: Some(ord_rej_reason(reason)),
            text: Some(&text),
            ord_status_req_id: None,
            transact_time: utc(ts),
        };
        self.send_report(o.owner, &er, out);
    }

    fn on_cancelled(
        &mut self,
        o: &OrderInfo,
        reason: CancelReason,
        request_ref: u64,
        ctx: Ctx<'_>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let text = match (reason, ctx) {
            (
                CancelReason::User,
                Ctx::Amend {
                    cl_ord_id,
                    orig_cl_ord_id,
                    req_ref,
                    ..
                },
            ) if req_ref == request_ref => {
                self.rename(o, cl_ord_id, orig_cl_ord_id);
                None
            }
            (CancelReason::User, Ctx::Disconnect) => Some("Cancelled on disconnect"),
            (CancelReason::User, _) => None,
            (CancelReason::IocRemainder, _) => Some("IOC remainder cancelled"),
            (CancelReason::FokUnfilled, _) => Some("FOK order could not be filled in full"),
            (CancelReason::SelfTrade, _) => Some("Cancelled by self-trade prevention"),
            (CancelReason::MassCancel, _) => Some("Cancelled by mass cancel"),
            (CancelReason::KillSwitch, _) => Some("Cancelled: account blocked (kill switch)"),
            (CancelReason::MarketNoLiquidity, _) => {
                Some("Market order remainder cancelled: no liquidity")
            }
            (CancelReason::PriceBand, _) => {
                Some("Market order remainder cancelled at the price band")
            }
        };
        self.report(o, exec_type::CANCELED, None, text, ts, out);
    }

    /// Gives an order the ClOrdID of an accepted cancel or replace request.
    fn rename(&mut self, o: &OrderInfo, cl_ord_id: &str, orig_cl_ord_id: &str) {
        let Some(no) = self.by_engine_id.get(o.order_id) else {
            return;
        };
        let Some(rec) = self.orders.get_mut(no) else {
            return;
        };
        let prev = std::mem::replace(&mut rec.cl_ord_id, CompactString::new(cl_ord_id));
        rec.orig_cl_ord_id = Some(if orig_cl_ord_id.is_empty() {
            prev.clone()
        } else {
            CompactString::new(orig_cl_ord_id)
        });
        rec.aliases.push(prev);
        self.sessions[rec.owner as usize]
            .cl_ord_ids
            .insert(CompactString::new(cl_ord_id), no);
    }

    /// Updates the remembered order from an engine event and sends its ExecutionReport.
    fn report(
        &mut self,
        o: &OrderInfo,
        exec_type: u8,
        fill: Option<(Lots, Ticks, u64, u8)>,
        text: Option<&str>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        self.report_with(
            o.order_id,
            |rec| rec.update(o),
            exec_type,
            fill,
            text,
            ts,
            out,
        );
    }

    /// A Trade's ExecutionReport for one of its orders (`fill`: qty, price, trade id,
    /// liquidity indicator); the venue's record is the order before the fill.
    fn report_fill(
        &mut self,
        order_id: OrderId,
        fill: (Lots, Ticks, u64, u8),
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let (qty, price, ..) = fill;
        let update = |rec: &mut OrderRec| rec.fill(qty, price);
        self.report_with(
            order_id,
            update,
            exec_type::TRADE,
            Some(fill),
            None,
            ts,
            out,
        );
    }

    /// Updates the record of an order with `update`, then reports it.
    #[allow(clippy::too_many_arguments)]
    fn report_with(
        &mut self,
        order_id: OrderId,
        update: impl FnOnce(&mut OrderRec),
        exec_type: u8,
        fill: Option<(Lots, Ticks, u64, u8)>,
        text: Option<&str>,
        ts: u64,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        let Some(no) = self.by_engine_id.get(order_id) else {
            debug_assert!(false, "event for an order the venue does not know");
            return;
        };
        let exec_id = self.take_exec_id();
        let Some(rec) = self.orders.get_mut(no) else {
            return;
        };
        update(rec);
        let done_status = match exec_type {
            exec_type::CANCELED => Some(status::CANCELED),
            exec_type::EXPIRED => Some(status::EXPIRED),
            _ if rec.leaves_qty == 0 => Some(status::FILLED),
            _ => None,
        };
        if let Some(s) = done_status {
            rec.status = s;
        }
        if self.replaying {
            // The same state changes, no report to build.
            if done_status.is_some() {
                self.finish(no);
            }
            return;
        }
        let Some(rec) = self.orders.get(no) else {
            return;
        };
        let mut er = self.order_report(no, rec, exec_type, exec_id, ts);
        er.text = text;
        // OrigClOrdID answers a client's cancel or replace; those are the only
        // cancels without a Text (unsolicited ones always say why).
        let answers_request = exec_type == exec_type::REPLACED
            || (exec_type == exec_type::CANCELED && text.is_none());
        if !answers_request {
            er.orig_cl_ord_id = None;
        }
        if let Some((qty, px, trade_id, liquidity)) = fill {
            let ins = &self.instruments[rec.instrument as usize];
            er.last = Some(LastFill {
                qty: ins.qty(qty),
                px: ins.price(px),
                trade_id,
                liquidity,
            });
        }
        self.send_report(rec.owner, &er, out);
        if done_status.is_some() {
            self.finish(no);
        }
    }

    /// An ExecutionReport describing a remembered order as it is now.
    fn order_report<'s>(
        &'s self,
        no: u64,
        rec: &'s OrderRec,
        exec_type: u8,
        exec_id: u64,
        ts: u64,
    ) -> ExecReport<'s> {
        let ins = &self.instruments[rec.instrument as usize];
        let account = self.engine_account(rec);
        ExecReport {
            order_id: Some(no),
            cl_ord_id: rec.cl_ord_id.as_bytes(),
            orig_cl_ord_id: rec.orig_cl_ord_id.as_deref().map(str::as_bytes),
            exec_id,
            exec_type,
            ord_status: rec.status,
            account,
            symbol: Some(ins.symbol.as_bytes()),
            side: Some(side_code(rec.side)),
            ord_type: Some(ord_type_code(rec.ord_type)),
            tif: Some(tif_code(rec.tif)),
            order_qty: Some(Val::Dec(ins.qty(rec.qty))),
            price: rec
                .ord_type
                .has_price()
                .then(|| Val::Dec(ins.price(rec.price))),
            stop_px: rec
                .ord_type
                .is_stop()
                .then(|| Val::Dec(ins.price(rec.stop_price))),
            max_floor: (rec.max_floor > 0).then(|| Val::Dec(ins.qty(rec.max_floor))),
            exec_inst: rec.post_only.then_some(&b"6"[..]),
            expire_time: (rec.tif == Tif::Gtd).then(|| utc(rec.expire_ts_ns)),
            leaves_qty: ins.qty(rec.leaves_qty),
            cum_qty: ins.qty(rec.cum_qty),
            avg_px: ins.avg_px(rec.cum_notional, rec.cum_qty),
            last: None,
            ord_rej_reason: None,
            text: None,
            ord_status_req_id: None,
            transact_time: utc(ts),
        }
    }

    fn engine_account(&self, rec: &OrderRec) -> Option<&[u8]> {
        let account = self.sessions.get(rec.owner as usize)?.account?;
        self.account_name(account)
    }

    fn account_name(&self, account: AccountId) -> Option<&[u8]> {
        self.account_names
            .get(account as usize)
            .map(|a| a.as_bytes())
    }

    /// Moves a finished order to the done list, forgetting the oldest beyond the bound.
    fn finish(&mut self, no: u64) {
        let Some(rec) = self.orders.get(no) else {
            return;
        };
        self.by_engine_id.remove(rec.engine_id);
        self.sessions[rec.owner as usize].live.remove(&no);
        self.done.push_back(no);
        while self.done.len() > DONE_ORDERS_KEPT {
            let Some(old) = self.done.pop_front() else {
                break;
            };
            let Some(rec) = self.orders.remove(old) else {
                continue;
            };
            let index = &mut self.sessions[rec.owner as usize].cl_ord_ids;
            for alias in rec.aliases.iter().chain([&rec.cl_ord_id]) {
                if index.get(alias) == Some(&old) {
                    index.remove(alias);
                }
            }
        }
    }

    fn take_exec_id(&mut self) -> u64 {
        let id = self.next_exec_id;
        self.next_exec_id += 1;
        id
    }

    /// Reject text with the offending value and the limit in FIX units.
    fn reject_text(
        &self,
        ins: &Instrument,
        reason: RejectReason,
        value: i64,
        limit: i64,
    ) -> String {
        if value == 0 && limit == 0 {
            return capitalize(reason.text());
        }
        let qty = |v: i64| ins.qty(v.max(0) as Lots).to_string();
        let cash = |v: i64| InstrumentSpec::cash_to_decimal(v).normalize().to_string();
        let (v, l) = match reason {
            RejectReason::MaxOrderQty | RejectReason::MaxPosition => (qty(value), qty(limit)),
            RejectReason::MaxOrderNotional | RejectReason::CreditLimit => {
                (cash(value), cash(limit))
            }
            RejectReason::PriceBand => {
                return format!(
                    "{}: {} is beyond the band edge {}",
                    capitalize(reason.text()),
                    ins.price(value),
                    ins.price(limit)
                )
            }
            _ => (value.to_string(), limit.to_string()),
        };
        format!("{} ({v} > limit {l})", capitalize(reason.text()))
    }
}

/// OnBehalfOfCompID (115) naming the session a copy comes from.
fn on_behalf_of(comp_id: &str) -> (i32, bytes::Bytes) {
    (
        tags::ON_BEHALF_OF_COMP_ID,
        bytes::Bytes::copy_from_slice(comp_id.as_bytes()),
    )
}

/// ClOrdID-like field, bounded in length.
fn cl_ord_id(msg: &Message, tag: i32) -> Result<&str, Refusal> {
    let v = msg.get_str(tag).unwrap_or_default();
    if v.len() > MAX_CL_ORD_ID_BYTES {
        return Err((
            rej::OTHER,
            format!("ClOrdID longer than {MAX_CL_ORD_ID_BYTES} characters"),
        ));
    }
    Ok(v)
}

fn parse_decimal(v: &[u8]) -> Option<Decimal> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty()
        || s.bytes()
            .any(|b| !(b.is_ascii_digit() || b == b'.' || b == b'-'))
    {
        return None;
    }
    Decimal::from_str(s).ok()
}

/// A quantity field in lots (None if absent).
fn qty_field(
    msg: &Message,
    tag: i32,
    name: &str,
    ins: &Instrument,
) -> Result<Option<Lots>, Refusal> {
    let Some(v) = msg.get(tag) else {
        return Ok(None);
    };
    let bad = |what: String| (rej::INCORRECT_QTY, format!("{name} ({tag}) {what}"));
    let d = parse_decimal(v).ok_or_else(|| bad("is not a number".into()))?;
    match ins.spec.qty_to_lots(d) {
        Ok(l) => Ok(Some(l)),
        Err(ConvertError::OffLot) => Err(bad(format!(
            "is not a multiple of the lot size {}",
            ins.spec.lot_size.normalize()
        ))),
        Err(ConvertError::NotPositive) => Err(bad("must be positive".into())),
        Err(_) => Err(bad("is out of range".into())),
    }
}

/// A price field in ticks (None if absent).
fn price_field(
    msg: &Message,
    tag: i32,
    name: &str,
    ins: &Instrument,
) -> Result<Option<Ticks>, Refusal> {
    let Some(v) = msg.get(tag) else {
        return Ok(None);
    };
    let bad = |what: String| (rej::OTHER, format!("{name} ({tag}) {what}"));
    let d = parse_decimal(v).ok_or_else(|| bad("is not a number".into()))?;
    match ins.spec.price_to_ticks(d) {
        Ok(t) if t > 0 => Ok(Some(t)),
        Ok(_) => Err(bad("must be positive".into())),
        Err(ConvertError::OffTick) => Err(bad(format!(
            "is not a multiple of the tick size {}",
            ins.spec.tick_size.normalize()
        ))),
        Err(_) => Err(bad("is out of range".into())),
    }
}

fn parse_side(v: Option<&[u8]>) -> Option<Side> {
    match v? {
        b"1" => Some(Side::Buy),
        b"2" => Some(Side::Sell),
        _ => None,
    }
}

fn parse_ord_type(v: Option<&[u8]>) -> Option<OrdType> {
    match v? {
        b"1" => Some(OrdType::Market),
        b"2" => Some(OrdType::Limit),
        b"3" => Some(OrdType::Stop),
        b"4" => Some(OrdType::StopLimit),
        _ => None,
    }
}

/// TimeInForce (59); absent means Day.
fn parse_tif(v: Option<&[u8]>) -> Option<Tif> {
    match v {
        None | Some(b"0") => Some(Tif::Day),
        Some(b"1") => Some(Tif::Gtc),
        Some(b"3") => Some(Tif::Ioc),
        Some(b"4") => Some(Tif::Fok),
        Some(b"6") => Some(Tif::Gtd),
        Some(_) => None,
    }
}

fn side_code(s: Side) -> &'static [u8] {
    match s {
        Side::Buy => b"1",
        Side::Sell => b"2",
    }
}

fn ord_type_code(t: OrdType) -> &'static [u8] {
    match t {
        OrdType::Market => b"1",
        OrdType::Limit => b"2",
        OrdType::Stop => b"3",
        OrdType::StopLimit => b"4",
    }
}

fn tif_code(t: Tif) -> &'static [u8] {
    match t {
        Tif::Day => b"0",
        Tif::Gtc => b"1",
        Tif::Ioc => b"3",
        Tif::Fok => b"4",
        Tif::Gtd => b"6",
    }
}

fn status_name(s: u8) -> &'static str {
    match s {
        status::FILLED => "filled",
        status::CANCELED => "cancelled",
        status::EXPIRED => "expired",
        status::REJECTED => "rejected",
        _ => "working",
    }
}

/// OrdRejReason (103) for an engine reject.
fn ord_rej_reason(r: RejectReason) -> u32 {
    match r {
        RejectReason::UnknownInstrument => rej::UNKNOWN_SYMBOL,
        RejectReason::UnknownAccount => rej::UNKNOWN_ACCOUNT,
        RejectReason::InvalidQuantity => rej::INCORRECT_QTY,
        RejectReason::InvalidPrice => rej::OTHER,
        RejectReason::InvalidOrder => rej::UNSUPPORTED,
        RejectReason::AlreadyExpired => rej::TOO_LATE,
        RejectReason::InstrumentHalted => rej::EXCHANGE_CLOSED,
        RejectReason::MaxOrderQty
        | RejectReason::MaxOrderNotional
        | RejectReason::PriceBand
        | RejectReason::MaxOpenOrders
        | RejectReason::CreditLimit
        | RejectReason::MaxPosition => rej::EXCEEDS_LIMIT,
        RejectReason::AccountBlocked
        | RejectReason::WouldTakeLiquidity
        | RejectReason::EngineFull => rej::BROKER_OPTION,
    }
}

/// CxlRejReason (102) and Text for an engine refusal of a cancel or replace.
fn cancel_reject_reason(r: CancelRejectReason) -> (u32, String) {
    match r {
        CancelRejectReason::UnknownOrder => (cxl::UNKNOWN_ORDER, "Unknown order".into()),
        CancelRejectReason::QtyBelowFilled => (
            cxl::OTHER,
            "OrderQty must exceed the quantity already filled".into(),
        ),
        CancelRejectReason::InstrumentHalted => (cxl::BROKER_OPTION, "Instrument halted".into()),
        CancelRejectReason::InvalidReplace => {
            (cxl::OTHER, "Replace price or quantity out of range".into())
        }
        CancelRejectReason::Risk(r) => (cxl::OTHER, capitalize(r.text())),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Input timestamp (ns) as a UTC timestamp.
fn utc(ts_ns: u64) -> UtcNanos {
    UtcNanos::try_from(ts_ns).unwrap_or(UtcNanos::MAX)
}

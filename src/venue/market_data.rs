//! Market data: MarketDataRequest (V) in; MarketDataSnapshotFullRefresh (W),
//! MarketDataIncrementalRefresh (X) and MarketDataRequestReject (Y) out.
//!
//! The venue feeds every engine event through `MarketData::on_events`. A copy
//! of each instrument's visible price levels (kept from `BookLevelChanged`)
//! gives every level change its MDEntryPositionNo. Subscribers asking for the
//! same instrument, depth and entry types share one *feed*: its entries are
//! computed and encoded once per batch and carry the feed's own RptSeq (83),
//! which grows by one per entry, so any subscriber can detect a gap.
//!
//! Entries wait in their feed until `flush`, which the gateway calls once per
//! engine batch: each subscription then gets its entries packed into as few
//! X messages as `MAX_ENTRIES_PER_MESSAGE` allows.
//!
//! Deterministic like the rest of the venue: state (subscriptions, feeds,
//! RptSeq, session statistics) depends only on the inputs, so a journal
//! replay rebuilds it; the packing of X messages depends on batch
//! boundaries, which is why market data is never replayed to a client
//! (market-data sessions gap-fill resends and resync with a new snapshot).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::config::InstrumentSpec;
use crate::engine::{Event, InstrumentId, Lots, Owner, Side, Ticks};
use crate::fix::encoder::push_int;
use crate::fix::{Message, SOH};
use crate::session::OutboundMessage;

/// Most entries in one MarketDataIncrementalRefresh.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 200;
/// Deepest MarketDepth (264) served besides 0 (full book).
pub const MAX_DEPTH: u32 = 1000;
/// Most live subscriptions (MDReqIDs) per session.
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 1000;

mod tag {
    pub const MD_REQ_ID: i32 = 262;
    pub const SUBSCRIPTION_REQUEST_TYPE: i32 = 263;
    pub const MARKET_DEPTH: i32 = 264;
    pub const MD_UPDATE_TYPE: i32 = 265;
    pub const AGGREGATED_BOOK: i32 = 266;
    pub const NO_MD_ENTRIES: i32 = 268;
    pub const MD_ENTRY_TYPE: i32 = 269;
    pub const MD_ENTRY_PX: i32 = 270;
    pub const MD_ENTRY_SIZE: i32 = 271;
    pub const MD_ENTRY_ID: i32 = 278;
    pub const MD_UPDATE_ACTION: i32 = 279;
    pub const MD_REQ_REJ_REASON: i32 = 281;
    pub const MD_ENTRY_POSITION_NO: i32 = 290;
    pub const NUMBER_OF_ORDERS: i32 = 346;
    pub const RPT_SEQ: i32 = 83;
    pub const SYMBOL: i32 = 55;
    pub const TEXT: i32 = 58;
}

/// MDEntryType (269) values served, each with its bit in a feed's mask.
const ENTRY_TYPES: [(u8, u8); 7] = [
    (b'0', 1),  // bid
    (b'1', 2),  // offer
    (b'2', 4),  // trade
    (b'4', 8),  // opening price
    (b'7', 16), // session high
    (b'8', 32), // session low
    (b'B', 64), // trade volume
];

fn type_bit(kind: u8) -> u8 {
    ENTRY_TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, b)| *b)
}

/// MDUpdateAction (279).
mod action {
    pub const NEW: u8 = b'0';
    pub const CHANGE: u8 = b'1';
    pub const DELETE: u8 = b'2';
}

/// MDReqRejReason (281) values produced.
pub mod rej {
    /// Unknown symbol.
    pub const UNKNOWN_SYMBOL: u8 = b'0';
    /// Duplicate MDReqID.
    pub const DUPLICATE_MD_REQ_ID: u8 = b'1';
    /// Insufficient bandwidth (too many subscriptions).
    pub const INSUFFICIENT_BANDWIDTH: u8 = b'2';
    /// Unsupported SubscriptionRequestType.
    pub const UNSUPPORTED_SUBSCRIPTION_TYPE: u8 = b'4';
    /// Unsupported MarketDepth.
    pub const UNSUPPORTED_MARKET_DEPTH: u8 = b'5';
    /// Unsupported MDUpdateType.
    pub const UNSUPPORTED_UPDATE_TYPE: u8 = b'6';
    /// Unsupported AggregatedBook.
    pub const UNSUPPORTED_AGGREGATED_BOOK: u8 = b'7';
    /// Unsupported MDEntryType.
    pub const UNSUPPORTED_ENTRY_TYPE: u8 = b'8';
}

/// One incremental entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    action: u8,
    kind: u8,
    price: Option<Ticks>,
    size: Option<Lots>,
    orders: Option<u32>,
    position: Option<u32>,
    trade_id: Option<u64>,
    rpt_seq: u64,
}

impl Entry {
    fn level(action: u8, kind: u8, price: Ticks, level: Option<(Lots, u32)>, pos: u32) -> Entry {
        Entry {
            action,
            kind,
            price: Some(price),
            size: level.map(|l| l.0),
            orders: level.map(|l| l.1),
            position: Some(pos),
            trade_id: None,
            rpt_seq: 0,
        }
    }

    fn stat(action: u8, kind: u8, price: Option<Ticks>, size: Option<Lots>) -> Entry {
        Entry {
            action,
            kind,
            price,
            size,
            orders: None,
            position: None,
            trade_id: None,
            rpt_seq: 0,
        }
    }
}

/// The visible levels of one side: price -> (displayed qty, orders).
type Levels = BTreeMap<Ticks, (Lots, u32)>;

/// 1-based position of `price` among `levels` (best first).
fn rank(levels: &Levels, side: Side, price: Ticks) -> u32 {
    let better = match side {
        Side::Buy => levels.range(price.saturating_add(1)..).count(),
        Side::Sell => levels.range(..price).count(),
    };
    better as u32 + 1
}

/// The level at 1-based position `n` (best first).
fn nth(levels: &Levels, side: Side, n: u32) -> Option<(Ticks, (Lots, u32))> {
    let n = (n as usize).checked_sub(1)?;
    match side {
        Side::Buy => levels.iter().rev().nth(n),
        Side::Sell => levels.iter().nth(n),
    }
    .map(|(p, l)| (*p, *l))
}

/// Market state of one instrument.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct InstrumentMd {
    bids: Levels,
    asks: Levels,
    /// Last trade: price, size, trade id.
    last_trade: Option<(Ticks, Lots, u64)>,
    open: Option<Ticks>,
    high: Option<Ticks>,
    low: Option<Ticks>,
    volume: Lots,
    /// Feeds with subscribers.
    feeds: Vec<usize>,
}

impl InstrumentMd {
    fn levels(&self, side: Side) -> &Levels {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }
}

/// What a feed serves: one instrument at one depth with some entry types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct FeedKey {
    instrument: InstrumentId,
    /// 0 = full book.
    depth: u32,
    mask: u8,
}

/// Entries of one feed encoded once per flush: the bytes and each entry's end.
#[derive(Debug, Clone, Default)]
struct Encoded {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// A checkpoint is taken between batches, when nothing is pending: a feed
/// keeps its key, RptSeq and subscriber count.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Feed {
    key: FeedKey,
    rpt_seq: u64,
    subscribers: u32,
    #[serde(skip)]
    pending: Vec<Entry>,
    /// Encodings of `pending` without / with RptSeq, built at flush.
    #[serde(skip)]
    encoded: [Option<Encoded>; 2],
}

impl Feed {
    fn push(&mut self, mut e: Entry) {
        self.rpt_seq += 1;
        e.rpt_seq = self.rpt_seq;
        self.pending.push(e);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Subscription {
    owner: Owner,
    md_req_id: String,
    rpt_seq: bool,
    /// (feed, RptSeq already covered by the snapshot).
    feeds: Vec<(usize, u64)>,
}

/// A parsed, valid MarketDataRequest.
struct Request {
    md_req_id: String,
    sub_type: u8,
    depth: u32,
    mask: u8,
    instruments: Vec<InstrumentId>,
}

/// Market-data state of the venue.
#[derive(Debug, Clone)]
pub struct MarketData {
    symbols: Vec<(String, InstrumentSpec)>,
    books: Vec<InstrumentMd>,
    feeds: Vec<Feed>,
    feed_ids: HashMap<FeedKey, usize>,
    subs: Vec<Subscription>,
}

/// The market-data part of a venue checkpoint: books, statistics, feeds
/// (with their RptSeq) and subscriptions.
#[derive(Serialize, Deserialize)]
pub struct MdCheckpoint<'a> {
    books: Cow<'a, [InstrumentMd]>,
    feeds: Cow<'a, [Feed]>,
    subs: Cow<'a, [Subscription]>,
}

impl MarketData {
    /// The state a checkpoint keeps (taken between batches: no entry is
    /// pending).
    pub fn checkpoint(&self) -> MdCheckpoint<'_> {
        MdCheckpoint {
            books: Cow::Borrowed(&self.books),
            feeds: Cow::Borrowed(&self.feeds),
            subs: Cow::Borrowed(&self.subs),
        }
    }

    /// Takes over a checkpoint's state; refuses one whose instruments or
    /// feed references do not fit this venue. The venue may list more
    /// instruments after the checkpoint's (their books start empty);
    /// `owners` maps each subscriber (session) in the checkpoint to its
    /// number here.
    pub fn restore(
        &mut self,
        cp: MdCheckpoint<'_>,
        owners: &dyn Fn(Owner) -> Option<Owner>,
    ) -> Result<(), String> {
        let (mut books, feeds, mut subs) = (
            cp.books.into_owned(),
            cp.feeds.into_owned(),
            cp.subs.into_owned(),
        );
        if books.len() > self.symbols.len() {
            return Err(format!(
                "{} instruments in the checkpoint's market data, {} configured",
                books.len(),
                self.symbols.len()
            ));
        }
        for s in &mut subs {
            s.owner = owners(s.owner)
                .ok_or_else(|| format!("subscriber {} is not a configured session", s.owner))?;
        }
        let bad_feed = |f: usize| f >= feeds.len();
        if feeds
            .iter()
            .any(|f| f.key.instrument as usize >= books.len())
            || books.iter().any(|b| b.feeds.iter().any(|&f| bad_feed(f)))
            || subs
                .iter()
                .any(|s| s.feeds.iter().any(|&(f, _)| bad_feed(f)))
        {
            return Err("market data names a feed or instrument that does not exist".into());
        }
        self.feed_ids = feeds.iter().enumerate().map(|(i, f)| (f.key, i)).collect();
        books.resize_with(self.symbols.len(), InstrumentMd::default);
        self.books = books;
        self.feeds = feeds;
        self.subs = subs;
        Ok(())
    }

    /// Market data over the listed instruments (index = InstrumentId).
    pub fn new(symbols: Vec<(String, InstrumentSpec)>) -> MarketData {
        MarketData {
            books: vec![InstrumentMd::default(); symbols.len()],
            symbols,
            feeds: Vec::new(),
            feed_ids: HashMap::new(),
            subs: Vec::new(),
        }
    }

    /// Whether a session has live subscriptions.
    pub fn has_subscriptions(&self, owner: Owner) -> bool {
        self.subs.iter().any(|s| s.owner == owner)
    }

    /// Live subscriptions (all sessions).
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    // ------------------------------------------------------------------ events

    /// Updates the market state from engine events and queues the entries.
    pub fn on_events(&mut self, events: &[Event]) {
        for ev in events {
            match *ev {
                Event::BookLevelChanged {
                    instrument,
                    side,
                    price,
                    qty,
                    order_count,
                } => self.on_level(instrument, side, price, qty, order_count),
                Event::Trade {
                    trade_id,
                    instrument,
                    price,
                    qty,
                    ..
                } => self.on_trade(instrument, price, qty, trade_id),
                _ => {}
            }
        }
    }

    fn on_level(&mut self, ins: InstrumentId, side: Side, price: Ticks, qty: Lots, orders: u32) {
        let Some(book) = self.books.get_mut(ins as usize) else {
            return;
        };
        let kind = match side {
            Side::Buy => b'0',
            Side::Sell => b'1',
        };
        let bit = type_bit(kind);
        let levels = match side {
            Side::Buy => &mut book.bids,
            Side::Sell => &mut book.asks,
        };
        let existed = levels.contains_key(&price);
        // The change, with the level's position (1 = best) and the level
        // count after it.
        let (act, p) = match (existed, qty > 0) {
            (false, false) => return,
            (false, true) => {
                levels.insert(price, (qty, orders));
                (action::NEW, rank(levels, side, price))
            }
            (true, true) => {
                levels.insert(price, (qty, orders));
                (action::CHANGE, rank(levels, side, price))
            }
            (true, false) => {
                let p = rank(levels, side, price);
                levels.remove(&price);
                (action::DELETE, p)
            }
        };
        let count = levels.len() as u32;
        let level = (act != action::DELETE).then_some((qty, orders));
        for &f in &book.feeds {
            let feed = &mut self.feeds[f];
            let depth = feed.key.depth;
            if feed.key.mask & bit == 0 || (depth != 0 && p > depth) {
                continue;
            }
            feed.push(Entry::level(act, kind, price, level, p));
            if depth == 0 {
                continue;
            }
            // A depth-limited view stays exactly `depth` levels deep: a new
            // level pushes the last one out, a deleted one pulls the next in.
            if act == action::NEW && count > depth {
                if let Some((px, _)) = nth(levels, side, depth + 1) {
                    feed.push(Entry::level(action::DELETE, kind, px, None, depth + 1));
                }
            }
            if act == action::DELETE && count >= depth {
                if let Some((px, l)) = nth(levels, side, depth) {
                    feed.push(Entry::level(action::NEW, kind, px, Some(l), depth));
                }
            }
        }
    }

    fn on_trade(&mut self, ins: InstrumentId, price: Ticks, qty: Lots, trade_id: u64) {
        let Some(book) = self.books.get_mut(ins as usize) else {
            return;
        };
        let first = book.open.is_none();
        let mut entries: [Option<Entry>; 5] = [None; 5];
        entries[0] = Some(Entry {
            trade_id: Some(trade_id),
            ..Entry::stat(action::NEW, b'2', Some(price), Some(qty))
        });
        if first {
            book.open = Some(price);
            entries[1] = Some(Entry::stat(action::NEW, b'4', Some(price), None));
        }
        if book.high.is_none_or(|h| price > h) {
            let a = if book.high.is_none() {
                action::NEW
            } else {
                action::CHANGE
            };
            book.high = Some(price);
            entries[2] = Some(Entry::stat(a, b'7', Some(price), None));
        }
        if book.low.is_none_or(|l| price < l) {
            let a = if book.low.is_none() {
                action::NEW
            } else {
                action::CHANGE
            };
            book.low = Some(price);
            entries[3] = Some(Entry::stat(a, b'8', Some(price), None));
        }
        book.volume += qty;
        let a = if first { action::NEW } else { action::CHANGE };
        entries[4] = Some(Entry::stat(a, b'B', None, Some(book.volume)));
        book.last_trade = Some((price, qty, trade_id));
        for &f in &book.feeds {
            let feed = &mut self.feeds[f];
            for e in entries.iter().flatten() {
                if feed.key.mask & type_bit(e.kind) != 0 {
                    feed.push(*e);
                }
            }
        }
    }

    // ------------------------------------------------------------------ requests

    /// Handles a MarketDataRequest from session `owner`; answers (W or Y) go to `out`.
    pub fn on_request(
        &mut self,
        owner: Owner,
        rpt_seq: bool,
        msg: &Message,
        out: &mut Vec<OutboundMessage>,
    ) {
        let md_req_id = msg.get_str(tag::MD_REQ_ID).unwrap_or("").to_string();
        let req = match self.parse_request(owner, md_req_id.clone(), msg) {
            Ok(r) => r,
            Err((reason, text)) => {
                out.push(reject(&md_req_id, reason, &text));
                return;
            }
        };
        match req.sub_type {
            b'2' => {
                self.unsubscribe(owner, |s| s.md_req_id == req.md_req_id);
            }
            b'0' => {
                for &ins in &req.instruments {
                    let key = FeedKey {
                        instrument: ins,
                        depth: req.depth,
                        mask: req.mask,
                    };
                    let seq = self
                        .feed_ids
                        .get(&key)
                        .map_or(0, |&f| self.feeds[f].rpt_seq);
                    out.push(self.snapshot(&req.md_req_id, key, seq, rpt_seq));
                }
            }
            _ => {
                let mut feeds = Vec::with_capacity(req.instruments.len());
                for &ins in &req.instruments {
                    let key = FeedKey {
                        instrument: ins,
                        depth: req.depth,
                        mask: req.mask,
                    };
                    let f = self.attach(key);
                    let seq = self.feeds[f].rpt_seq;
                    out.push(self.snapshot(&req.md_req_id, key, seq, rpt_seq));
                    feeds.push((f, seq));
                }
                self.subs.push(Subscription {
                    owner,
                    md_req_id: req.md_req_id,
                    rpt_seq,
                    feeds,
                });
            }
        }
    }

    fn parse_request(
        &self,
        owner: Owner,
        md_req_id: String,
        msg: &Message,
    ) -> Result<Request, (Option<u8>, String)> {
        let sub_type = match msg.get(tag::SUBSCRIPTION_REQUEST_TYPE) {
            Some([c @ (b'0' | b'1' | b'2')]) => *c,
            v => {
                return Err((
                    Some(rej::UNSUPPORTED_SUBSCRIPTION_TYPE),
                    format!(
                        "Unsupported SubscriptionRequestType {}: expected 0 (snapshot), 1 (snapshot + updates) or 2 (unsubscribe)",
                        String::from_utf8_lossy(v.unwrap_or_default())
                    ),
                ))
            }
        };
        let live = self
            .subs
            .iter()
            .any(|s| s.owner == owner && s.md_req_id == md_req_id);
        if sub_type == b'2' {
            if !live {
                return Err((None, format!("Unsubscribe for unknown MDReqID {md_req_id}")));
            }
            return Ok(Request {
                md_req_id,
                sub_type,
                depth: 0,
                mask: 0,
                instruments: Vec::new(),
            });
        }
        if sub_type == b'1' && live {
            return Err((
                Some(rej::DUPLICATE_MD_REQ_ID),
                format!("Duplicate MDReqID {md_req_id}: already subscribed"),
            ));
        }
        if sub_type == b'1'
            && self.subs.iter().filter(|s| s.owner == owner).count()
                >= MAX_SUBSCRIPTIONS_PER_SESSION
        {
            return Err((
                Some(rej::INSUFFICIENT_BANDWIDTH),
                format!("At most {MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions per session"),
            ));
        }
        let raw_depth = msg.get_str(tag::MARKET_DEPTH).unwrap_or("");
        let depth = match raw_depth.parse::<u32>() {
            Ok(d) if d <= MAX_DEPTH => d,
            _ => {
                return Err((
                    Some(rej::UNSUPPORTED_MARKET_DEPTH),
                    format!(
                        "Unsupported MarketDepth {raw_depth}: expected 0 (full book) to {MAX_DEPTH}"
                    ),
                ))
            }
        };
        if sub_type == b'1' {
            if let Some(v) = msg.get(tag::MD_UPDATE_TYPE).filter(|v| *v != b"1") {
                return Err((
                    Some(rej::UNSUPPORTED_UPDATE_TYPE),
                    format!(
                        "Unsupported MDUpdateType {}: only 1 (incremental refresh) is served",
                        String::from_utf8_lossy(v)
                    ),
                ));
            }
        }
        if msg.get(tag::AGGREGATED_BOOK).is_some_and(|v| v != b"Y") {
            return Err((
                Some(rej::UNSUPPORTED_AGGREGATED_BOOK),
                "Unsupported AggregatedBook N: only aggregated (price level) books are served"
                    .to_string(),
            ));
        }
        let mut mask = 0u8;
        let mut instruments = Vec::new();
        for (t, v) in msg.iter() {
            match t {
                tag::MD_ENTRY_TYPE => match v {
                    [k] if type_bit(*k) != 0 => mask |= type_bit(*k),
                    _ => {
                        return Err((
                            Some(rej::UNSUPPORTED_ENTRY_TYPE),
                            format!(
                                "Unsupported MDEntryType {}: expected 0, 1, 2, 4, 7, 8 or B",
                                String::from_utf8_lossy(v)
                            ),
                        ))
                    }
                },
                tag::SYMBOL => {
                    let ins = self
                        .symbols
                        .iter()
                        .position(|(s, _)| s.as_bytes() == v)
                        .ok_or_else(|| {
                            (
                                Some(rej::UNKNOWN_SYMBOL),
                                format!("Unknown symbol {}", String::from_utf8_lossy(v)),
                            )
                        })?;
                    if !instruments.contains(&(ins as InstrumentId)) {
                        instruments.push(ins as InstrumentId);
                    }
                }
                _ => {}
            }
        }
        if mask == 0 {
            return Err((
                Some(rej::UNSUPPORTED_ENTRY_TYPE),
                "No MDEntryType requested".to_string(),
            ));
        }
        if instruments.is_empty() {
            return Err((Some(rej::UNKNOWN_SYMBOL), "No symbol requested".to_string()));
        }
        Ok(Request {
            md_req_id,
            sub_type,
            depth,
            mask,
            instruments,
        })
    }

    /// The feed for `key`, created or re-activated, with one more subscriber.
    fn attach(&mut self, key: FeedKey) -> usize {
        let f = match self.feed_ids.get(&key) {
            Some(&f) => f,
            None => {
                self.feeds.push(Feed {
                    key,
                    rpt_seq: 0,
                    subscribers: 0,
                    pending: Vec::new(),
                    encoded: [None, None],
                });
                let f = self.feeds.len() - 1;
                self.feed_ids.insert(key, f);
                f
            }
        };
        let feed = &mut self.feeds[f];
        feed.subscribers += 1;
        if feed.subscribers == 1 {
            self.books[key.instrument as usize].feeds.push(f);
        }
        f
    }

    fn detach(&mut self, f: usize) {
        let feed = &mut self.feeds[f];
        feed.subscribers -= 1;
        if feed.subscribers == 0 {
            feed.pending.clear();
            self.books[feed.key.instrument as usize]
                .feeds
                .retain(|&g| g != f);
        }
    }

    /// Ends the subscriptions of `owner` that match.
    fn unsubscribe(&mut self, owner: Owner, matches: impl Fn(&Subscription) -> bool) {
        let mut i = 0;
        while i < self.subs.len() {
            if self.subs[i].owner == owner && matches(&self.subs[i]) {
                let s = self.subs.remove(i);
                for (f, _) in s.feeds {
                    self.detach(f);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Ends every subscription of a session (it disconnected).
    pub fn session_down(&mut self, owner: Owner) {
        self.unsubscribe(owner, |_| true);
    }

    // ------------------------------------------------------------------ output

    fn snapshot(
        &self,
        md_req_id: &str,
        key: FeedKey,
        seq: u64,
        with_rpt_seq: bool,
    ) -> OutboundMessage {
        let book = &self.books[key.instrument as usize];
        let (symbol, spec) = &self.symbols[key.instrument as usize];
        let mut entries = Vec::new();
        for (side, kind) in [(Side::Buy, b'0'), (Side::Sell, b'1')] {
            if key.mask & type_bit(kind) == 0 {
                continue;
            }
            let levels = book.levels(side);
            let take = if key.depth == 0 {
                usize::MAX
            } else {
                key.depth as usize
            };
            let iter: Box<dyn Iterator<Item = (&Ticks, &(Lots, u32))>> = match side {
                Side::Buy => Box::new(levels.iter().rev()),
                Side::Sell => Box::new(levels.iter()),
            };
            for (i, (px, l)) in iter.take(take).enumerate() {
                entries.push(Entry::level(action::NEW, kind, *px, Some(*l), i as u32 + 1));
            }
        }
        let stats = [
            (b'2', book.last_trade.map(|t| (Some(t.0), Some(t.1)))),
            (b'4', book.open.map(|p| (Some(p), None))),
            (b'7', book.high.map(|p| (Some(p), None))),
            (b'8', book.low.map(|p| (Some(p), None))),
            (b'B', (book.volume > 0).then_some((None, Some(book.volume)))),
        ];
        for (kind, v) in stats {
            if let (true, Some((px, size))) = (key.mask & type_bit(kind) != 0, v) {
                entries.push(Entry::stat(action::NEW, kind, px, size));
            }
        }
        let mut b = Vec::with_capacity(64 + entries.len() * 40);
        put(&mut b, tag::MD_REQ_ID, md_req_id.as_bytes());
        put(&mut b, tag::SYMBOL, symbol.as_bytes());
        if with_rpt_seq {
            put_int(&mut b, tag::RPT_SEQ, seq as i64);
        }
        put_int(&mut b, tag::NO_MD_ENTRIES, entries.len() as i64);
        for e in &entries {
            put(&mut b, tag::MD_ENTRY_TYPE, &[e.kind]);
            if let Some(px) = e.price {
                put_dec(&mut b, tag::MD_ENTRY_PX, spec.ticks_to_price(px));
            }
            if let Some(size) = e.size {
                put_dec(&mut b, tag::MD_ENTRY_SIZE, spec.lots_to_qty(size));
            }
            if let Some(n) = e.orders {
                put_int(&mut b, tag::NUMBER_OF_ORDERS, i64::from(n));
            }
            if let Some(p) = e.position {
                put_int(&mut b, tag::MD_ENTRY_POSITION_NO, i64::from(p));
            }
        }
        message(b"W", b)
    }

    /// Sends every queued entry to its subscribers, packed into as few
    /// MarketDataIncrementalRefresh messages as possible, and clears the queues.
    /// `comp_id` names the session of an owner.
    pub fn flush<'a>(
        &mut self,
        comp_id: impl Fn(Owner) -> &'a str,
        out: &mut Vec<(Arc<str>, OutboundMessage)>,
    ) {
        if self.feeds.iter().all(|f| f.pending.is_empty()) {
            return;
        }
        let mut parts: Vec<(&Encoded, usize)> = Vec::new();
        for s in &self.subs {
            let flag = usize::from(s.rpt_seq);
            for &(f, _) in &s.feeds {
                let feed = &mut self.feeds[f];
                if !feed.pending.is_empty() && feed.encoded[flag].is_none() {
                    let (symbol, spec) = &self.symbols[feed.key.instrument as usize];
                    feed.encoded[flag] =
                        Some(encode_entries(&feed.pending, symbol, spec, s.rpt_seq));
                }
            }
        }
        for s in &mut self.subs {
            parts.clear();
            let flag = usize::from(s.rpt_seq);
            for (f, covered) in &mut s.feeds {
                let feed = &self.feeds[*f];
                let Some(enc) = &feed.encoded[flag] else {
                    continue;
                };
                // Entries the subscription's snapshot already covered are skipped.
                let first = feed.pending.partition_point(|e| e.rpt_seq <= *covered);
                *covered = 0;
                if first < feed.pending.len() {
                    parts.push((enc, first));
                }
            }
            if parts.is_empty() {
                continue;
            }
            let comp = comp_id(s.owner);
            let mut left: usize = parts.iter().map(|(e, first)| e.ends.len() - first).sum();
            let mut body = Vec::new();
            let mut room = 0usize;
            for &(enc, first) in &parts {
                let mut i = first;
                while i < enc.ends.len() {
                    if room == 0 {
                        room = left.min(MAX_ENTRIES_PER_MESSAGE);
                        body = Vec::with_capacity(32 + room * 48);
                        put(&mut body, tag::MD_REQ_ID, s.md_req_id.as_bytes());
                        put_int(&mut body, tag::NO_MD_ENTRIES, room as i64);
                    }
                    let take = room.min(enc.ends.len() - i);
                    let start = if i == 0 { 0 } else { enc.ends[i - 1] };
                    body.extend_from_slice(&enc.bytes[start..enc.ends[i + take - 1]]);
                    i += take;
                    room -= take;
                    left -= take;
                    if room == 0 {
                        out.push((comp.into(), message(b"X", std::mem::take(&mut body))));
                    }
                }
            }
        }
        self.discard_pending();
    }

    /// Drops queued entries without sending them (journal replay).
    pub fn discard_pending(&mut self) {
        for f in &mut self.feeds {
            f.pending.clear();
            f.encoded = [None, None];
        }
        for s in &mut self.subs {
            for (_, covered) in &mut s.feeds {
                *covered = 0;
            }
        }
    }
}

fn encode_entries(
    entries: &[Entry],
    symbol: &str,
    spec: &InstrumentSpec,
    rpt_seq: bool,
) -> Encoded {
    let mut enc = Encoded {
        bytes: Vec::with_capacity(entries.len() * 48),
        ends: Vec::with_capacity(entries.len()),
    };
    let b = &mut enc.bytes;
    for e in entries {
        put(b, tag::MD_UPDATE_ACTION, &[e.action]);
        put(b, tag::MD_ENTRY_TYPE, &[e.kind]);
        if let Some(id) = e.trade_id {
            put_int(b, tag::MD_ENTRY_ID, id as i64);
        }
        put(b, tag::SYMBOL, symbol.as_bytes());
        if let Some(px) = e.price {
            put_dec(b, tag::MD_ENTRY_PX, spec.ticks_to_price(px));
        }
        if let Some(size) = e.size {
            put_dec(b, tag::MD_ENTRY_SIZE, spec.lots_to_qty(size));
        }
        if let Some(n) = e.orders {
            put_int(b, tag::NUMBER_OF_ORDERS, i64::from(n));
        }
        if let Some(p) = e.position {
            put_int(b, tag::MD_ENTRY_POSITION_NO, i64::from(p));
        }
        if rpt_seq {
            put_int(b, tag::RPT_SEQ, e.rpt_seq as i64);
        }
        enc.ends.push(b.len());
    }
    enc
}

fn reject(md_req_id: &str, reason: Option<u8>, text: &str) -> OutboundMessage {
    let mut b = Vec::with_capacity(64 + text.len());
    put(&mut b, tag::MD_REQ_ID, md_req_id.as_bytes());
    if let Some(r) = reason {
        put(&mut b, tag::MD_REQ_REJ_REASON, &[r]);
    }
    put(&mut b, tag::TEXT, text.as_bytes());
    message(b"Y", b)
}

fn message(msg_type: &'static [u8], body: Vec<u8>) -> OutboundMessage {
    OutboundMessage {
        msg_type: Bytes::from_static(msg_type),
        header: Vec::new(),
        body: Bytes::from(body),
    }
}

fn put(b: &mut Vec<u8>, tag: i32, v: &[u8]) {
    push_int(b, i64::from(tag));
    b.push(b'=');
    b.extend_from_slice(v);
    b.push(SOH);
}

fn put_int(b: &mut Vec<u8>, tag: i32, v: i64) {
    push_int(b, i64::from(tag));
    b.push(b'=');
    push_int(b, v);
    b.push(SOH);
}

fn put_dec(b: &mut Vec<u8>, tag: i32, d: Decimal) {
    push_int(b, i64::from(tag));
    b.push(b'=');
    super::order_entry::report::push_decimal(b, d);
    b.push(SOH);
}

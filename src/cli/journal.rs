//! `fixgw journal dump` and `fixgw journal verify`: read the journaled
//! `VenueInput`s out of the batch records and replay them through a venue
//! built as `fixgw run` builds it, to show (dump) or check (verify) the
//! engine events each input produced.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::engine::{
    Event, InstrumentId, InstrumentSpec, Lots, OrderId, OrderInfo, OrderStates, Owner, Ticks,
    VenueConfig,
};
use crate::fix::Message;
use crate::gateway::{build_venue, data_dir, load_settings};
use crate::session::batch_store::{decode, BatchReader, BatchRecord};
use crate::session::settings::GatewaySettings;
use crate::session::{OutboundMessage, SessionRole};
use crate::venue::input::VenueInput;
use crate::venue::order_entry::Venue;

use super::{iso_time, open_reader, Progress, DEFAULT_CONFIG, DEFAULT_VENUE};

/// The files a journal was written with.
#[derive(Debug, Clone, clap::Args)]
pub struct JournalSource {
    /// Settings file the gateway ran with (its sessions, in order, are the
    /// engine's session ids).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Venue file the gateway ran with.
    #[arg(long, default_value = DEFAULT_VENUE)]
    pub venue: PathBuf,
    /// Store directory (default: FileStorePath from the settings, else ./data).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Options of `fixgw journal dump`.
#[derive(Debug, Clone, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub source: JournalSource,
    /// Only inputs at or after this time (UTC): 2024-05-01T09:30:00Z,
    /// 2024-05-01T09:30:00, 2024-05-01 or 20240501-09:30:00.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<i64>,
    /// Only inputs before this time (same formats as --from).
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,
    /// Only lines about this account (the message's Account (1) or any event's account).
    #[arg(long)]
    pub account: Option<String>,
    /// Only inputs of this session (client CompID or session key).
    #[arg(long)]
    pub session: Option<String>,
    /// Only lines about this symbol (the message's Symbol (55) or any event's instrument).
    #[arg(long)]
    pub symbol: Option<String>,
    /// Leave out timer ticks that produced no event (one is journaled every second).
    #[arg(long)]
    pub skip_idle_ticks: bool,
}

/// Options of `fixgw journal verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: JournalSource,
}

/// Parses a `--from` / `--to` time into ns since the epoch (UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let ns = |t: DateTime<chrono::Utc>| {
        t.timestamp_nanos_opt()
            .ok_or_else(|| format!("{s:?} is out of range"))
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return ns(t.to_utc());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return ns(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return ns(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    crate::fix::time::parse_utc(s.as_bytes()).ok_or_else(|| {
        format!(
            "{s:?} is not a time: use 2024-05-01T09:30:00Z, 2024-05-01T09:30:00 (UTC), 2024-05-01 or 20240501-09:30:00"
        )
    })
}

/// The settings, venue file and records of a journal.
struct Journal {
    settings: GatewaySettings,
    venue: VenueConfig,
    reader: BatchReader,
    dir: PathBuf,
}

impl Journal {
    fn open(src: &JournalSource) -> anyhow::Result<Journal> {
        let settings = load_settings(&src.config)?;
        let venue = VenueConfig::load(&src.venue)?;
        // Fail on the files before touching the store.
        build_venue(&settings, &venue)?;
        let dir = data_dir(src.data.as_deref(), &settings);
        let reader = open_reader(&dir)?;
        Ok(Journal {
            settings,
            venue,
            reader,
            dir,
        })
    }

    /// The venue the journal's replay starts from, and the batch it
    /// follows: a fresh venue, as `fixgw run` builds it, at batch 0; on a
    /// compacted journal (see `CompactStore`), the newest venue checkpoint
    /// taken after every missing batch that restores, at its batch.
    fn start(&self) -> anyhow::Result<(Venue, u64)> {
        let fresh = build_venue(&self.settings, &self.venue)?;
        let checkpoints = self.reader.checkpoints();
        // Without a checkpoint a gap is damage: the replay names it.
        let Some(missing) = self
            .reader
            .last_missing()?
            .filter(|_| !checkpoints.is_empty())
        else {
            return Ok((self.base(fresh, 0)?, 0));
        };
        let mut why = Vec::new();
        for c in checkpoints {
            match c {
                Ok((after, _)) if after < missing => {
                    why.push(format!("the one after batch {after} is older"));
                }
                Ok((after, state)) => match self.base(fresh.clone(), after)?.restored(&state) {
                    Ok(v) => return Ok((v, after)),
                    Err(e) => why.push(format!("the one after batch {after}: {e}")),
                },
                Err(e) => why.push(e.to_string()),
            }
        }
        bail!(
            "the journal was compacted up to batch {missing} (CompactStore), so it can be replayed only from a venue checkpoint taken after that, and none restores: {}",
            why.join("; ")
        )
    }

    /// The venue a replay of the inputs after batch `after` starts from
    /// ([`Venue::for_journal`]; damaged records are left to the replay to
    /// name).
    fn base(&self, fresh: Venue, after: u64) -> anyhow::Result<Venue> {
        let mut first = None;
        for item in self.reader.records() {
            let Ok((batch, raw)) = item else { break };
            let Ok(record) = decode(&raw) else { break };
            if batch <= after {
                continue;
            }
            if let Some(c) = record.inputs.iter().find(|i| VenueInput::is_configure(i)) {
                first = Some(c.to_vec());
                break;
            }
        }
        fresh
            .for_journal(first.as_deref().into_iter())
            .map_err(|e| anyhow!("the journal's first configuration: {e}"))
    }

    /// Checks every record (numbering without gaps after batch `from`,
    /// length, checksum, layout) and, for those after `from`, decodes their
    /// inputs and hands both to `f`, in batch order. Returns the number of
    /// records.
    fn for_each_batch(
        &self,
        label: &'static str,
        from: u64,
        mut f: impl FnMut(u64, &BatchRecord, &[VenueInput]) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let mut progress = Progress::new(label, self.reader.last_batch()?.unwrap_or(0));
        let mut expected = 1;
        let mut records = 0;
        let mut inputs = Vec::new();
        for item in self.reader.records() {
            let (batch, raw) = item.map_err(|e| anyhow!("after batch {}: {e}", expected - 1))?;
            progress.update(batch);
            records += 1;
            if batch <= from {
                // Before the checkpoint: compacted around, not replayed.
                decode(&raw).map_err(|e| anyhow!("batch {batch}: {e}"))?;
                expected = batch + 1;
                continue;
            }
            expected = expected.max(from + 1);
            if batch != expected {
                bail!(
                    "batch {batch}: batch {expected}{} missing (batch numbers must be contiguous)",
                    if batch > expected + 1 {
                        format!(" to {}", batch - 1)
                    } else {
                        String::new()
                    }
                );
            }
            let record = decode(&raw).map_err(|e| anyhow!("batch {batch}: {e}"))?;
            inputs.clear();
            for (i, bytes) in record.inputs.iter().enumerate() {
                match VenueInput::decode(bytes) {
                    Ok((input, used)) if used == bytes.len() => inputs.push(input),
                    Ok(_) => bail!("batch {batch}: input {i}: trailing bytes after the input"),
                    Err(e) => bail!("batch {batch}: input {i}: {e}"),
                }
            }
            f(batch, &record, &inputs)?;
            expected = batch + 1;
        }
        Ok(records)
    }
}

/// Names and decimal conversions for the readable JSON.
struct Names {
    sessions: Vec<String>,
    symbols: Vec<String>,
    specs: Vec<InstrumentSpec>,
    accounts: Vec<String>,
}

impl Names {
    /// The names under the configuration `venue` runs under (the one the
    /// inputs being replayed were processed under).
    fn of(venue: &Venue) -> anyhow::Result<Names> {
        let (cfg, sessions) = Venue::parse_config_text(venue.config_text())
            .map_err(|e| anyhow!("the venue's configuration: {e}"))?;
        Ok(Names::new(
            sessions.iter().map(|s| s.comp_id.to_string()),
            &cfg,
        ))
    }

    fn new(sessions: impl Iterator<Item = String>, venue: &VenueConfig) -> Names {
        Names {
            sessions: sessions.collect(),
            symbols: venue.instruments.iter().map(|i| i.symbol.clone()).collect(),
            specs: (0..venue.instruments.len())
                .filter_map(|i| venue.instrument_spec(i as InstrumentId))
                .collect(),
            accounts: venue.accounts.iter().map(|a| a.name.clone()).collect(),
        }
    }
}

/// Renders engine events as JSON, noting which accounts and symbols they touch.
struct Render<'a> {
    names: &'a Names,
    accounts: BTreeSet<&'a str>,
    symbols: BTreeSet<&'a str>,
}

impl<'a> Render<'a> {
    fn new(names: &'a Names) -> Render<'a> {
        Render {
            names,
            accounts: BTreeSet::new(),
            symbols: BTreeSet::new(),
        }
    }

    fn session(&self, owner: Owner) -> Value {
        self.names
            .sessions
            .get(owner as usize)
            .map_or(Value::Null, |s| Value::from(s.as_str()))
    }

    fn symbol(&mut self, id: InstrumentId) -> Value {
        match self.names.symbols.get(id as usize) {
            Some(s) => {
                self.symbols.insert(s);
                Value::from(s.as_str())
            }
            None => Value::from(format!("instrument#{id}")),
        }
    }

    fn account(&mut self, id: u32) -> Value {
        match self.names.accounts.get(id as usize) {
            Some(a) => {
                self.accounts.insert(a);
                Value::from(a.as_str())
            }
            None => Value::from(format!("account#{id}")),
        }
    }

    /// A price in the instrument's tick grid, as a decimal string.
    fn price(&self, id: InstrumentId, ticks: Ticks) -> Value {
        match self.names.specs.get(id as usize) {
            Some(s) => Decimal::from(ticks)
                .checked_mul(s.tick_size)
                .map_or(Value::from(ticks), |p| Value::from(p.to_string())),
            None => Value::from(ticks),
        }
    }

    /// A quantity in the instrument's units, as a decimal string.
    fn qty(&self, id: InstrumentId, lots: Lots) -> Value {
        match self.names.specs.get(id as usize) {
            Some(s) => Decimal::from(lots)
                .checked_mul(s.lot_size)
                .map_or(Value::from(lots), |q| {
                    Value::from(q.normalize().to_string())
                }),
            None => Value::from(lots),
        }
    }

    fn order(&mut self, o: &OrderInfo) -> Value {
        let ins = o.instrument;
        let avg = self.names.specs.get(ins as usize).and_then(|s| {
            (o.cum_qty > 0).then(|| {
                Decimal::from(o.cum_notional)
                    .checked_mul(s.tick_size)
                    .and_then(|n| n.checked_div(Decimal::from(o.cum_qty)))
                    .map_or(Value::Null, |d| {
                        Value::from(d.round_dp(8).normalize().to_string())
                    })
            })
        });
        json!({
            "engine_order_id": o.order_id,
            "session": self.session(o.owner),
            "account": self.account(o.account),
            "symbol": self.symbol(ins),
            "side": snake(o.side),
            "ord_type": snake(o.ord_type),
            "tif": snake(o.tif),
            "price": if o.ord_type.has_price() { self.price(ins, o.price) } else { Value::Null },
            "stop_price": if o.ord_type.is_stop() { self.price(ins, o.stop_price) } else { Value::Null },
            "qty": self.qty(ins, o.qty),
            "cum_qty": self.qty(ins, o.cum_qty),
            "leaves_qty": self.qty(ins, o.leaves_qty),
            "avg_px": avg.unwrap_or(Value::Null),
        })
    }

    /// One side of a trade, the order in full after the fill when it was reported before
    /// (always, in a dump from the journal's start), else its id.
    fn fill(&mut self, id: OrderId, (qty, price): (Lots, Ticks), states: &OrderStates) -> Value {
        match states.after_fill(id, qty, price) {
            Some(o) => self.order(&o),
            None => json!({ "engine_order_id": id }),
        }
    }

    /// An event; `states` holds the orders as reported by the events before it.
    fn event(&mut self, e: &Event, states: &OrderStates) -> Value {
        match *e {
            Event::Accepted { order } => json!({"event": "accepted", "order": self.order(&order)}),
            Event::Rejected {
                order,
                reason,
                value,
                limit,
            } => json!({
                "event": "rejected",
                "reason": snake(reason),
                "text": Event::reject_text(reason, value, limit),
                "order": self.order(&order),
            }),
            Event::Trade {
                trade_id,
                instrument,
                price,
                qty,
                aggressor,
                maker_order_id,
                taker_order_id,
            } => json!({
                "event": "trade",
                "trade_id": trade_id,
                "symbol": self.symbol(instrument),
                "price": self.price(instrument, price),
                "qty": self.qty(instrument, qty),
                "aggressor": snake(aggressor),
                "maker": self.fill(maker_order_id, (qty, price), states),
                "taker": self.fill(taker_order_id, (qty, price), states),
            }),
            Event::Cancelled { order, reason, .. } => json!({
                "event": "cancelled",
                "reason": snake(reason),
                "order": self.order(&order),
            }),
            Event::Replaced { order, .. } => {
                json!({"event": "replaced", "order": self.order(&order)})
            }
            Event::CancelRejected {
                owner,
                order_id,
                reason,
                ..
            } => json!({
                "event": "cancel_rejected",
                "session": self.session(owner),
                "engine_order_id": order_id,
                "reason": snake(reason),
            }),
            Event::ReplaceRejected {
                owner,
                order_id,
                reason,
                ..
            } => json!({
                "event": "replace_rejected",
                "session": self.session(owner),
                "engine_order_id": order_id,
                "reason": snake(reason),
            }),
            Event::Expired { order } => json!({"event": "expired", "order": self.order(&order)}),
            Event::Triggered { order } => {
                json!({"event": "triggered", "order": self.order(&order)})
            }
            Event::MassCancelDone {
                owner, cancelled, ..
            } => json!({
                "event": "mass_cancel_done",
                "session": self.session(owner),
                "cancelled": cancelled,
            }),
            Event::BookLevelChanged {
                instrument,
                side,
                price,
                qty,
                order_count,
            } => json!({
                "event": "book_level",
                "symbol": self.symbol(instrument),
                "side": snake(side),
                "price": self.price(instrument, price),
                "qty": self.qty(instrument, qty),
                "orders": order_count,
            }),
            Event::InstrumentStatus { instrument, halted } => json!({
                "event": "instrument_status",
                "symbol": self.symbol(instrument),
                "halted": halted,
            }),
            Event::AccountStatus { account, blocked } => json!({
                "event": "account_status",
                "account": self.account(account),
                "blocked": blocked,
            }),
            Event::ReferencePrice { instrument, price } => json!({
                "event": "reference_price",
                "symbol": self.symbol(instrument),
                "price": self.price(instrument, price),
            }),
        }
    }
}

/// `CancelResting` -> `cancel_resting`, `Risk(CreditLimit)` -> `risk_credit_limit`.
fn snake(v: impl Debug) -> String {
    let mut s = String::new();
    for c in format!("{v:?}").chars() {
        match c {
            '(' => s.push('_'),
            ')' => {}
            c if c.is_ascii_uppercase() => {
                if !s.is_empty() && !s.ends_with('_') {
                    s.push('_');
                }
                s.push(c.to_ascii_lowercase());
            }
            c => s.push(c),
        }
    }
    s
}

/// A FIX frame as `tag=value|tag=value|...`, Password and NewPassword
/// replaced by `***`.
pub fn readable_fix(raw: &[u8]) -> String {
    let redacted = crate::fix::redact::redact(raw, &[]);
    let fields: Vec<_> = redacted
        .split(|&b| b == crate::fix::SOH)
        .filter(|f| !f.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    fields.join("|")
}

fn kind(input: &VenueInput) -> &'static str {
    match input {
        VenueInput::Fix { .. } => "fix",
        VenueInput::Tick { .. } => "tick",
        VenueInput::SessionDown { .. } => "session_down",
        VenueInput::Operator { .. } => "operator",
        VenueInput::Configure { .. } => "configure",
    }
}

fn input_session(input: &VenueInput) -> Option<&str> {
    match input {
        VenueInput::Fix { session, .. } | VenueInput::SessionDown { session, .. } => Some(session),
        VenueInput::Tick { .. } | VenueInput::Operator { .. } | VenueInput::Configure { .. } => {
            None
        }
    }
}

/// A configuration switch that failed stops the replay, as it stops
/// start-up: what follows was processed under a configuration the replay
/// cannot take.
fn configured(
    batch: u64,
    i: usize,
    input: &VenueInput,
    result: &Result<(), crate::session::BusinessReject>,
) -> anyhow::Result<()> {
    match (input, result) {
        (VenueInput::Configure { .. }, Err(e)) => {
            bail!(
                "batch {batch}: input {i}: the journal's configuration switch: {}",
                e.text
            )
        }
        _ => Ok(()),
    }
}

/// The client CompID a `--session` value designates (a key or a CompID).
fn comp_id_of(session: &str) -> &str {
    session.rsplit_once("->").map_or(session, |(_, t)| t)
}

/// Writes every journaled input with the events it produced as JSON lines.
pub fn dump(args: &DumpArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let journal = Journal::open(&args.source)?;
    let (mut venue, from) = journal.start()?;
    let mut names = Names::of(&venue)?;
    if from > 0 {
        eprintln!(
            "journal dump: the journal was compacted; the inputs up to batch {from} are in the venue checkpoint after it, and the dump begins after it"
        );
    }
    let mut produced = Vec::new();
    // Every order's last full state, for the trades (updated by every input's events).
    let mut states = OrderStates::default();
    let want_session = args.session.as_deref().map(comp_id_of);
    journal.for_each_batch("journal dump", from, |batch, _, inputs| {
        for (i, input) in inputs.iter().enumerate() {
            produced.clear();
            let result = venue.apply(input, &mut produced);
            venue.discard_market_data();
            configured(batch, i, input, &result)?;
            if let VenueInput::Configure { .. } = input {
                names = Names::of(&venue)?;
            }
            let ts = i64::try_from(input.ts_ns()).unwrap_or(i64::MAX);
            if args.from.is_some_and(|f| ts < f)
                || args.to.is_some_and(|t| ts >= t)
                || want_session.is_some_and(|s| input_session(input) != Some(s))
                || (args.skip_idle_ticks
                    && matches!(input, VenueInput::Tick { .. })
                    && venue.last_events().is_empty()
                    && produced.is_empty())
            {
                venue.last_events().iter().for_each(|e| states.update(e));
                continue;
            }
            let mut render = Render::new(&names);
            let mut line = Map::new();
            line.insert("batch".into(), batch.into());
            line.insert("input".into(), i.into());
            line.insert("kind".into(), kind(input).into());
            line.insert(
                "session".into(),
                input_session(input).map_or(Value::Null, Value::from),
            );
            line.insert("time".into(), iso_time(ts).into());
            if let VenueInput::Operator { who, action, .. } = input {
                line.insert("operator".into(), who.as_str().into());
                line.insert("action".into(), action.as_str().into());
            }
            let mut msg_account = None;
            let mut msg_symbol = None;
            if let VenueInput::Fix { raw, .. } = input {
                if let Ok(m) = Message::parse(raw.clone()) {
                    line.insert(
                        "msg_type".into(),
                        String::from_utf8_lossy(m.msg_type()).into(),
                    );
                    msg_account = m.get_str(1).map(str::to_string);
                    msg_symbol = m.get_str(55).map(str::to_string);
                }
                line.insert("fix".into(), readable_fix(raw).into());
            }
            if let VenueInput::Configure { config, .. } = input {
                let parsed = serde_json::from_str::<Value>(config);
                line.insert(
                    "config".into(),
                    parsed.unwrap_or_else(|_| config.as_str().into()),
                );
            }
            let events: Vec<Value> = venue
                .last_events()
                .iter()
                .map(|e| {
                    let v = render.event(e, &states);
                    states.update(e);
                    v
                })
                .collect();
            line.insert("events".into(), events.into());
            let messages: Vec<Value> = produced
                .iter()
                .map(|(to, m)| {
                    json!({
                        "to": &**to,
                        "msg_type": String::from_utf8_lossy(&m.msg_type),
                        "body": readable_fix(&m.body),
                    })
                })
                .collect();
            line.insert("messages".into(), messages.into());
            if let Err(r) = &result {
                line.insert(
                    "business_reject".into(),
                    json!({"reason": r.reason, "text": r.text}),
                );
            }
            let touches = |want: &Option<String>, msg: &Option<String>, seen: &BTreeSet<&str>| {
                want.as_deref()
                    .is_none_or(|w| msg.as_deref() == Some(w) || seen.contains(w))
            };
            if !touches(&args.account, &msg_account, &render.accounts)
                || !touches(&args.symbol, &msg_symbol, &render.symbols)
            {
                continue;
            }
            serde_json::to_writer(&mut *out, &Value::Object(line)).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

/// Totals of a verified journal.
#[derive(Debug, Default)]
struct Totals {
    inputs: BTreeMap<&'static str, u64>,
    sessions: BTreeSet<String>,
    accepted: u64,
    rejected: u64,
    trades: u64,
    reports: u64,
}

/// Checks every record, decodes every input, replays the journal through two
/// fresh venues and compares their events and messages, and checks each
/// stored application message against the replay. Writes a summary.
pub fn verify(args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let journal = Journal::open(&args.source)?;
    // Built apart (their hash maps seeded apart), as two processes would.
    let (mut first, from) = journal.start()?;
    let (mut second, _) = journal.start()?;
    // Sessions whose application messages the venue produces and the store keeps.
    let checked: HashMap<String, String> = journal
        .settings
        .sessions
        .iter()
        .filter(|(c, _)| c.role != SessionRole::Echo && c.persist_messages)
        .map(|(c, _)| (c.id.target_comp_id.clone(), c.id.to_string()))
        .collect();
    let checked_keys: BTreeSet<&str> = checked.values().map(String::as_str).collect();
    let mut totals = Totals::default();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let batches = journal.for_each_batch("journal verify", from, |batch, record, inputs| {
        // Application messages the store holds for each session, by body.
        let mut stored: HashMap<&str, Vec<Message>> = HashMap::new();
        for (si, seq, bytes, _) in &record.messages {
            let delta = record.sessions.get(usize::from(*si)).ok_or_else(|| {
                anyhow!("batch {batch}: stored message {seq} refers to session #{si}, the record has {}", record.sessions.len())
            })?;
            let msg = Message::parse(bytes.clone())
                .map_err(|e| anyhow!("batch {batch}: {}: stored message {seq} does not parse: {e}", delta.key))?;
            if msg.seq_num() != Some(*seq) || *seq >= delta.next_sender {
                bail!(
                    "batch {batch}: {}: stored message {seq} has MsgSeqNum {:?} (next sender {})",
                    delta.key,
                    msg.seq_num(),
                    delta.next_sender
                );
            }
            if msg.msg_type() != b"j" {
                stored.entry(delta.key.as_str()).or_default().push(msg);
            }
        }
        totals.sessions.extend(record.sessions.iter().map(|d| d.key.clone()));
        let mut replayed: HashMap<&str, Vec<OutboundMessage>> = HashMap::new();
        for (i, input) in inputs.iter().enumerate() {
            a.clear();
            b.clear();
            let ra = first.apply(input, &mut a);
            let rb = second.apply(input, &mut b);
            configured(batch, i, input, &ra)?;
            let same_msgs = a.len() == b.len()
                && a.iter().zip(&b).all(|((ta, ma), (tb, mb))| ta == tb && same(ma, mb));
            if ra != rb || first.last_events() != second.last_events() || !same_msgs {
                bail!("batch {batch}: input {i}: two replays of the journal differ (the venue is not deterministic)");
            }
            *totals.inputs.entry(kind(input)).or_default() += 1;
            for e in first.last_events() {
                match e {
                    Event::Accepted { .. } => totals.accepted += 1,
                    Event::Rejected { .. } => totals.rejected += 1,
                    Event::Trade { .. } => totals.trades += 1,
                    _ => {}
                }
            }
            for (to, m) in &a {
                if let Some(key) = checked.get(&**to) {
                    replayed.entry(key.as_str()).or_default().push(m.clone());
                }
            }
        }
        // The gateway sends a batch's market data at its end, as here.
        a.clear();
        b.clear();
        first.flush_market_data(&mut a);
        second.flush_market_data(&mut b);
        let same_msgs = a.len() == b.len()
            && a.iter().zip(&b).all(|((ta, ma), (tb, mb))| ta == tb && same(ma, mb));
        if !same_msgs {
            bail!("batch {batch}: two replays of the journal give different market data");
        }
        for (to, m) in &a {
            if let Some(key) = checked.get(&**to) {
                replayed.entry(key.as_str()).or_default().push(m.clone());
            }
        }
        for (key, messages) in replayed {
            let mut have = stored.remove(key).unwrap_or_default();
            for (n, m) in messages.iter().enumerate() {
                // Usually the first one: messages are stored in the order produced.
                match have.iter().position(|f| frame_is(f, m)) {
                    Some(p) => {
                        have.remove(p);
                    }
                    None => bail!(
                        "batch {batch}: {key}: replaying the batch's inputs gives a {} the store does not hold (message {} of {} for the session): {}",
                        String::from_utf8_lossy(&m.msg_type),
                        n + 1,
                        messages.len(),
                        readable_fix(&m.body)
                    ),
                }
            }
            stored.insert(key, have);
            totals.reports += messages.len() as u64;
        }
        for (key, have) in &stored {
            if let Some(extra) = have.first().filter(|_| checked_keys.contains(key)) {
                bail!(
                    "batch {batch}: {key}: the store holds message {} that no journaled input produces: {}",
                    extra.seq_num().unwrap_or(0),
                    readable_fix(extra.raw())
                );
            }
        }
        Ok(())
    })?;
    let inputs: u64 = totals.inputs.values().sum();
    let by_kind: Vec<String> = totals
        .inputs
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    writeln!(out, "journal in {}: OK", journal.dir.display())
        .and_then(|()| writeln!(out, "  batches   {batches}"))
        .and_then(|()| match from {
            0 => Ok(()),
            _ => writeln!(
                out,
                "  compacted up to batch {from}: replayed from the venue checkpoint after it"
            ),
        })
        .and_then(|()| {
            writeln!(
                out,
                "  inputs    {inputs}{}",
                if by_kind.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", by_kind.join(", "))
                }
            )
        })
        .and_then(|()| writeln!(out, "  sessions  {}", totals.sessions.len()))
        .and_then(|()| {
            writeln!(
                out,
                "  orders    {} ({} accepted, {} rejected)",
                totals.accepted + totals.rejected,
                totals.accepted,
                totals.rejected
            )
        })
        .and_then(|()| writeln!(out, "  trades    {}", totals.trades))
        .and_then(|()| {
            writeln!(
                out,
                "  replayed twice with identical events; {} stored application message(s) match the replay",
                totals.reports
            )
        })
        .context("writing the summary")
}

/// Two outbound messages are the same bytes.
fn same(a: &OutboundMessage, b: &OutboundMessage) -> bool {
    a.msg_type == b.msg_type && a.header == b.header && a.body == b.body
}

/// True when a stored frame is the session's encoding of `m`: the same
/// MsgType, every extra header field, and the body right before the trailer.
fn frame_is(frame: &Message, m: &OutboundMessage) -> bool {
    let raw = frame.raw();
    let before_trailer = raw
        .len()
        .checked_sub(7) // 10=nnn<SOH>
        .map_or(&raw[..0], |end| &raw[..end]);
    frame.msg_type() == m.msg_type
        && before_trailer.ends_with(&m.body)
        && m.header.iter().all(|(t, v)| frame.get(*t) == Some(&v[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_fix_redacts_passwords() {
        assert_eq!(
            readable_fix(b"8=FIX.4.4\x019=5\x0135=A\x01554=secret\x01925=new\x0110=000\x01"),
            "8=FIX.4.4|9=5|35=A|554=***|925=***|10=000"
        );
    }

    #[test]
    fn snake_names() {
        assert_eq!(
            snake(crate::engine::StpMode::CancelResting),
            "cancel_resting"
        );
        assert_eq!(
            snake(crate::engine::CancelRejectReason::Risk(
                crate::engine::RejectReason::CreditLimit
            )),
            "risk_credit_limit"
        );
    }

    #[test]
    fn times_parse_in_every_documented_form() {
        let t = 1_714_555_800_000_000_000; // 2024-05-01T09:30:00Z
        assert_eq!(parse_time("2024-05-01T09:30:00Z"), Ok(t));
        assert_eq!(parse_time("2024-05-01T11:30:00+02:00"), Ok(t));
        assert_eq!(parse_time("2024-05-01T09:30:00"), Ok(t));
        assert_eq!(parse_time("20240501-09:30:00"), Ok(t));
        assert_eq!(parse_time("2024-05-01"), Ok(t - 34_200_000_000_000));
        assert!(parse_time("yesterday").is_err());
    }
}

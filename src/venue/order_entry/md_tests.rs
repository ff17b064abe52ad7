//! Market data and drop copy through `Venue`: a client-side book built from
//! the snapshot and every incremental must equal the engine's book, trades
//! on the feed must equal the fills, every reject reason is produced, and
//! drop copies mirror every report.

use std::collections::{BTreeSet, HashMap};

use rust_decimal::Decimal;

use super::tests::{parse_out, session, Out, T, T0};
use super::*;
use crate::engine::VenueConfig;

const MD_CFG: &str = r#"
[[instruments]]
symbol = "AAPL"
tick_size = "0.01"
lot_size = "1"
price_band_pct = "20"
reference_price = "150.00"

[[instruments]]
symbol = "MSFT"
tick_size = "0.01"
lot_size = "1"
price_band_pct = "20"
reference_price = "400.00"

[[accounts]]
name = "ACC1"
[accounts.limits]
max_order_qty = "100000"
max_order_notional = "100000000"
max_open_orders = 100000
credit_limit = "100000000000"
max_position = "100000000"

[[accounts]]
name = "ACC2"
[accounts.limits]
max_order_qty = "100000"
max_order_notional = "100000000"
max_open_orders = 100000
credit_limit = "100000000000"
max_position = "100000000"

[[sessions]]
comp_id = "CLIENT1"
account = "ACC1"

[[sessions]]
comp_id = "CLIENT2"
account = "ACC2"
"#;

/// The market-data venue's config and sessions.
fn md_setup(drop_copy: SessionInfo) -> (VenueConfig, [SessionInfo; 4]) {
    let cfg = VenueConfig::from_toml_str(MD_CFG).unwrap();
    let sessions = [
        session("CLIENT1", SessionRole::OrderEntry, false),
        session("CLIENT2", SessionRole::OrderEntry, false),
        drop_copy,
        session("MDCLIENT", SessionRole::MarketData, false),
    ];
    (cfg, sessions)
}

fn md_venue(drop_copy: SessionInfo) -> T {
    let (cfg, sessions) = md_setup(drop_copy);
    T {
        v: Venue::new(&cfg, &sessions).unwrap(),
        ts: T0,
        copies: Vec::new(),
        inputs: Vec::new(),
    }
}

fn all_copies() -> SessionInfo {
    SessionInfo::new("DROPCOPY", SessionRole::DropCopy)
}

/// A MarketDataRequest: fields in the order a FIX engine writes them.
pub(super) fn md_request(
    id: &str,
    sub: &str,
    depth: &str,
    types: &[&str],
    symbols: &[&str],
) -> Vec<(i32, String)> {
    let mut f = vec![
        (262, id.to_string()),
        (263, sub.to_string()),
        (264, depth.to_string()),
    ];
    if sub == "1" {
        f.push((265, "1".to_string()));
    }
    f.push((267, types.len().to_string()));
    f.extend(types.iter().map(|t| (269, t.to_string())));
    f.push((146, symbols.len().to_string()));
    f.extend(symbols.iter().map(|s| (55, s.to_string())));
    f
}

fn send_owned(t: &mut T, from: &str, msg_type: &str, fields: &[(i32, String)]) -> Vec<Out> {
    let f: Vec<(i32, &str)> = fields.iter().map(|(t, v)| (*t, v.as_str())).collect();
    t.send(from, msg_type, &f)
}

/// The batch's market data, parsed.
fn flush(t: &mut T) -> Vec<Out> {
    let mut out = Vec::new();
    t.v.flush_market_data(&mut out);
    parse_out(out)
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// One NoMDEntries entry as (tag, value) pairs.
type RawEntry = Vec<(i32, String)>;

/// Splits the MDEntries group of a W or X message into entries.
fn entries(m: &Out) -> Vec<RawEntry> {
    let first_tag = if m.mt() == "X" { 279 } else { 269 };
    let mut all: Vec<RawEntry> = Vec::new();
    let mut in_group = false;
    for (tag, v) in m.msg.iter() {
        if tag == 268 {
            in_group = true;
            continue;
        }
        if !in_group || tag == 10 {
            continue;
        }
        if tag == first_tag {
            all.push(Vec::new());
        }
        all.last_mut()
            .expect("group starts with its delimiter")
            .push((tag, String::from_utf8_lossy(v).into_owned()));
    }
    assert_eq!(
        all.len().to_string(),
        m.s(268),
        "NoMDEntries counts the entries"
    );
    all
}

fn get(e: &RawEntry, tag: i32) -> Option<&str> {
    e.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_str())
}

/// One price level as a client sees it: price, size, NumberOfOrders.
type Lvl = (Decimal, Decimal, u32);

/// A client's view of one subscription, built from W and X only.
#[derive(Debug, Default)]
struct ClientBook {
    depth: usize,
    /// symbol -> (bids, offers), best first.
    books: HashMap<String, (Vec<Lvl>, Vec<Lvl>)>,
    /// symbol -> last RptSeq seen.
    rpt_seq: HashMap<String, u64>,
    /// Trades: (MDEntryID, price, size).
    trades: Vec<(String, Decimal, Decimal)>,
    stats: HashMap<(String, String), String>,
}

impl ClientBook {
    fn apply_snapshot(&mut self, m: &Out) {
        assert_eq!(m.mt(), "W");
        let sym = m.s(55).to_string();
        let mut bids = Vec::new();
        let mut offers = Vec::new();
        for e in entries(m) {
            let kind = get(&e, 269).unwrap();
            match kind {
                "0" | "1" => {
                    let side = if kind == "0" { &mut bids } else { &mut offers };
                    let pos: usize = get(&e, 290).unwrap().parse().unwrap();
                    assert_eq!(pos, side.len() + 1, "snapshot levels in position order");
                    side.push(level(&e));
                }
                _ => {
                    self.stats
                        .insert((sym.clone(), kind.to_string()), format!("{e:?}"));
                }
            }
        }
        self.books.insert(sym.clone(), (bids, offers));
        self.rpt_seq.insert(sym, m.s(83).parse().unwrap());
    }

    fn apply_incremental(&mut self, m: &Out) {
        assert_eq!(m.mt(), "X");
        for e in entries(m) {
            let sym = get(&e, 55).unwrap().to_string();
            let seq: u64 = get(&e, 83).unwrap().parse().unwrap();
            let last = self.rpt_seq.get_mut(&sym).expect("snapshot first");
            assert_eq!(seq, *last + 1, "RptSeq of {sym} has no gap");
            *last = seq;
            let kind = get(&e, 269).unwrap();
            let action = get(&e, 279).unwrap();
            match kind {
                "0" | "1" => {
                    let (bids, offers) = self.books.get_mut(&sym).unwrap();
                    let side = if kind == "0" { bids } else { offers };
                    let pos: usize = get(&e, 290).unwrap().parse().unwrap();
                    let px = dec(get(&e, 270).unwrap());
                    match action {
                        "0" => {
                            assert!(
                                pos <= side.len() + 1,
                                "new level at {pos} of {}",
                                side.len()
                            );
                            side.insert(pos - 1, level(&e));
                        }
                        "1" => {
                            assert_eq!(side[pos - 1].0, px, "change names the level's price");
                            side[pos - 1] = level(&e);
                        }
                        "2" => {
                            assert_eq!(side[pos - 1].0, px, "delete names the level's price");
                            side.remove(pos - 1);
                        }
                        a => panic!("MDUpdateAction {a}"),
                    }
                    if self.depth > 0 {
                        assert!(side.len() <= self.depth + 1);
                    }
                }
                "2" => {
                    assert_eq!(action, "0");
                    self.trades.push((
                        get(&e, 278).unwrap().to_string(),
                        dec(get(&e, 270).unwrap()),
                        dec(get(&e, 271).unwrap()),
                    ));
                }
                _ => {
                    self.stats.insert((sym, kind.to_string()), format!("{e:?}"));
                }
            }
        }
        // After a whole message a depth-limited view is exactly that deep.
        for (bids, offers) in self.books.values() {
            if self.depth > 0 {
                assert!(bids.len() <= self.depth && offers.len() <= self.depth);
            }
        }
    }

    /// The view equals the engine's book (to the subscribed depth).
    fn assert_matches(&self, v: &Venue, when: &str) {
        for (sym, (bids, offers)) in &self.books {
            let ins = *v.symbols.get(sym).unwrap();
            let book = v.engine().book(ins).unwrap();
            let n = if self.depth == 0 {
                usize::MAX
            } else {
                self.depth
            };
            for (side, mine) in [(Side::Buy, bids), (Side::Sell, offers)] {
                let engine: Vec<Lvl> = book
                    .depth(side, n)
                    .iter()
                    .map(|l| {
                        let spec = &v.instruments[ins as usize].spec;
                        (
                            spec.ticks_to_price(l.price),
                            spec.lots_to_qty(l.qty),
                            l.order_count,
                        )
                    })
                    .collect();
                assert_eq!(mine, &engine, "{sym} {side:?} {when}");
            }
        }
    }
}

fn level(e: &RawEntry) -> Lvl {
    (
        dec(get(e, 270).unwrap()),
        dec(get(e, 271).unwrap()),
        get(e, 346).unwrap().parse().unwrap(),
    )
}

/// Deterministic xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random order-entry action from one of the two clients.
fn random_action(
    t: &mut T,
    rng: &mut Rng,
    n: usize,
    sent: &mut Vec<(String, String, String)>,
) -> Vec<Out> {
    let client = if rng.below(2) == 0 {
        "CLIENT1"
    } else {
        "CLIENT2"
    };
    let (sym, mid) = if rng.below(4) == 0 {
        ("MSFT", 40_000)
    } else {
        ("AAPL", 15_000)
    };
    let side = if rng.below(2) == 0 { "1" } else { "2" };
    let px = (mid + rng.below(41) as i64 - 20).to_string();
    let px = format!("{}.{}", &px[..px.len() - 2], &px[px.len() - 2..]);
    let qty = (1 + rng.below(300)).to_string();
    let cl = format!("{client}-{n}");
    let roll = rng.below(100);
    if roll < 20 && !sent.is_empty() {
        let (c, orig, oside) = sent[rng.below(sent.len() as u64) as usize].clone();
        let osym = if orig.contains("M") { "MSFT" } else { "AAPL" };
        let mut f = vec![
            (tags::CL_ORD_ID, format!("{cl}X")),
            (tags::ORIG_CL_ORD_ID, orig),
            (tags::SIDE, oside),
            (tags::SYMBOL, osym.to_string()),
            (tags::TRANSACT_TIME, "20240102-10:00:00.000".to_string()),
        ];
        if roll < 12 {
            return send_owned(t, &c, "F", &f);
        }
        f.extend([
            (tags::ORDER_QTY, qty),
            (tags::ORD_TYPE, "2".to_string()),
            (tags::PRICE, px),
        ]);
        f.sort_by_key(|(t, _)| *t);
        return send_owned(t, &c, "G", &f);
    }
    let (ord_type, tif) = match roll {
        20..=24 => ("1", "3"),
        25..=34 => ("2", "3"),
        _ => ("2", "0"),
    };
    let cl = if sym == "MSFT" { format!("{cl}M") } else { cl };
    let mut f = vec![
        (tags::CL_ORD_ID, cl.clone()),
        (tags::SYMBOL, sym.to_string()),
        (tags::SIDE, side.to_string()),
        (tags::TRANSACT_TIME, "20240102-10:00:00.000".to_string()),
        (tags::ORDER_QTY, qty),
        (tags::ORD_TYPE, ord_type.to_string()),
        (tags::TIME_IN_FORCE, tif.to_string()),
    ];
    if ord_type == "2" {
        f.push((tags::PRICE, px));
    }
    f.sort_by_key(|(t, _)| *t);
    sent.push((client.to_string(), cl, side.to_string()));
    send_owned(t, client, "D", &f)
}

#[test]
fn snapshot_plus_incrementals_track_the_engine_book_through_random_flow() {
    for seed in [1u64, 7, 42] {
        let mut t = md_venue(all_copies());
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        // (session, MDReqID) -> client book.
        let mut views: HashMap<(String, String), ClientBook> = HashMap::new();
        let subscribe = |t: &mut T,
                         views: &mut HashMap<(String, String), ClientBook>,
                         who: &str,
                         id: &str,
                         depth: usize,
                         types: &[&str],
                         syms: &[&str]| {
            let out = send_owned(
                t,
                who,
                "V",
                &md_request(id, "1", &depth.to_string(), types, syms),
            );
            assert_eq!(out.len(), syms.len(), "one snapshot per symbol: {out:?}");
            let view = views
                .entry((who.to_string(), id.to_string()))
                .or_insert_with(|| ClientBook {
                    depth,
                    ..ClientBook::default()
                });
            for m in &out {
                assert_eq!(m.to, who);
                assert_eq!(m.s(262), id);
                view.apply_snapshot(m);
            }
            view.assert_matches(&t.v, "after the snapshot");
        };
        subscribe(
            &mut t,
            &mut views,
            "MDCLIENT",
            "full",
            0,
            &["0", "1", "2"],
            &["AAPL", "MSFT"],
        );
        subscribe(
            &mut t,
            &mut views,
            "CLIENT1",
            "top",
            1,
            &["0", "1"],
            &["AAPL"],
        );
        subscribe(
            &mut t,
            &mut views,
            "MDCLIENT",
            "d3",
            3,
            &["0", "1", "2", "4", "7", "8", "B"],
            &["AAPL"],
        );
        let mut sent = Vec::new();
        let mut fills: BTreeSet<(String, Decimal, Decimal)> = BTreeSet::new();
        for n in 0..3000 {
            if n == 1500 {
                // A late subscriber starts from a snapshot of a busy book.
                subscribe(
                    &mut t,
                    &mut views,
                    "CLIENT2",
                    "late",
                    5,
                    &["0", "1", "2"],
                    &["AAPL", "MSFT"],
                );
            }
            for m in random_action(&mut t, &mut rng, n, &mut sent) {
                if m.mt() == "8" && m.s(150) == "F" {
                    fills.insert((m.s(880).to_string(), dec(m.s(31)), dec(m.s(32))));
                }
            }
            // Several inputs per batch now and then, as under load.
            if rng.below(3) != 0 || n == 2999 {
                for m in flush(&mut t) {
                    assert_eq!(m.mt(), "X");
                    let view = views
                        .get_mut(&(m.to.clone(), m.s(262).to_string()))
                        .unwrap();
                    view.apply_incremental(&m);
                    assert!(
                        entries(&m).len() <= crate::venue::market_data::MAX_ENTRIES_PER_MESSAGE
                    );
                }
                for v in views.values() {
                    v.assert_matches(&t.v, &format!("after action {n} (seed {seed})"));
                }
            }
        }
        assert_checkpoint_restores(&mut t, seed);
        assert_replay_mode_rebuilds(&mut t, seed);
        let full = &views[&("MDCLIENT".to_string(), "full".to_string())];
        let feed: BTreeSet<(String, Decimal, Decimal)> = full.trades.iter().cloned().collect();
        assert_eq!(feed.len(), full.trades.len(), "each trade once on the feed");
        assert!(fills.len() > 300, "the flow trades: {} fills", fills.len());
        assert_eq!(
            feed, fills,
            "trades on the feed are the fills (seed {seed})"
        );
        let d3 = &views[&("MDCLIENT".to_string(), "d3".to_string())];
        for kind in ["4", "7", "8", "B"] {
            assert!(
                d3.stats
                    .contains_key(&("AAPL".to_string(), kind.to_string())),
                "{kind}"
            );
        }
    }
}

#[test]
fn snapshot_carries_levels_positions_last_trade_and_stats() {
    let mut t = md_venue(all_copies());
    t.limit("CLIENT1", "B1", "1", "10", "149.50");
    t.limit("CLIENT1", "B2", "1", "5", "149.50");
    t.limit("CLIENT1", "B3", "1", "7", "149.00");
    t.limit("CLIENT2", "S1", "2", "4", "150.25");
    t.limit("CLIENT2", "S2", "2", "3", "149.50");
    let out = send_owned(
        &mut t,
        "MDCLIENT",
        "V",
        &md_request(
            "s",
            "0",
            "0",
            &["0", "1", "2", "4", "7", "8", "B"],
            &["AAPL"],
        ),
    );
    assert_eq!(out.len(), 1);
    let w = &out[0];
    assert_eq!((w.mt(), w.s(262), w.s(55)), ("W", "s", "AAPL"));
    let e = entries(w);
    let rows: Vec<String> = e
        .iter()
        .map(|e| {
            e.iter()
                .map(|(t, v)| format!("{t}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "269=0 270=149.5 271=12 346=2 290=1",
            "269=0 270=149 271=7 346=1 290=2",
            "269=1 270=150.25 271=4 346=1 290=1",
            "269=2 270=149.5 271=3",
            "269=4 270=149.5",
            "269=7 270=149.5",
            "269=8 270=149.5",
            "269=B 271=3",
        ]
    );
    // A snapshot-only request leaves no subscription behind.
    assert_eq!(t.v.md_subscriptions(), 0);
    t.limit("CLIENT1", "B4", "1", "1", "148.00");
    assert!(flush(&mut t).is_empty());
}

#[test]
fn every_reject_reason_and_unsubscribe() {
    let mut t = md_venue(all_copies());
    let reject = |t: &mut T, req: Vec<(i32, String)>| {
        let out = send_owned(t, "MDCLIENT", "V", &req);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].mt(), "Y");
        assert!(out[0].has(58));
        (out[0].s(281).to_string(), out[0].s(58).to_string())
    };
    let r = reject(&mut t, md_request("a", "1", "0", &["0"], &["AAPL", "NOPE"]));
    assert_eq!(r, ("0".into(), "Unknown symbol NOPE".into()));
    let ok = send_owned(
        &mut t,
        "MDCLIENT",
        "V",
        &md_request("dup", "1", "0", &["0"], &["AAPL"]),
    );
    assert_eq!(ok[0].mt(), "W");
    let r = reject(&mut t, md_request("dup", "1", "0", &["1"], &["MSFT"]));
    assert_eq!(r.0, "1");
    assert!(r.1.contains("Duplicate MDReqID dup"), "{}", r.1);
    let r = reject(&mut t, md_request("b", "3", "0", &["0"], &["AAPL"]));
    assert_eq!(r.0, "4");
    let r = reject(&mut t, md_request("c", "1", "5000", &["0"], &["AAPL"]));
    assert_eq!(r.0, "5");
    let r = reject(&mut t, md_request("c", "1", "-1", &["0"], &["AAPL"]));
    assert_eq!(r.0, "5");
    let mut req = md_request("d", "1", "0", &["0"], &["AAPL"]);
    req[3].1 = "0".into();
    let r = reject(&mut t, req);
    assert_eq!(r.0, "6");
    let mut req = md_request("e", "1", "0", &["0"], &["AAPL"]);
    req.insert(4, (266, "N".into()));
    let r = reject(&mut t, req);
    assert_eq!(r.0, "7");
    let r = reject(&mut t, md_request("f", "1", "0", &["0", "9"], &["AAPL"]));
    assert_eq!(r.0, "8");
    assert!(r.1.contains("MDEntryType 9"), "{}", r.1);
    // Rejected requests subscribed nothing.
    assert_eq!(t.v.md_subscriptions(), 1);

    // Updates flow, then stop after the unsubscribe.
    t.limit("CLIENT1", "B1", "1", "10", "149.50");
    let x = flush(&mut t);
    assert_eq!(x.len(), 1);
    assert_eq!((x[0].to.as_str(), x[0].s(262)), ("MDCLIENT", "dup"));
    let unsub = [
        (262, "dup".to_string()),
        (263, "2".to_string()),
        (264, "0".to_string()),
        (267, "1".to_string()),
        (269, "0".to_string()),
        (146, "1".to_string()),
        (55, "AAPL".to_string()),
    ];
    assert!(send_owned(&mut t, "MDCLIENT", "V", &unsub).is_empty());
    assert_eq!(t.v.md_subscriptions(), 0);
    t.limit("CLIENT1", "B2", "1", "10", "149.60");
    assert!(flush(&mut t).is_empty());
    // Unsubscribing again: nothing to end.
    let out = send_owned(&mut t, "MDCLIENT", "V", &unsub);
    assert_eq!(out[0].mt(), "Y");
    assert_eq!(out[0].s(281), "<absent>");
    assert!(out[0].s(58).contains("unknown MDReqID dup"));
}

#[test]
fn market_data_sessions_cannot_trade_and_subscriptions_end_on_disconnect() {
    let mut t = md_venue(all_copies());
    let e = t
        .try_send(
            "MDCLIENT",
            "D",
            &[(tags::CL_ORD_ID, "X"), (tags::SYMBOL, "AAPL")],
        )
        .unwrap_err();
    assert_eq!(e, BusinessReject::unsupported_message_type());
    send_owned(
        &mut t,
        "MDCLIENT",
        "V",
        &md_request("r", "1", "1", &["0", "1"], &["AAPL"]),
    );
    assert_eq!(t.v.sessions_assumed_up(), ["MDCLIENT"]);
    t.input(VenueInput::SessionDown {
        session: "MDCLIENT".into(),
        ts_ns: T0,
    });
    assert_eq!(t.v.md_subscriptions(), 0);
    assert!(t.v.sessions_assumed_up().is_empty());
    t.limit("CLIENT1", "B1", "1", "10", "149.50");
    assert!(flush(&mut t).is_empty());
}

#[test]
fn rpt_seq_is_left_out_for_sessions_that_ask() {
    let cfg = VenueConfig::from_toml_str(MD_CFG).unwrap();
    let md = SessionInfo {
        rpt_seq: false,
        ..SessionInfo::new("MDCLIENT", SessionRole::MarketData)
    };
    let mut t = T {
        v: Venue::new(
            &cfg,
            &[session("CLIENT1", SessionRole::OrderEntry, false), md],
        )
        .unwrap(),
        ts: T0,
        copies: Vec::new(),
        inputs: Vec::new(),
    };
    let w = send_owned(
        &mut t,
        "MDCLIENT",
        "V",
        &md_request("r", "1", "0", &["0", "1"], &["AAPL"]),
    );
    assert!(!w[0].has(83));
    t.limit("CLIENT1", "B1", "1", "10", "149.50");
    let x = flush(&mut t);
    assert_eq!(x.len(), 1);
    assert!(!x[0].has(83));
}

#[test]
fn drop_copy_mirrors_every_report_with_its_source() {
    let mut t = md_venue(all_copies());
    let mut own = Vec::new();
    own.extend(t.limit("CLIENT1", "B1", "1", "10", "149.50"));
    own.extend(t.limit("CLIENT2", "S1", "2", "4", "149.50"));
    own.extend(t.send(
        "CLIENT2",
        "F",
        &[
            (tags::CL_ORD_ID, "C1"),
            (tags::ORIG_CL_ORD_ID, "NOPE"),
            (tags::SIDE, "2"),
            (tags::SYMBOL, "AAPL"),
            (tags::TRANSACT_TIME, "20240102-10:00:00.000"),
        ],
    ));
    let reports: Vec<&Out> = own.iter().filter(|m| m.mt() == "8").collect();
    let copies: Vec<&Out> = t.copies.iter().filter(|m| m.mt() == "8").collect();
    assert_eq!(reports.len(), 4, "{own:?}");
    assert_eq!(copies.len(), reports.len());
    for (r, c) in reports.iter().zip(&copies) {
        assert_eq!(c.s(797), "Y");
        assert_eq!(c.s(115), r.to);
        for tag in [17, 11, 150, 39, 14, 151, 6, 1, 55, 54, 31, 32, 851, 880] {
            assert_eq!(c.s(tag), r.s(tag), "tag {tag}");
        }
    }
    // The fills carry LastQty/LastPx, TrdMatchID and LastLiquidityInd.
    let fills: Vec<&&Out> = copies.iter().filter(|c| c.s(150) == "F").collect();
    assert_eq!(fills.len(), 2);
    assert_eq!([fills[0].s(851), fills[1].s(851)], ["1", "2"]);
    assert!(fills
        .iter()
        .all(|f| f.s(880) == fills[0].s(880) && f.s(32) == "4"));
    // The cancel reject is copied too.
    let cxl: Vec<&Out> = t.copies.iter().filter(|m| m.mt() == "9").collect();
    assert_eq!(cxl.len(), 1);
    assert_eq!((cxl[0].s(115), cxl[0].s(11)), ("CLIENT2", "C1"));
}

#[test]
fn drop_copy_scope_by_session_and_account() {
    let by_session = SessionInfo {
        drop_copy_sessions: vec!["CLIENT2".into()],
        ..all_copies()
    };
    let by_account = SessionInfo {
        drop_copy_accounts: vec!["ACC1".into()],
        ..all_copies()
    };
    for (scope, source, account) in [
        (by_session, "CLIENT2", "ACC2"),
        (by_account, "CLIENT1", "ACC1"),
    ] {
        let mut t = md_venue(scope);
        t.limit("CLIENT1", "B1", "1", "10", "149.50");
        t.limit("CLIENT2", "S1", "2", "10", "160.00");
        assert_eq!(t.copies.len(), 1);
        assert_eq!((t.copies[0].s(115), t.copies[0].s(1)), (source, account));
    }

    let cfg = VenueConfig::from_toml_str(MD_CFG).unwrap();
    let bad = SessionInfo {
        drop_copy_accounts: vec!["ACC9".into()],
        ..all_copies()
    };
    let err = Venue::new(
        &cfg,
        &[session("CLIENT1", SessionRole::OrderEntry, false), bad],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "drop-copy session DROPCOPY: account ACC9 is not configured"
    );
}

/// A venue restored from a checkpoint of a busy one (books, subscriptions,
/// feeds with their RptSeq, ClOrdIDs) answers the next orders exactly as
/// the original, market data included.
fn assert_checkpoint_restores(t: &mut T, seed: u64) {
    let (cfg, sessions) = md_setup(all_copies());
    let mut r = md_venue(all_copies());
    r.v = Venue::new(&cfg, &sessions)
        .unwrap()
        .restored(&t.v.checkpoint())
        .unwrap();
    r.ts = t.ts;
    let show =
        |o: &[Out]| -> Vec<String> { o.iter().map(|m| format!("{} {:?}", m.to, m.msg)).collect() };
    let mut moved = 0;
    for (who, cl, side, px) in [
        ("CLIENT1", "cp1", "1", "140.00"),
        ("CLIENT2", "cp2", "2", "160.00"),
        ("CLIENT1", "cp3", "1", "150.00"),
    ] {
        let live = t.limit(who, cl, side, "500", px);
        let restored = r.limit(who, cl, side, "500", px);
        assert_eq!(show(&restored), show(&live), "seed {seed}");
        let live = flush(t);
        moved += live.len();
        assert_eq!(
            show(&flush(&mut r)),
            show(&live),
            "market data, seed {seed}"
        );
    }
    assert!(moved > 0, "the orders move the subscribed books");
}

/// The gateway's start-up replay (no reports rendered, market data
/// discarded) leaves the venue exactly as live processing did: same engine
/// state, and the next orders get the same answers (order ids, ExecIDs,
/// fills).
fn assert_replay_mode_rebuilds(t: &mut T, seed: u64) {
    let mut r = md_venue(all_copies());
    r.v.set_replaying(true);
    let mut discard = Vec::new();
    for input in &t.inputs {
        discard.clear();
        let _ = r.v.apply(input, &mut discard);
        r.v.discard_market_data();
    }
    r.v.set_replaying(false);
    assert_eq!(
        r.v.engine().snapshot(),
        t.v.engine().snapshot(),
        "engine state after replay (seed {seed})"
    );
    r.ts = t.ts;
    for (who, cl, side) in [("CLIENT1", "rp1", "1"), ("CLIENT2", "rp2", "2")] {
        let live = t.limit(who, cl, side, "500", "150.00");
        let replayed = r.limit(who, cl, side, "500", "150.00");
        let show = |o: &[Out]| -> Vec<String> {
            o.iter().map(|m| format!("{} {:?}", m.to, m.msg)).collect()
        };
        assert_eq!(show(&replayed), show(&live), "seed {seed}");
    }
}

//! Unit tests of order entry: FIX messages in through `Venue::apply`, the
//! outbound messages parsed back and checked field by field.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::engine::VenueConfig;
use crate::fix::time::format_utc_string;
use crate::fix::time::Precision;
use crate::fix::Encoder;

/// Small limits so every risk check can be hit with a few orders.
pub(super) const CFG: &str = r#"
[[instruments]]
symbol = "AAPL"
tick_size = "0.01"
lot_size = "1"
price_band_pct = "20"
reference_price = "150.00"

[[instruments]]
symbol = "LOTS"
tick_size = "0.05"
lot_size = "100"

[[accounts]]
name = "ACC1"
self_trade = "cancel-aggressor"
[accounts.limits]
max_order_qty = "1000"
max_order_notional = "100000"
max_open_orders = 3
credit_limit = "200000"
max_position = "1500"

[[accounts]]
name = "ACC2"
[accounts.limits]
max_order_qty = "100000"
max_order_notional = "100000000"
max_open_orders = 1000
credit_limit = "1000000000"
max_position = "1000000"

[[accounts]]
name = "ACC3"
blocked = true
[accounts.limits]
max_order_qty = "1000"
max_order_notional = "100000"
max_open_orders = 10
credit_limit = "100000"
max_position = "1000"

[[sessions]]
comp_id = "CLIENT1"
account = "ACC1"

[[sessions]]
comp_id = "CLIENT2"
account = "ACC2"

[[sessions]]
comp_id = "BLOCKED"
account = "ACC3"
"#;

/// 2024-01-02T10:00:00Z.
pub(super) const T0: u64 = 1_704_189_600_000_000_000;

pub(super) fn session(comp_id: &str, role: SessionRole, cod: bool) -> SessionInfo {
    SessionInfo {
        cancel_on_disconnect: cod,
        ..SessionInfo::new(comp_id, role)
    }
}

/// The test venue's config and sessions.
pub(super) fn setup() -> (VenueConfig, [SessionInfo; 6]) {
    let cfg = VenueConfig::from_toml_str(CFG).unwrap();
    let sessions = [
        session("CLIENT1", SessionRole::OrderEntry, false),
        session("CLIENT2", SessionRole::OrderEntry, true),
        session("BLOCKED", SessionRole::OrderEntry, false),
        session("NOACCT", SessionRole::OrderEntry, false),
        session("DROPCOPY", SessionRole::DropCopy, false),
        session("MDCLIENT", SessionRole::MarketData, false),
    ];
    (cfg, sessions)
}

pub(super) fn venue() -> Venue {
    let (cfg, sessions) = setup();
    Venue::new(&cfg, &sessions).unwrap()
}

/// A frame as the session layer would hand it over.
pub(super) fn frame(from: &str, msg_type: &str, fields: &[(i32, &str)]) -> Bytes {
    let mut e = Encoder::new();
    e.start(msg_type.as_bytes())
        .field_str(tags::MSG_SEQ_NUM, "2")
        .field_str(tags::SENDER_COMP_ID, from)
        .field_str(tags::SENDING_TIME, "20240102-10:00:00.000")
        .field_str(tags::TARGET_COMP_ID, "FIXGW");
    for (t, v) in fields {
        e.field_str(*t, v);
    }
    Bytes::copy_from_slice(e.finish(b"FIX.4.4"))
}

/// An outbound message parsed back, with its destination.
pub(super) struct Out {
    pub(super) to: String,
    pub(super) msg: Message,
}

impl Out {
    pub(super) fn s(&self, tag: i32) -> &str {
        self.msg.get_str(tag).unwrap_or("<absent>")
    }
    pub(super) fn has(&self, tag: i32) -> bool {
        self.msg.has(tag)
    }
    pub(super) fn mt(&self) -> &str {
        std::str::from_utf8(self.msg.msg_type()).unwrap()
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <- {:?}", self.to, self.msg)
    }
}

pub(super) fn parse_out(out: Vec<(Arc<str>, OutboundMessage)>) -> Vec<Out> {
    out.into_iter()
        .map(|(to, m)| {
            let mut e = Encoder::new();
            e.start(&m.msg_type);
            if &*to == "DROPCOPY" {
                // A copy names its source session, and only that.
                assert_eq!(m.header.len(), 1);
                assert_eq!(m.header[0].0, tags::ON_BEHALF_OF_COMP_ID);
                e.field(m.header[0].0, &m.header[0].1);
            } else {
                assert!(m.header.is_empty());
            }
            e.raw(&m.body);
            let raw = Bytes::copy_from_slice(e.finish(b"FIX.4.4"));
            let msg = Message::parse(raw).unwrap();
            // Order-entry bodies: tags ascend, each at most once.
            let first_body = if &*to == "DROPCOPY" { 4 } else { 3 };
            let body: Vec<i32> = msg.fields()[first_body..msg.fields().len() - 1]
                .iter()
                .map(|f| f.tag)
                .collect();
            let order_entry = matches!(msg.msg_type(), b"8" | b"9" | b"r");
            assert!(
                !order_entry || body.windows(2).all(|w| w[0] < w[1]),
                "{body:?}"
            );
            Out {
                to: to.to_string(),
                msg,
            }
        })
        .collect()
}

pub(super) struct T {
    pub(super) v: Venue,
    pub(super) ts: u64,
    /// Everything sent to the DROPCOPY session, in order.
    pub(super) copies: Vec<Out>,
    /// Every input applied, in order (the journal a gateway would keep).
    pub(super) inputs: Vec<VenueInput>,
}

impl T {
    pub(super) fn new() -> T {
        T {
            v: venue(),
            ts: T0,
            copies: Vec::new(),
            inputs: Vec::new(),
        }
    }

    /// Parses the output, keeping drop copies aside in `copies`.
    pub(super) fn take(&mut self, out: Vec<(Arc<str>, OutboundMessage)>) -> Vec<Out> {
        let (copies, own): (Vec<Out>, Vec<Out>) =
            parse_out(out).into_iter().partition(|o| o.to == "DROPCOPY");
        self.copies.extend(copies);
        own
    }

    pub(super) fn try_send(
        &mut self,
        from: &str,
        msg_type: &str,
        fields: &[(i32, &str)],
    ) -> Result<Vec<Out>, BusinessReject> {
        self.ts += 1_000_000;
        let input = VenueInput::Fix {
            session: from.to_string(),
            ts_ns: self.ts,
            raw: frame(from, msg_type, fields),
        };
        let mut out = Vec::new();
        self.inputs.push(input.clone());
        self.v.apply(&input, &mut out)?;
        self.v.engine().check_invariants().unwrap();
        Ok(self.take(out))
    }

    pub(super) fn send(&mut self, from: &str, msg_type: &str, fields: &[(i32, &str)]) -> Vec<Out> {
        self.try_send(from, msg_type, fields).unwrap()
    }

    pub(super) fn input(&mut self, input: VenueInput) -> Vec<Out> {
        let mut out = Vec::new();
        self.inputs.push(input.clone());
        self.v.apply(&input, &mut out).unwrap();
        self.take(out)
    }

    /// A limit order; `extra` adds or overrides nothing, it appends.
    pub(super) fn limit(
        &mut self,
        from: &str,
        cl: &str,
        side: &str,
        qty: &str,
        px: &str,
    ) -> Vec<Out> {
        self.order(from, cl, side, qty, "2", &[(tags::PRICE, px)])
    }

    pub(super) fn order(
        &mut self,
        from: &str,
        cl: &str,
        side: &str,
        qty: &str,
        ord_type: &str,
        extra: &[(i32, &str)],
    ) -> Vec<Out> {
        let mut f = vec![
            (tags::CL_ORD_ID, cl),
            (tags::SYMBOL, "AAPL"),
            (tags::SIDE, side),
            (tags::TRANSACT_TIME, "20240102-10:00:00.000"),
            (tags::ORDER_QTY, qty),
            (tags::ORD_TYPE, ord_type),
        ];
        f.extend_from_slice(extra);
        f.sort_by_key(|(t, _)| *t);
        self.send(from, "D", &f)
    }

    fn cancel(&mut self, from: &str, cl: &str, orig: &str, side: &str) -> Vec<Out> {
        self.send(
            from,
            "F",
            &[
                (tags::CL_ORD_ID, cl),
                (tags::ORIG_CL_ORD_ID, orig),
                (tags::SYMBOL, "AAPL"),
                (tags::SIDE, side),
                (tags::TRANSACT_TIME, "20240102-10:00:00.000"),
            ],
        )
    }

    fn replace(
        &mut self,
        from: &str,
        cl: &str,
        orig: &str,
        side: &str,
        qty: &str,
        px: &str,
    ) -> Vec<Out> {
        self.send(
            from,
            "G",
            &[
                (tags::CL_ORD_ID, cl),
                (tags::ORDER_QTY, qty),
                (tags::ORD_TYPE, "2"),
                (tags::ORIG_CL_ORD_ID, orig),
                (tags::PRICE, px),
                (tags::SIDE, side),
                (tags::SYMBOL, "AAPL"),
                (tags::TRANSACT_TIME, "20240102-10:00:00.000"),
            ],
        )
    }
}

/// Asserts ExecType, OrdStatus, CumQty, LeavesQty and AvgPx of an ExecutionReport.
#[track_caller]
fn er(o: &Out, exec_type: &str, status: &str, cum: &str, leaves: &str, avg: &str) {
    assert_eq!(o.mt(), "8", "{o:?}");
    assert_eq!(
        (o.s(150), o.s(39), o.s(14), o.s(151), o.s(6)),
        (exec_type, status, cum, leaves, avg),
        "{o:?}"
    );
}

/// Asserts a reject ExecutionReport with its OrdRejReason and a Text containing `text`.
#[track_caller]
fn rejected(out: &[Out], reason: &str, text: &str) {
    assert_eq!(out.len(), 1, "{out:?}");
    er(&out[0], "8", "8", "0", "0", "0");
    assert_eq!(out[0].s(103), reason, "{out:?}");
    assert_eq!(out[0].s(37), "NONE");
    assert!(out[0].s(58).contains(text), "{:?} lacks {text:?}", out[0]);
}

#[test]
fn resting_order_gets_er_new() {
    let mut t = T::new();
    let out = t.order(
        "CLIENT1",
        "A1",
        "1",
        "100",
        "2",
        &[(tags::PRICE, "150.25"), (tags::TIME_IN_FORCE, "1")],
    );
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.to, "CLIENT1");
    er(o, "0", "0", "0", "100", "0");
    for (tag, v) in [
        (1, "ACC1"),
        (11, "A1"),
        (17, "1"),
        (37, "1"),
        (38, "100"),
        (40, "2"),
        (44, "150.25"),
        (54, "1"),
        (55, "AAPL"),
        (59, "1"),
    ] {
        assert_eq!(o.s(tag), v, "tag {tag}: {o:?}");
    }
    let expect_time = format_utc_string(t.ts as i64, Precision::Millis);
    assert_eq!(o.s(60), expect_time);
    assert!(!o.has(41) && !o.has(99) && !o.has(31) && !o.has(103));
    assert_eq!(t.v.live_order_count("CLIENT1"), 1);
}

#[test]
fn crossing_orders_fill_both_sides_with_weighted_avg_px() {
    let mut t = T::new();
    t.limit("CLIENT1", "S1", "2", "100", "150.00");
    t.limit("CLIENT1", "S2", "2", "100", "150.10");
    let out = t.limit("CLIENT2", "B1", "1", "300", "150.10");
    // New, then per trade: maker ER, taker ER.
    assert_eq!(out.len(), 5, "{out:?}");
    er(&out[0], "0", "0", "0", "300", "0");
    let (m1, t1, m2, t2) = (&out[1], &out[2], &out[3], &out[4]);
    assert_eq!((m1.to.as_str(), t1.to.as_str()), ("CLIENT1", "CLIENT2"));
    er(m1, "F", "2", "100", "0", "150");
    assert_eq!(
        (m1.s(11), m1.s(31), m1.s(32), m1.s(851)),
        ("S1", "150", "100", "1")
    );
    er(t1, "F", "1", "100", "200", "150");
    assert_eq!(
        (t1.s(11), t1.s(31), t1.s(32), t1.s(851)),
        ("B1", "150", "100", "2")
    );
    assert_eq!(m1.s(880), t1.s(880));
    er(m2, "F", "2", "100", "0", "150.1");
    er(t2, "F", "1", "200", "100", "150.05");
    assert_ne!(t1.s(880), t2.s(880));
    // ExecIDs are unique.
    let mut ids: Vec<&str> = out.iter().map(|o| o.s(17)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), out.len());
    // The rest of B1 rests; a seller fills it completely.
    let out = t.limit("CLIENT1", "S3", "2", "100", "150.10");
    assert_eq!(out.len(), 3, "{out:?}");
    er(&out[1], "F", "2", "300", "0", "150.06666667");
    assert_eq!(out[1].to, "CLIENT2");
    er(&out[2], "F", "2", "100", "0", "150.1");
    assert_eq!(out[2].s(851), "2");
    assert_eq!(t.v.live_order_count("CLIENT1"), 0);
    assert_eq!(t.v.live_order_count("CLIENT2"), 0);
}

#[test]
fn cancel_and_cancel_rejects() {
    let mut t = T::new();
    t.limit("CLIENT1", "A1", "1", "100", "150");
    let out = t.cancel("CLIENT1", "C1", "A1", "1");
    assert_eq!(out.len(), 1);
    er(&out[0], "4", "4", "0", "0", "0");
    assert_eq!(
        (out[0].s(11), out[0].s(41), out[0].s(37)),
        ("C1", "A1", "1")
    );
    assert!(!out[0].has(58));
    // Too late: the order is cancelled already.
    let out = t.cancel("CLIENT1", "C2", "A1", "1");
    assert_eq!(out[0].mt(), "9");
    assert_eq!(
        (out[0].s(102), out[0].s(434), out[0].s(39), out[0].s(37)),
        ("0", "1", "4", "1")
    );
    // Unknown order.
    let out = t.cancel("CLIENT1", "C3", "NOPE", "1");
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.mt(), "9");
    assert_eq!(
        (o.s(11), o.s(41), o.s(37), o.s(39), o.s(102), o.s(434)),
        ("C3", "NOPE", "NONE", "8", "1", "1")
    );
    assert!(o.s(58).contains("Unknown order"));
    // Another session cannot cancel CLIENT1's orders.
    t.limit("CLIENT1", "A2", "1", "100", "150");
    let out = t.cancel("CLIENT2", "X1", "A2", "1");
    assert_eq!((out[0].to.as_str(), out[0].s(102)), ("CLIENT2", "1"));
    // Filled orders are too late too.
    t.limit("CLIENT2", "S1", "2", "100", "150");
    let out = t.cancel("CLIENT1", "C4", "A2", "1");
    assert_eq!((out[0].s(102), out[0].s(39)), ("0", "2"));
}

#[test]
fn replace_up_and_down() {
    let mut t = T::new();
    t.limit("CLIENT1", "A1", "1", "100", "150");
    let out = t.replace("CLIENT1", "R1", "A1", "1", "200", "150.05");
    assert_eq!(out.len(), 1);
    er(&out[0], "5", "0", "0", "200", "0");
    assert_eq!(
        (
            out[0].s(11),
            out[0].s(41),
            out[0].s(38),
            out[0].s(44),
            out[0].s(37)
        ),
        ("R1", "A1", "200", "150.05", "1")
    );
    // Partial fill, then replace down: OrdStatus stays partially filled.
    t.limit("CLIENT2", "S1", "2", "50", "150.05");
    let out = t.replace("CLIENT1", "R2", "R1", "1", "80", "150.05");
    er(&out[0], "5", "1", "50", "30", "150.05");
    assert_eq!(
        (out[0].s(11), out[0].s(41), out[0].s(38)),
        ("R2", "R1", "80")
    );
    // Replace to at or below the filled quantity is refused by the engine.
    let out = t.replace("CLIENT1", "R3", "R2", "1", "50", "150.05");
    assert_eq!(out[0].mt(), "9");
    assert_eq!(
        (out[0].s(102), out[0].s(434), out[0].s(39)),
        ("99", "2", "1")
    );
    // Unknown OrigClOrdID.
    let out = t.replace("CLIENT1", "R4", "ZZ", "1", "100", "150");
    assert_eq!((out[0].mt(), out[0].s(102), out[0].s(434)), ("9", "1", "2"));
    // Off-tick replace price.
    let out = t.replace("CLIENT1", "R5", "R2", "1", "100", "150.001");
    assert_eq!((out[0].mt(), out[0].s(102)), ("9", "99"));
    assert!(out[0].s(58).contains("tick size 0.01"), "{out:?}");
    // Replace up in price crosses and trades.
    t.limit("CLIENT2", "S2", "2", "30", "150.20");
    let out = t.replace("CLIENT1", "R6", "R2", "1", "80", "150.20");
    assert_eq!(out.len(), 3, "{out:?}");
    er(&out[0], "5", "1", "50", "30", "150.05");
    er(&out[2], "F", "2", "80", "0", "150.10625");
    assert_eq!(out[2].s(11), "R6");
}

#[test]
fn status_request() {
    let mut t = T::new();
    t.limit("CLIENT1", "A1", "1", "100", "150");
    let h = |cl: &'static str| {
        vec![
            (tags::CL_ORD_ID, cl),
            (tags::SYMBOL, "AAPL"),
            (tags::SIDE, "1"),
            (tags::ORD_STATUS_REQ_ID, "Q1"),
        ]
    };
    let out = t.send("CLIENT1", "H", &h("A1"));
    er(&out[0], "I", "0", "0", "100", "0");
    assert_eq!(
        (out[0].s(11), out[0].s(37), out[0].s(790)),
        ("A1", "1", "Q1")
    );
    t.limit("CLIENT2", "S1", "2", "40", "150");
    let out = t.send("CLIENT1", "H", &h("A1"));
    er(&out[0], "I", "1", "40", "60", "150");
    let out = t.send("CLIENT1", "H", &h("NOPE"));
    er(&out[0], "I", "8", "0", "0", "0");
    assert_eq!((out[0].s(37), out[0].s(58)), ("NONE", "Unknown order"));
    // Other sessions do not see the order.
    let out = t.send("CLIENT2", "H", &h("A1"));
    assert_eq!(out[0].s(39), "8");
}

#[test]
fn mass_cancel_by_symbol_and_all() {
    let mut t = T::new();
    t.limit("CLIENT2", "A1", "1", "100", "150");
    t.limit("CLIENT2", "A2", "2", "100", "151");
    t.send(
        "CLIENT2",
        "D",
        &[
            (tags::CL_ORD_ID, "L1"),
            (tags::ORDER_QTY, "200"),
            (tags::ORD_TYPE, "2"),
            (tags::PRICE, "10.05"),
            (tags::SIDE, "1"),
            (tags::SYMBOL, "LOTS"),
        ],
    );
    t.limit("CLIENT1", "O1", "1", "100", "150");
    let q = |ty: &'static str, sym: Option<&'static str>| {
        let mut f = vec![
            (tags::CL_ORD_ID, "M1"),
            (tags::TRANSACT_TIME, "20240102-10:00:00.000"),
            (tags::MASS_CANCEL_REQUEST_TYPE, ty),
        ];
        if let Some(s) = sym {
            f.insert(1, (tags::SYMBOL, s));
        }
        f
    };
    let out = t.send("CLIENT2", "q", &q("1", Some("AAPL")));
    assert_eq!(out.len(), 3, "{out:?}");
    er(&out[0], "4", "4", "0", "0", "0");
    er(&out[1], "4", "4", "0", "0", "0");
    assert_eq!(out[0].s(58), "Cancelled by mass cancel");
    let r = &out[2];
    assert_eq!(r.mt(), "r");
    assert_eq!(
        (r.s(11), r.s(530), r.s(531), r.s(533), r.s(55)),
        ("M1", "1", "1", "2", "AAPL")
    );
    assert!(r.s(37).starts_with("MC"));
    let out = t.send("CLIENT2", "q", &q("7", None));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!((out[0].s(11), out[0].s(55)), ("L1", "LOTS"));
    assert_eq!((out[1].s(531), out[1].s(533)), ("7", "1"));
    // CLIENT1's order is untouched.
    assert_eq!(t.v.live_order_count("CLIENT1"), 1);
    let out = t.send("CLIENT2", "q", &q("3", None));
    assert_eq!((out[0].mt(), out[0].s(531), out[0].s(532)), ("r", "0", "0"));
    let out = t.send("CLIENT2", "q", &q("1", Some("XXX")));
    assert_eq!((out[0].s(531), out[0].s(532)), ("0", "1"));
}

#[test]
fn every_risk_limit_rejects_with_reason_and_text() {
    let mut t = T::new();
    rejected(
        &t.limit("CLIENT1", "Q", "1", "1001", "150"),
        "3",
        "Order quantity exceeds max order quantity (1001 > limit 1000)",
    );
    rejected(
        &t.limit("CLIENT1", "N", "1", "1000", "150"),
        "3",
        "notional (150000 > limit 100000)",
    );
    rejected(
        &t.limit("CLIENT1", "B", "1", "10", "180.01"),
        "3",
        "180.01 is beyond the band edge 180",
    );
    // Credit: 600 @ 150 = 90,000 per order; 200 more at 150 passes 200,000.
    t.limit("CLIENT1", "C1", "1", "600", "150");
    t.limit("CLIENT1", "C2", "1", "600", "150");
    rejected(
        &t.limit("CLIENT1", "C3", "1", "200", "150"),
        "3",
        "Credit limit exceeded (210000 > limit 200000)",
    );
    // Position: 1200 buying + 400 more > 1500.
    rejected(
        &t.limit("CLIENT1", "P", "1", "400", "130"),
        "3",
        "Position limit exceeded (1600 > limit 1500)",
    );
    // Open orders: a third order fits, a fourth does not.
    t.limit("CLIENT1", "O3", "2", "1", "170");
    rejected(
        &t.limit("CLIENT1", "O4", "2", "1", "170"),
        "3",
        "Too many open orders (4 > limit 3)",
    );
    // Kill switch.
    rejected(
        &t.limit("BLOCKED", "K", "1", "1", "150"),
        "0",
        "kill switch",
    );
    // Post-only that would take liquidity.
    let out = t.order(
        "CLIENT2",
        "PO",
        "1",
        "10",
        "2",
        &[(tags::PRICE, "170"), (tags::EXEC_INST, "6")],
    );
    rejected(&out, "0", "Post-only order would take liquidity");
    assert_eq!(out[0].s(1), "ACC2");
}

#[test]
fn venue_level_rejects_name_the_problem() {
    let mut t = T::new();
    let mut f = vec![
        (tags::CL_ORD_ID, "U1"),
        (tags::ORDER_QTY, "10"),
        (tags::ORD_TYPE, "2"),
        (tags::PRICE, "1"),
        (tags::SIDE, "1"),
        (tags::SYMBOL, "NOPE"),
    ];
    let out = t.send("CLIENT1", "D", &f);
    rejected(&out, "1", "Unknown symbol");
    assert_eq!(
        (out[0].s(55), out[0].s(11), out[0].s(44)),
        ("NOPE", "U1", "1")
    );
    rejected(
        &t.limit("CLIENT1", "T", "1", "10", "150.001"),
        "99",
        "Price (44) is not a multiple of the tick size 0.01",
    );
    f[5] = (tags::SYMBOL, "LOTS");
    f[1] = (tags::ORDER_QTY, "150");
    rejected(
        &t.send("CLIENT1", "D", &f),
        "13",
        "OrderQty (38) is not a multiple of the lot size 100",
    );
    rejected(
        &t.limit("NOACCT", "NA", "1", "10", "150"),
        "15",
        "No account is configured for session NOACCT",
    );
    rejected(
        &t.order(
            "CLIENT1",
            "G",
            "1",
            "10",
            "2",
            &[(tags::PRICE, "150"), (tags::TIME_IN_FORCE, "6")],
        ),
        "11",
        "ExpireTime (126)",
    );
    rejected(
        &t.order("CLIENT1", "S", "1", "10", "3", &[]),
        "99",
        "StopPx (99) is required",
    );
    rejected(
        &t.order(
            "CLIENT1",
            "A",
            "1",
            "10",
            "2",
            &[(1, "ACC2"), (tags::PRICE, "150")],
        ),
        "15",
        "not permitted",
    );
    rejected(
        &t.order(
            "CLIENT1",
            "E",
            "1",
            "10",
            "2",
            &[(tags::PRICE, "150"), (tags::EXEC_INST, "G")],
        ),
        "11",
        "ExecInst",
    );
    // Engine shape check: a GTC market order.
    rejected(
        &t.order(
            "CLIENT1",
            "M",
            "1",
            "10",
            "1",
            &[(tags::TIME_IN_FORCE, "1")],
        ),
        "11",
        "Unsupported order type",
    );
    assert_eq!(t.v.live_order_count("CLIENT1"), 0);
}

#[test]
fn duplicate_cl_ord_id() {
    let mut t = T::new();
    t.limit("CLIENT1", "A1", "1", "100", "150");
    rejected(
        &t.limit("CLIENT1", "A1", "1", "100", "150"),
        "6",
        "Duplicate order",
    );
    // The same ClOrdID in another session is fine.
    assert_eq!(t.limit("CLIENT2", "A1", "1", "100", "150")[0].s(150), "0");
    // A cancel reusing a live ClOrdID.
    t.limit("CLIENT1", "A2", "1", "100", "150");
    let out = t.cancel("CLIENT1", "A2", "A1", "1");
    assert_eq!((out[0].mt(), out[0].s(102), out[0].s(434)), ("9", "6", "1"));
    let out = t.replace("CLIENT1", "A1", "A2", "1", "100", "150");
    assert_eq!((out[0].mt(), out[0].s(102), out[0].s(434)), ("9", "6", "2"));
    // Once done, a ClOrdID may be used again.
    t.cancel("CLIENT1", "C1", "A1", "1");
    assert_eq!(t.limit("CLIENT1", "A1", "1", "100", "150")[0].s(150), "0");
}

#[test]
fn ioc_remainder_is_cancelled_with_text() {
    let mut t = T::new();
    t.limit("CLIENT2", "S1", "2", "50", "150");
    let out = t.order(
        "CLIENT1",
        "I1",
        "1",
        "100",
        "2",
        &[(tags::PRICE, "150"), (tags::TIME_IN_FORCE, "3")],
    );
    assert_eq!(out.len(), 4, "{out:?}");
    er(&out[2], "F", "1", "50", "50", "150");
    er(&out[3], "4", "4", "50", "0", "150");
    assert_eq!(
        (out[3].s(58), out[3].s(11), out[3].s(59)),
        ("IOC remainder cancelled", "I1", "3")
    );
    assert!(!out[3].has(41));
}

#[test]
fn market_order_fills_and_cancels_remainder() {
    let mut t = T::new();
    t.limit("CLIENT2", "S1", "2", "60", "150.50");
    let out = t.order("CLIENT1", "M1", "1", "100", "1", &[]);
    assert_eq!(out.len(), 4, "{out:?}");
    er(&out[0], "0", "0", "0", "100", "0");
    assert!(!out[0].has(44));
    er(&out[2], "F", "1", "60", "40", "150.5");
    er(&out[3], "4", "4", "60", "0", "150.5");
    assert!(out[3].s(58).contains("no liquidity"), "{out:?}");
}

#[test]
fn stop_order_triggers_and_trades() {
    let mut t = T::new();
    let out = t.order(
        "CLIENT1",
        "ST",
        "1",
        "100",
        "3",
        &[(tags::STOP_PX, "150.50")],
    );
    er(&out[0], "0", "0", "0", "100", "0");
    assert_eq!((out[0].s(99), out[0].s(40)), ("150.5", "3"));
    t.limit("CLIENT2", "S1", "2", "210", "150.50");
    // A trade at 150.50 (CLIENT1 takes 10 from CLIENT2) reaches the stop price.
    let out = t.limit("CLIENT1", "B1", "1", "10", "150.50");
    // New B1, maker fill, taker fill, then the stop triggers and buys 100 more.
    let kinds: Vec<(&str, &str)> = out.iter().map(|o| (o.s(11), o.s(150))).collect();
    assert_eq!(
        kinds,
        [
            ("B1", "0"),
            ("S1", "F"),
            ("B1", "F"),
            ("ST", "L"),
            ("S1", "F"),
            ("ST", "F")
        ],
        "{out:?}"
    );
    assert_eq!(out[3].s(58), "Stop triggered");
    er(&out[5], "F", "2", "100", "0", "150.5");
    er(&out[4], "F", "1", "110", "100", "150.5");
}

#[test]
fn gtd_expires_on_tick_and_iceberg_post_only_are_echoed() {
    let mut t = T::new();
    let out = t.order(
        "CLIENT1",
        "G1",
        "2",
        "100",
        "2",
        &[
            (tags::PRICE, "151"),
            (tags::TIME_IN_FORCE, "6"),
            (tags::EXPIRE_TIME, "20240102-10:00:05.000"),
            (tags::MAX_FLOOR, "10"),
            (tags::EXEC_INST, "6"),
        ],
    );
    er(&out[0], "0", "0", "0", "100", "0");
    assert_eq!(
        (out[0].s(126), out[0].s(111), out[0].s(18)),
        ("20240102-10:00:05.000", "10", "6")
    );
    assert!(t
        .input(VenueInput::Tick {
            ts_ns: T0 + 4_000_000_000
        })
        .is_empty());
    let out = t.input(VenueInput::Tick {
        ts_ns: T0 + 5_000_000_000,
    });
    assert_eq!(out.len(), 1);
    er(&out[0], "C", "C", "0", "0", "0");
    assert_eq!(out[0].s(58), "Expired: ExpireTime reached");
}

#[test]
fn cancel_on_disconnect_only_where_configured() {
    let mut t = T::new();
    t.limit("CLIENT1", "A1", "1", "100", "150");
    t.limit("CLIENT2", "B1", "1", "100", "150");
    t.limit("CLIENT2", "B2", "2", "100", "151");
    let down = |s: &str| VenueInput::SessionDown {
        session: s.to_string(),
        ts_ns: T0 + 1_000_000_000,
    };
    assert!(t.input(down("CLIENT1")).is_empty());
    let out = t.input(down("CLIENT2"));
    assert_eq!(out.len(), 2, "{out:?}");
    for (o, cl) in out.iter().zip(["B1", "B2"]) {
        assert_eq!(o.to, "CLIENT2");
        er(o, "4", "4", "0", "0", "0");
        assert_eq!((o.s(11), o.s(58)), (cl, "Cancelled on disconnect"));
    }
    assert_eq!(t.v.live_order_count("CLIENT2"), 0);
    assert_eq!(t.v.live_order_count("CLIENT1"), 1);
    assert!(t.input(down("UNKNOWN")).is_empty());
}

#[test]
fn unsupported_messages_get_business_reject() {
    let mut t = T::new();
    let v = [(262, "R1"), (263, "1"), (264, "1"), (267, "1"), (269, "0")];
    let e = t.try_send("DROPCOPY", "V", &v).unwrap_err();
    assert_eq!(e, BusinessReject::unsupported_message_type());
    let e = t.try_send("CLIENT1", "B", &[(148, "hi")]).unwrap_err();
    assert_eq!(e.reason, 3);
    let nos = [
        (tags::CL_ORD_ID, "D1"),
        (tags::ORDER_QTY, "1"),
        (tags::ORD_TYPE, "1"),
        (tags::SIDE, "1"),
        (tags::SYMBOL, "AAPL"),
    ];
    let e = t.try_send("DROPCOPY", "D", &nos).unwrap_err();
    assert_eq!(e.reason, 3);
    let e = t.try_send("STRANGER", "D", &nos).unwrap_err();
    assert!(e.text.contains("STRANGER"));
    assert_eq!(t.v.engine().order_count(), 0);
}

#[test]
fn constructor_refuses_duplicate_sessions() {
    let cfg = VenueConfig::from_toml_str(CFG).unwrap();
    let s = session("CLIENT1", SessionRole::OrderEntry, false);
    assert_eq!(
        Venue::new(&cfg, &[s.clone(), s]).unwrap_err(),
        VenueError::DuplicateSession("CLIENT1".into())
    );
}

// ---------------------------------------------------------------------- determinism

/// One random client action.
#[derive(Debug, Clone)]
enum Op {
    New {
        s: u8,
        cl: u8,
        buy: bool,
        qty: u16,
        px: i16,
        ty: u8,
        tif: u8,
    },
    Cancel {
        s: u8,
        cl: u8,
        orig: u8,
    },
    Replace {
        s: u8,
        cl: u8,
        orig: u8,
        qty: u16,
        px: i16,
    },
    Status {
        s: u8,
        cl: u8,
    },
    Mass {
        s: u8,
        cl: u8,
    },
    Tick {
        dt_ms: u16,
    },
    Down {
        s: u8,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let s = 0u8..3;
    prop_oneof![
        6 => (s.clone(), 0u8..20, any::<bool>(), 1u16..300, -30i16..30, 0u8..4, 0u8..5)
            .prop_map(|(s, cl, buy, qty, px, ty, tif)| Op::New { s, cl, buy, qty, px, ty, tif }),
        2 => (s.clone(), 0u8..20, 0u8..20).prop_map(|(s, cl, orig)| Op::Cancel { s, cl, orig }),
        2 => (s.clone(), 0u8..20, 0u8..20, 1u16..300, -30i16..30)
            .prop_map(|(s, cl, orig, qty, px)| Op::Replace { s, cl, orig, qty, px }),
        1 => (s.clone(), 0u8..20).prop_map(|(s, cl)| Op::Status { s, cl }),
        1 => (s.clone(), 0u8..20).prop_map(|(s, cl)| Op::Mass { s, cl }),
        1 => (0u16..3000).prop_map(|dt_ms| Op::Tick { dt_ms }),
        1 => s.prop_map(|s| Op::Down { s }),
    ]
}

/// Turns ops into venue inputs (timestamps strictly increasing).
fn inputs(ops: &[Op]) -> Vec<VenueInput> {
    const SESSIONS: [&str; 3] = ["CLIENT1", "CLIENT2", "NOACCT"];
    let mut ts = T0;
    let px = |d: i16| format!("{}", Decimal::new(15_000 + i64::from(d) * 5, 2));
    ops.iter()
        .map(|op| {
            ts += 1_000_000;
            let fix = |s: u8, mt: &str, f: Vec<(i32, String)>| {
                let f: Vec<(i32, &str)> = f.iter().map(|(t, v)| (*t, v.as_str())).collect();
                let who = SESSIONS[s as usize];
                VenueInput::Fix {
                    session: who.to_string(),
                    ts_ns: ts,
                    raw: frame(who, mt, &f),
                }
            };
            match *op {
                Op::New {
                    s,
                    cl,
                    buy,
                    qty,
                    px: p,
                    ty,
                    tif,
                } => {
                    let ty = ["1", "2", "3", "4"][ty as usize];
                    let mut f = vec![
                        (11, format!("C{cl}")),
                        (38, qty.to_string()),
                        (40, ty.to_string()),
                        (44, px(p)),
                        (54, if buy { "1" } else { "2" }.to_string()),
                        (55, "AAPL".to_string()),
                        (59, ["0", "1", "3", "4", "6"][tif as usize].to_string()),
                        (99, px(-p)),
                        (
                            126,
                            format_utc_string((ts + 2_000_000_000) as i64, Precision::Millis),
                        ),
                    ];
                    if ty == "1" {
                        f.retain(|(t, _)| *t != 44 && *t != 99 && *t != 59);
                    }
                    fix(s, "D", f)
                }
                Op::Cancel { s, cl, orig } => fix(
                    s,
                    "F",
                    vec![
                        (11, format!("X{cl}")),
                        (41, format!("C{orig}")),
                        (54, "1".into()),
                        (55, "AAPL".into()),
                    ],
                ),
                Op::Replace {
                    s,
                    cl,
                    orig,
                    qty,
                    px: p,
                } => fix(
                    s,
                    "G",
                    vec![
                        (11, format!("C{cl}")),
                        (38, qty.to_string()),
                        (41, format!("C{orig}")),
                        (44, px(p)),
                        (54, "2".into()),
                        (55, "AAPL".into()),
                    ],
                ),
                Op::Status { s, cl } => fix(
                    s,
                    "H",
                    vec![
                        (11, format!("C{cl}")),
                        (54, "1".into()),
                        (55, "AAPL".into()),
                    ],
                ),
                Op::Mass { s, cl } => fix(s, "q", vec![(11, format!("M{cl}")), (530, "7".into())]),
                Op::Tick { dt_ms } => {
                    ts += u64::from(dt_ms) * 1_000_000;
                    VenueInput::Tick { ts_ns: ts }
                }
                Op::Down { s } => VenueInput::SessionDown {
                    session: SESSIONS[s as usize].to_string(),
                    ts_ns: ts,
                },
            }
        })
        .collect()
}

/// Every output of a run, as (destination, msg type, body) bytes, plus BMR results.
fn run_all(v: &mut Venue, inputs: &[VenueInput]) -> Vec<u8> {
    let mut log = Vec::new();
    for input in inputs {
        let mut out = Vec::new();
        let r = v.apply(input, &mut out);
        v.engine().check_invariants().unwrap();
        log.extend_from_slice(format!("{r:?}\n").as_bytes());
        for (to, m) in out {
            log.extend_from_slice(to.as_bytes());
            log.push(b' ');
            log.extend_from_slice(&m.msg_type);
            log.push(b' ');
            log.extend_from_slice(&m.body);
            log.push(b'\n');
        }
    }
    log
}

/// The inputs of `ops`, where `cut` falls among them, and a venue that
/// applied those before it.
fn ran_to_cut(
    prefix: &[VenueInput],
    ops: &[Op],
    cut: prop::sample::Index,
) -> (Vec<VenueInput>, usize, Venue) {
    let mut inputs = prefix.to_vec();
    inputs.extend(self::inputs(ops));
    let cut = cut.index(inputs.len() + 1);
    let mut live = venue();
    run_all(&mut live, &inputs[..cut]);
    (inputs, cut, live)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn same_inputs_give_identical_bytes(ops in prop::collection::vec(arb_op(), 1..150)) {
        let inputs = inputs(&ops);
        // Through the journal encoding, as a restart would replay them.
        let mut journal = Vec::new();
        for i in &inputs {
            i.encode(&mut journal);
        }
        let mut replayed = Vec::new();
        let mut at = 0;
        while at < journal.len() {
            let (i, used) = VenueInput::decode(&journal[at..]).unwrap();
            replayed.push(i);
            at += used;
        }
        prop_assert_eq!(&replayed, &inputs);
        let a = run_all(&mut venue(), &inputs);
        let b = run_all(&mut venue(), &replayed);
        prop_assert!(a == b, "outputs differ");
    }

    /// A venue restored from a checkpoint taken after any input answers the
    /// inputs after it exactly as the venue that never stopped: same
    /// OrderIDs, ExecIDs, fills, rejects, byte for byte.
    #[test]
    fn a_restored_checkpoint_answers_as_the_venue_it_was_taken_of(
        ops in prop::collection::vec(arb_op(), 1..150),
        cut in any::<prop::sample::Index>(),
    ) {
        let (inputs, cut, mut live) = ran_to_cut(&[], &ops, cut);
        let (cfg, sessions) = setup();
        let bytes = live.checkpoint();
        let mut restored = Venue::new(&cfg, &sessions).unwrap().restored(&bytes).unwrap();
        prop_assert_eq!(restored.engine().snapshot(), live.engine().snapshot());
        // A checkpoint of the restored venue restores again.
        Venue::new(&cfg, &sessions).unwrap().restored(&restored.checkpoint()).unwrap();
        let a = run_all(&mut live, &inputs[cut..]);
        let b = run_all(&mut restored, &inputs[cut..]);
        prop_assert!(a == b, "outputs after the checkpoint differ");
    }
}

/// The test venue's configuration grown the way an operator grows it: an
/// instrument and an account after the others, and a session trading for
/// the new account listed first.
fn grown_setup() -> (VenueConfig, Vec<SessionInfo>) {
    let grown = r#"
[[instruments]]
symbol = "NEWSYM"
tick_size = "0.01"
lot_size = "1"
[[accounts]]
name = "ACC4"
[accounts.limits]
max_order_qty = "1000"
max_order_notional = "1000000"
max_open_orders = 10
credit_limit = "1000000"
max_position = "1000"
[[sessions]]
comp_id = "CLIENT4"
account = "ACC4"
"#;
    let cfg = VenueConfig::from_toml_str(&format!("{CFG}{grown}")).unwrap();
    let mut sessions = vec![session("CLIENT4", SessionRole::OrderEntry, false)];
    sessions.extend(setup().1);
    (cfg, sessions)
}

/// A limit day order, as journaled.
fn order_input(n: u64, who: &str, side: &str, qty: &str, symbol: &str, px: &str) -> VenueInput {
    let cl = format!("G{n}");
    VenueInput::Fix {
        session: who.to_string(),
        ts_ns: T0 + 1_000_000_000_000 + n,
        raw: frame(
            who,
            "D",
            &[
                (11, &cl),
                (38, qty),
                (40, "2"),
                (44, px),
                (54, side),
                (55, symbol),
                (59, "0"),
                (60, "20240102-10:20:00.000"),
            ],
        ),
    }
}

/// Orders of the new session, on the new instrument (crossed by CLIENT2)
/// and on old ones.
fn grown_inputs() -> Vec<VenueInput> {
    vec![
        order_input(1, "CLIENT4", "1", "10", "NEWSYM", "20.00"),
        order_input(2, "CLIENT2", "2", "10", "NEWSYM", "20.00"),
        order_input(3, "CLIENT4", "1", "10", "AAPL", "150.00"),
        order_input(4, "CLIENT2", "2", "100", "LOTS", "10.00"),
        order_input(5, "CLIENT4", "1", "100", "LOTS", "10.00"),
    ]
}

/// State a growth must carry over besides the books: a market-data
/// subscription (of a session whose number moves) and positions in the
/// second instrument (a column of the account × instrument table that
/// moves when an instrument is added).
fn before_growth() -> Vec<VenueInput> {
    let req = super::md_tests::md_request("md1", "1", "0", &["0", "1", "2"], &["AAPL", "LOTS"]);
    let req: Vec<(i32, &str)> = req.iter().map(|(t, v)| (*t, v.as_str())).collect();
    let mut inputs = vec![VenueInput::Fix {
        session: "MDCLIENT".into(),
        ts_ns: T0,
        raw: frame("MDCLIENT", "V", &req),
    }];
    inputs.push(order_input(6, "CLIENT1", "2", "200", "LOTS", "10.00"));
    inputs.push(order_input(7, "CLIENT2", "1", "200", "LOTS", "10.00"));
    for i in &mut inputs[1..] {
        if let VenueInput::Fix { ts_ns, .. } = i {
            *ts_ns = T0;
        }
    }
    inputs
}

/// The journal of a venue whose limits were lowered between two runs
/// replays to what its clients were told: each input under the
/// configuration it was processed under (`Core::start` journals a
/// `Configure` at every start), not under today's.
#[test]
fn a_replay_switches_configuration_where_the_journal_did() {
    let (cfg, sessions) = setup();
    let mut tight = cfg.clone();
    tight.accounts[1].limits.max_order_qty = Decimal::from(100);
    let mut live = Venue::new(&cfg, &sessions).unwrap();
    let live_config = live.config_text().to_string();
    let today = Venue::new(&tight, &sessions).unwrap();
    let configure = |v: &Venue| VenueInput::Configure {
        ts_ns: T0,
        config: v.config_text().to_string(),
    };
    let journal = vec![
        configure(&live),
        // CLIENT2 (ACC2) buys 500 while it may.
        order_input(1, "CLIENT2", "1", "500", "AAPL", "150.00"),
        configure(&today),
        // Fills against it; one more is refused under the new limit.
        order_input(2, "CLIENT1", "2", "300", "AAPL", "150.00"),
        order_input(3, "CLIENT2", "1", "500", "AAPL", "150.00"),
    ];
    let told = run_all(&mut live, &journal);
    let filled = told
        .split(|&c| c == b'\n')
        .filter(|l| l.starts_with(b"CLIENT2 8 "))
        .any(|l| l.windows(7).any(|w| w == b"\x01150=F\x01"));
    assert!(filled, "{}", String::from_utf8_lossy(&told));

    let encoded: Vec<Vec<u8>> = journal
        .iter()
        .map(|i| {
            let mut b = Vec::new();
            i.encode(&mut b);
            b
        })
        .collect();
    let mut replayed = today
        .clone()
        .for_journal(encoded.iter().map(|b| &b[..]))
        .unwrap();
    assert_eq!(replayed.config_text(), live_config);
    assert_eq!(run_all(&mut replayed, &journal), told);
    assert_eq!(replayed.config_text(), today.config_text());
    assert_eq!(replayed.engine().snapshot(), live.engine().snapshot());
    // As start-up replays; and a store written before configurations were
    // journaled: its inputs come before the first Configure, which the
    // upgraded fixgw's first start journaled after replaying them under
    // that configuration, and a later start under today's replays them
    // under it too.
    let legacy = [1, 0, 2, 3, 4].map(|i| &encoded[i][..]);
    for journal in [encoded.iter().map(|b| &b[..]).collect(), legacy.to_vec()] {
        let mut v = today.clone().for_journal(journal.iter().copied()).unwrap();
        v.set_replaying(true);
        let mut scratch = Vec::new();
        for raw in journal {
            v.replay_journaled(raw, &mut scratch).unwrap();
        }
        assert_eq!(v.engine().snapshot(), live.engine().snapshot());
    }
    // Replayed under today's limits alone, the first order is refused and
    // the fill never happened: what start-up did before it read them.
    let mut today_only = today.clone();
    assert_ne!(run_all(&mut today_only, &journal[1..]), told);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A venue switches to a configuration that gained an instrument, an
    /// account and a session (listed first, so every session's number
    /// moved), through its own checkpoint: it answers as one that replayed
    /// the whole journal under the new configuration, and the new session
    /// trades the new instrument.
    #[test]
    fn a_venue_switches_to_a_configuration_that_grew(
        ops in prop::collection::vec(arb_op(), 1..150),
        cut in any::<prop::sample::Index>(),
    ) {
        let (inputs, cut, live) = ran_to_cut(&before_growth(), &ops, cut);
        let (cfg, sessions) = grown_setup();
        let mut replayed = Venue::new(&cfg, &sessions).unwrap();
        let mut restored = live;
        restored.reconfigure(replayed.config_text()).unwrap();
        run_all(&mut replayed, &inputs[..cut]);
        // Market data is flushed after every batch; the switch comes between two.
        replayed.discard_market_data();
        prop_assert_eq!(restored.engine().snapshot(), replayed.engine().snapshot());
        let mut rest = inputs[cut..].to_vec();
        rest.extend(grown_inputs());
        let a = run_all(&mut replayed, &rest);
        let b = run_all(&mut restored, &rest);
        prop_assert!(a == b, "outputs after the checkpoint differ");
        let new_session_filled = b
            .split(|&c| c == b'\n')
            .filter(|l| l.starts_with(b"CLIENT4 8 "))
            .any(|l| l.windows(7).any(|w| w == b"\x01150=F\x01"));
        prop_assert!(new_session_filled, "CLIENT4 traded NEWSYM");
        let (mut md_a, mut md_b) = (Vec::new(), Vec::new());
        replayed.flush_market_data(&mut md_a);
        restored.flush_market_data(&mut md_b);
        let show = |md: &[(Arc<str>, OutboundMessage)]| -> Vec<(String, Vec<u8>)> {
            md.iter().map(|(to, m)| (to.to_string(), m.body.to_vec())).collect()
        };
        prop_assert_eq!(show(&md_a), show(&md_b));
        let lots_published = md_b.iter().any(|(to, m)| {
            &**to == "MDCLIENT" && m.body.windows(9).any(|w| w == b"\x0155=LOTS\x01")
        });
        prop_assert!(lots_published, "MDCLIENT still subscribed");
    }
}

#[test]
fn a_checkpoint_from_other_sessions_or_instruments_is_refused() {
    let (cfg, sessions) = setup();
    let mut t = T::new();
    t.limit("CLIENT1", "c1", "1", "10", "150.00");
    let bytes = t.v.checkpoint();
    let refused = |cfg: &VenueConfig, sessions: &[SessionInfo], bytes: &[u8]| {
        Venue::new(cfg, sessions)
            .unwrap()
            .restored_onto_own_config(bytes)
            .unwrap_err()
    };
    let mismatch = |err: &CheckpointError| matches!(err, CheckpointError::ConfigMismatch(_));
    let err = refused(&cfg, &sessions[..5], &bytes);
    assert!(mismatch(&err), "one session fewer: {err}");
    assert!(err.to_string().contains("MDCLIENT"), "{err}");
    let mut other = cfg.clone();
    other.instruments.swap(0, 1);
    let err = refused(&other, &sessions, &bytes);
    assert!(mismatch(&err), "instruments reordered: {err}");
    let mut other = cfg.clone();
    other.instruments[1].lot_size = Decimal::from(10);
    let err = refused(&other, &sessions, &bytes);
    assert!(
        err.to_string().contains("LOTS tick 0.05 lot 100"),
        "lot size changed: {err}"
    );
    let err = refused(&cfg, &sessions, &bytes[..bytes.len() / 2]);
    assert!(
        matches!(err, CheckpointError::Decode(_)),
        "cut short: {err}"
    );
    let mut other = cfg.clone();
    other.accounts.pop();
    other.sessions.retain(|s| s.account != "ACC3");
    let err = refused(&other, &sessions, &bytes);
    assert!(mismatch(&err), "an account removed: {err}");
    let mut other = cfg.clone();
    other.sessions[0].account = "ACC2".into();
    let err = refused(&other, &sessions, &bytes);
    assert!(
        err.to_string()
            .contains("session CLIENT1=ACC1 is not configured"),
        "a session's account changed: {err}"
    );
    let err = t.v.clone().restored(&bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::NotFresh), "{err}");
}

#[test]
fn order_indexes_are_sized_up_front_from_order_capacity() {
    let mut cfg = VenueConfig::from_toml_str(CFG).unwrap();
    assert_eq!(cfg.engine.order_capacity, 100_000, "the documented default");
    cfg.engine.order_capacity = 5_000;
    let sessions = [
        session("CLIENT1", SessionRole::OrderEntry, false),
        session("MDCLIENT", SessionRole::MarketData, false),
    ];
    let v = Venue::new(&cfg, &sessions).unwrap();
    // No rehash (a stall of milliseconds at large sizes) before 5 000 orders.
    assert!(v.orders.capacity() >= 5_000);
    assert!(v.by_engine_id.capacity() >= 5_000);
    assert!(v.sessions[0].cl_ord_ids.capacity() >= 5_000);
    // Sessions that never send orders keep no index.
    assert_eq!(v.sessions[1].cl_ord_ids.capacity(), 0);
}

/// A configuration as this release journals it (`VenueInput::Configure`)
/// and keeps it in checkpoints. Stores hold it for good: a change to the
/// configuration types that cannot read it back (a field removed or
/// renamed, a new one without `#[serde(default)]`) would make them
/// unreadable, so it must fail here first.
const JOURNALED_CONFIG: &str = r#"[{"engine":{"snapshot_every":100000,"max_orders":4000000,"order_capacity":100000},"instruments":[{"symbol":"AAPL","tick_size":"0.01","lot_size":"1","price_band_pct":"20","reference_price":"150.00"}],"accounts":[{"name":"ACC1","limits":{"max_order_qty":"1000","max_order_notional":"100000","max_open_orders":3,"credit_limit":"200000","max_position":"1500"},"self_trade":"cancel-aggressor","blocked":false}],"sessions":[{"comp_id":"CLIENT1","account":"ACC1"}]},[{"comp_id":"CLIENT1","role":"OrderEntry","cancel_on_disconnect":true,"trd_match_id":true,"rpt_seq":true,"drop_copy_sessions":[],"drop_copy_accounts":[]}]]"#;

#[test]
fn a_configuration_journaled_by_this_release_reads_back() {
    let (cfg, sessions) = Venue::parse_config_text(JOURNALED_CONFIG).unwrap();
    assert_eq!(cfg.instruments[0].symbol, "AAPL");
    assert_eq!(cfg.accounts[0].limits.max_open_orders, 3);
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].cancel_on_disconnect);
    let mut v = Venue::from_config_text(JOURNALED_CONFIG).unwrap();
    let mut out = Vec::new();
    v.apply(
        &order_input(1, "CLIENT1", "1", "10", "AAPL", "150.00"),
        &mut out,
    )
    .unwrap();
    assert!(!out.is_empty());
}

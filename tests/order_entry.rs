//! Order entry end to end: a FIX client drives the real `fixgw` binary and
//! checks, field by field, what a trading client checks in the replies:
//! resting and crossing orders (fills on both sides with CumQty, LeavesQty,
//! AvgPx, LastQty/LastPx, TrdMatchID, LastLiquidityInd), cancel, cancel of an
//! unknown order, replace up and down and the priority a replace keeps or
//! loses, status request, mass cancel, every risk reject, unknown symbol,
//! duplicate ClOrdID, unsupported message types, and logout / reconnect with
//! FIX sequence recovery in both directions.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{Client, Gateway};
use fixgw::fix::Message;
use rust_decimal::Decimal;

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
ResetOnLogon=N
ResetOnLogout=N
ResetOnDisconnect=N
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
SendTrdMatchID=Y
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
SendTrdMatchID=Y
[SESSION]
TargetCompID=BLOCKED
SessionRole=order-entry
[SESSION]
TargetCompID=SMALL
SessionRole=order-entry
"
);

/// AAPL trades in [120, 180] (20 % around 150). ACC1/ACC2 have room to
/// trade; ACC3 is blocked; ACC4 has small limits for the risk rejects.
const VENUE: &str = r#"
[engine]
snapshot_every = 0
max_orders = 100000

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
self_trade = "cancel-aggressor"
[accounts.limits]
max_order_qty = "1000000"
max_order_notional = "100000000"
max_open_orders = 100000
credit_limit = "1000000000"
max_position = "10000000"

[[accounts]]
name = "ACC2"
self_trade = "cancel-aggressor"
[accounts.limits]
max_order_qty = "1000000"
max_order_notional = "100000000"
max_open_orders = 100000
credit_limit = "1000000000"
max_position = "10000000"

[[accounts]]
name = "ACC3"
self_trade = "cancel-aggressor"
blocked = true
[accounts.limits]
max_order_qty = "1000000"
max_order_notional = "100000000"
max_open_orders = 100000
credit_limit = "1000000000"
max_position = "10000000"

[[accounts]]
name = "ACC4"
self_trade = "cancel-aggressor"
[accounts.limits]
max_order_qty = "1000"
max_order_notional = "100000"
max_open_orders = 3
credit_limit = "200000"
max_position = "1500"

[[sessions]]
comp_id = "CLIENT1"
account = "ACC1"

[[sessions]]
comp_id = "CLIENT2"
account = "ACC2"

[[sessions]]
comp_id = "BLOCKED"
account = "ACC3"

[[sessions]]
comp_id = "SMALL"
account = "ACC4"
"#;

const T60: &str = "20260101-00:00:00.000";

fn start(dir: &std::path::Path) -> Gateway {
    Gateway::start_with_venue(dir, CFG, VENUE)
}

fn logged_on(gw: &Gateway, comp_id: &str) -> Client {
    let mut c = Client::connect(gw.port, comp_id, "FIXGW");
    let reply = c.logon(&[]);
    assert_eq!(reply.get_str(49), Some("FIXGW"));
    c
}

/// Field `tag` as a string; panics with the whole message when absent.
fn s(m: &Message, tag: i32) -> &str {
    m.get_str(tag)
        .unwrap_or_else(|| panic!("tag {tag} missing in {m:?}"))
}

/// Field `tag` as a decimal (compared by value, as a client would).
fn d(m: &Message, tag: i32) -> Decimal {
    Decimal::from_str(s(m, tag))
        .unwrap_or_else(|e| panic!("tag {tag} not a decimal ({e}) in {m:?}"))
}

fn dec(v: &str) -> Decimal {
    Decimal::from_str(v).unwrap()
}

/// Asserts string-valued fields.
fn check(m: &Message, expected: &[(i32, &str)]) {
    for (tag, v) in expected {
        assert_eq!(m.get_str(*tag), Some(*v), "tag {tag} in {m:?}");
    }
}

/// Asserts numeric fields by value.
fn check_num(m: &Message, expected: &[(i32, &str)]) {
    for (tag, v) in expected {
        assert_eq!(d(m, *tag), dec(v), "tag {tag} in {m:?}");
    }
}

/// Sends a limit NewOrderSingle.
fn new_order(c: &mut Client, cl: &str, side: &str, qty: &str, px: &str, sym: &str) {
    c.limit_order(cl, side, qty, px, sym);
}

/// Sends a limit order and checks its 150=0 acknowledgement.
fn rest(c: &mut Client, cl: &str, side: &str, qty: &str, px: &str, sym: &str) -> Message {
    new_order(c, cl, side, qty, px, sym);
    let er = c.expect("8");
    check(
        er_ok(&er),
        &[
            (150, "0"),
            (39, "0"),
            (11, cl),
            (54, side),
            (55, sym),
            (40, "2"),
        ],
    );
    check_num(&er, &[(38, qty), (44, px), (151, qty), (14, "0"), (6, "0")]);
    assert!(!er.has(31) && !er.has(32), "no fill on a New: {er:?}");
    er
}

/// Returns the message after checking the fields every ExecutionReport must have.
fn er_ok(er: &Message) -> &Message {
    for tag in [6, 11, 14, 17, 37, 39, 54, 55, 60, 150, 151] {
        assert!(er.has(tag), "ExecutionReport without tag {tag}: {er:?}");
    }
    er
}

/// Checks a trade report.
#[allow(clippy::too_many_arguments)]
fn check_fill(
    er: &Message,
    cl: &str,
    ord_status: &str,
    last_qty: &str,
    last_px: &str,
    cum: &str,
    leaves: &str,
    avg: &str,
    liquidity: &str,
) {
    er_ok(er);
    check(
        er,
        &[
            (35, "8"),
            (150, "F"),
            (39, ord_status),
            (11, cl),
            (851, liquidity),
        ],
    );
    check_num(
        er,
        &[
            (32, last_qty),
            (31, last_px),
            (14, cum),
            (151, leaves),
            (6, avg),
        ],
    );
    assert!(er.has(880), "fill without TrdMatchID: {er:?}");
}

fn send_reject_expect(
    c: &mut Client,
    cl: &str,
    side: &str,
    qty: &str,
    px: &str,
    sym: &str,
) -> Message {
    new_order(c, cl, side, qty, px, sym);
    let er = c.expect("8");
    check(
        &er,
        &[(150, "8"), (39, "8"), (11, cl), (54, side), (55, sym)],
    );
    check_num(&er, &[(151, "0"), (14, "0")]);
    assert!(er.has(103), "reject without OrdRejReason: {er:?}");
    assert!(!s(&er, 58).is_empty(), "reject without Text: {er:?}");
    er
}

/// Nothing more arrives within a short while.
fn quiet(c: &mut Client) {
    if let Some(m) = c.recv(Duration::from_millis(200)) {
        panic!("unexpected message for {}: {m:?}", c.sender);
    }
}

#[test]
fn resting_crossing_partial_and_full_fills_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut c1 = logged_on(&gw, "CLIENT1");
    let mut c2 = logged_on(&gw, "CLIENT2");

    // Two resting sells from CLIENT1 at different prices.
    let s1 = rest(&mut c1, "S1", "2", "100", "150.00", "AAPL");
    check(&s1, &[(1, "ACC1"), (59, "0")]);
    let s2 = rest(&mut c1, "S2", "2", "200", "150.50", "AAPL");
    assert_ne!(s(&s1, 37), s(&s2, 37), "OrderIDs differ");
    assert_ne!(s(&s1, 17), s(&s2, 17), "ExecIDs differ");
    quiet(&mut c2);

    // CLIENT2 buys 250 @ 151: fills 100 @ 150.00 and 150 @ 150.50.
    new_order(&mut c2, "B1", "1", "250", "151.00", "AAPL");
    let ack = c2.expect("8");
    check(
        er_ok(&ack),
        &[(150, "0"), (39, "0"), (11, "B1"), (1, "ACC2")],
    );
    check_num(&ack, &[(14, "0"), (151, "250")]);
    let t1 = c2.expect("8");
    check_fill(&t1, "B1", "1", "100", "150.00", "100", "150", "150.00", "2");
    let t2 = c2.expect("8");
    // AvgPx = (100 x 150.00 + 150 x 150.50) / 250 = 150.30
    check_fill(&t2, "B1", "2", "150", "150.50", "250", "0", "150.30", "2");
    assert_eq!(s(&t1, 37), s(&ack, 37));

    // The resting side hears of both trades on its own session.
    let m1 = c1.expect("8");
    check_fill(&m1, "S1", "2", "100", "150.00", "100", "0", "150.00", "1");
    assert_eq!(s(&m1, 37), s(&s1, 37));
    let m2 = c1.expect("8");
    check_fill(&m2, "S2", "1", "150", "150.50", "150", "50", "150.50", "1");
    assert_eq!(s(&m2, 37), s(&s2, 37));
    // The same trade has the same TrdMatchID on both sides, distinct ones differ.
    assert_eq!(s(&m1, 880), s(&t1, 880));
    assert_eq!(s(&m2, 880), s(&t2, 880));
    assert_ne!(s(&t1, 880), s(&t2, 880));
    let exec_ids: std::collections::HashSet<&str> = [&ack, &t1, &t2, &m1, &m2, &s1, &s2]
        .iter()
        .map(|m| s(m, 17))
        .collect();
    assert_eq!(exec_ids.len(), 7, "ExecIDs are unique");
    quiet(&mut c1);
    quiet(&mut c2);

    // The rest of S2 (50) is taken by a second buy: S2 is now filled.
    new_order(&mut c2, "B2", "1", "80", "150.50", "AAPL");
    let ack = c2.expect("8");
    check(&ack, &[(150, "0"), (11, "B2")]);
    let t3 = c2.expect("8");
    check_fill(&t3, "B2", "1", "50", "150.50", "50", "30", "150.50", "2");
    let m3 = c1.expect("8");
    check_fill(&m3, "S2", "2", "50", "150.50", "200", "0", "150.50", "1");
    assert_eq!(s(&m3, 880), s(&t3, 880));
    // B2's remaining 30 rests: a status request says so.
    c2.send("H", &[(11, "B2"), (54, "1"), (55, "AAPL"), (790, "Q1")]);
    let st = c2.expect("8");
    check(
        er_ok(&st),
        &[(150, "I"), (39, "1"), (11, "B2"), (790, "Q1")],
    );
    check_num(&st, &[(14, "50"), (151, "30"), (6, "150.50"), (38, "80")]);
    assert_eq!(s(&st, 37), s(&ack, 37));
    // A filled order's status is 39=2.
    c1.send("H", &[(11, "S1"), (54, "2"), (55, "AAPL")]);
    let st = c1.expect("8");
    check(&st, &[(150, "I"), (39, "2"), (11, "S1")]);
    check_num(&st, &[(14, "100"), (151, "0"), (6, "150")]);
    quiet(&mut c1);
    quiet(&mut c2);
}

#[test]
fn cancel_replace_priority_status_and_mass_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut c1 = logged_on(&gw, "CLIENT1");
    let mut c2 = logged_on(&gw, "CLIENT2");

    // Cancel.
    let o = rest(&mut c1, "C1", "1", "100", "149.00", "AAPL");
    c1.send(
        "F",
        &[
            (11, "C1-X"),
            (41, "C1"),
            (54, "1"),
            (55, "AAPL"),
            (38, "100"),
            (60, T60),
        ],
    );
    let er = c1.expect("8");
    check(
        er_ok(&er),
        &[(150, "4"), (39, "4"), (11, "C1-X"), (41, "C1")],
    );
    check_num(&er, &[(151, "0"), (14, "0")]);
    assert_eq!(s(&er, 37), s(&o, 37));
    // Cancelling it again: too late (the order is done).
    c1.send(
        "F",
        &[
            (11, "C1-Y"),
            (41, "C1-X"),
            (54, "1"),
            (55, "AAPL"),
            (38, "100"),
            (60, T60),
        ],
    );
    let rj = c1.expect("9");
    check(
        &rj,
        &[
            (11, "C1-Y"),
            (41, "C1-X"),
            (434, "1"),
            (102, "0"),
            (39, "4"),
        ],
    );

    // Cancel of an unknown order.
    c1.send(
        "F",
        &[
            (11, "C9-X"),
            (41, "NOPE"),
            (54, "1"),
            (55, "AAPL"),
            (38, "1"),
            (60, T60),
        ],
    );
    let rj = c1.expect("9");
    check(&rj, &[(11, "C9-X"), (41, "NOPE"), (434, "1"), (102, "1")]);
    assert!(rj.has(37) && rj.has(39) && rj.has(58), "{rj:?}");
    // Replace of an unknown order: 434=2.
    c1.send(
        "G",
        &[
            (11, "C9-Y"),
            (41, "NOPE"),
            (54, "1"),
            (55, "AAPL"),
            (38, "1"),
            (40, "2"),
            (44, "149"),
            (60, T60),
        ],
    );
    let rj = c1.expect("9");
    check(&rj, &[(11, "C9-Y"), (41, "NOPE"), (434, "2"), (102, "1")]);

    // Replace up and down (MSFT).
    let r = rest(&mut c1, "R1", "1", "100", "400.00", "MSFT");
    let replace = |c: &mut Client, cl: &str, orig: &str, qty: &str, px: &str, sym: &str| {
        c.send(
            "G",
            &[
                (11, cl),
                (41, orig),
                (54, "1"),
                (55, sym),
                (38, qty),
                (40, "2"),
                (44, px),
                (60, T60),
            ],
        );
    };
    replace(&mut c1, "R2", "R1", "300", "400.00", "MSFT");
    let er = c1.expect("8");
    check(er_ok(&er), &[(150, "5"), (39, "0"), (11, "R2"), (41, "R1")]);
    check_num(&er, &[(38, "300"), (44, "400"), (151, "300"), (14, "0")]);
    assert_eq!(s(&er, 37), s(&r, 37), "a replace keeps the OrderID");
    replace(&mut c1, "R3", "R2", "40", "399.50", "MSFT");
    let er = c1.expect("8");
    check(&er, &[(150, "5"), (39, "0"), (11, "R3"), (41, "R2")]);
    check_num(&er, &[(38, "40"), (44, "399.50"), (151, "40")]);
    // Replacing below the filled quantity: partly fill R3 first (10 of 40).
    new_order(&mut c2, "MS1", "2", "10", "399.50", "MSFT");
    check(&c2.expect("8"), &[(150, "0")]);
    check_fill(
        &c2.expect("8"),
        "MS1",
        "2",
        "10",
        "399.50",
        "10",
        "0",
        "399.50",
        "2",
    );
    check_fill(
        &c1.expect("8"),
        "R3",
        "1",
        "10",
        "399.50",
        "10",
        "30",
        "399.50",
        "1",
    );
    replace(&mut c1, "R5", "R3", "60", "399.50", "MSFT");
    let er = c1.expect("8");
    // OrderQty 60 with 10 filled: 50 left, the partial fill status stays.
    check(&er, &[(150, "5"), (39, "1"), (11, "R5"), (41, "R3")]);
    check_num(&er, &[(38, "60"), (151, "50"), (14, "10"), (6, "399.50")]);
    replace(&mut c1, "R6", "R5", "10", "399.50", "MSFT");
    let rj = c1.expect("9");
    check(&rj, &[(434, "2"), (11, "R6"), (41, "R5"), (39, "1")]);

    // Priority: a quantity decrease keeps it...
    rest(&mut c1, "Q1", "1", "100", "147.00", "AAPL");
    rest(&mut c1, "Q2", "1", "100", "147.00", "AAPL");
    replace(&mut c1, "Q1b", "Q1", "60", "147.00", "AAPL");
    check(&c1.expect("8"), &[(150, "5"), (11, "Q1b")]);
    new_order(&mut c2, "QS", "2", "60", "147.00", "AAPL");
    check(&c2.expect("8"), &[(150, "0")]);
    check_fill(
        &c2.expect("8"),
        "QS",
        "2",
        "60",
        "147.00",
        "60",
        "0",
        "147.00",
        "2",
    );
    check_fill(
        &c1.expect("8"),
        "Q1b",
        "2",
        "60",
        "147.00",
        "60",
        "0",
        "147.00",
        "1",
    );
    // ...a price change loses it: P1 entered first, moves to P2's price and
    // queues behind it, so a sell of 100 fills P2.
    rest(&mut c1, "P1", "1", "100", "148.50", "AAPL");
    rest(&mut c1, "P2", "1", "100", "149.00", "AAPL");
    replace(&mut c1, "P1b", "P1", "100", "149.00", "AAPL");
    let er = c1.expect("8");
    check(&er, &[(150, "5"), (11, "P1b"), (41, "P1")]);
    check_num(&er, &[(44, "149")]);
    new_order(&mut c2, "PS", "2", "100", "149.00", "AAPL");
    check(&c2.expect("8"), &[(150, "0")]);
    check_fill(
        &c2.expect("8"),
        "PS",
        "2",
        "100",
        "149.00",
        "100",
        "0",
        "149.00",
        "2",
    );
    check_fill(
        &c1.expect("8"),
        "P2",
        "2",
        "100",
        "149.00",
        "100",
        "0",
        "149.00",
        "1",
    );
    quiet(&mut c1);
    quiet(&mut c2);

    // Status request of a working order and of an unknown one.
    c1.send("H", &[(11, "P1b"), (54, "1"), (55, "AAPL")]);
    let st = c1.expect("8");
    check(er_ok(&st), &[(150, "I"), (39, "0"), (11, "P1b")]);
    check_num(&st, &[(38, "100"), (151, "100"), (14, "0"), (44, "149")]);
    c1.send("H", &[(11, "WHO"), (54, "1"), (55, "AAPL")]);
    let st = c1.expect("8");
    check(&st, &[(150, "I"), (11, "WHO")]);

    // Mass cancel of everything ACC1 has working: P1b (AAPL), Q2 (AAPL), R5 (MSFT).
    // CLIENT2's own working order is not touched.
    rest(&mut c2, "K1", "2", "5", "170.00", "AAPL");
    c1.send("q", &[(11, "MC1"), (530, "7"), (60, T60)]);
    let mut cancelled = Vec::new();
    let report = loop {
        let m = c1
            .recv(Duration::from_secs(10))
            .expect("mass cancel replies");
        match m.msg_type() {
            b"8" => {
                check(er_ok(&m), &[(150, "4"), (39, "4")]);
                check_num(&m, &[(151, "0")]);
                cancelled.push(s(&m, 11).to_string());
            }
            b"r" => break m,
            _ => panic!("unexpected {m:?}"),
        }
    };
    cancelled.sort();
    assert_eq!(cancelled, ["P1b", "Q2", "R5"]);
    check(&report, &[(11, "MC1"), (530, "7"), (531, "7"), (533, "3")]);
    assert!(report.has(37) && report.has(60), "{report:?}");
    quiet(&mut c1);
    quiet(&mut c2);
    c1.send("H", &[(11, "Q2"), (54, "1"), (55, "AAPL")]);
    check(&c1.expect("8"), &[(150, "I"), (39, "4")]);
    c2.send("H", &[(11, "K1"), (54, "2"), (55, "AAPL")]);
    check(&c2.expect("8"), &[(150, "I"), (39, "0")]);
    // Mass cancel by symbol with nothing left: zero affected.
    c1.send("q", &[(11, "MC2"), (530, "1"), (55, "AAPL"), (60, T60)]);
    let report = c1.expect("r");
    check(
        &report,
        &[
            (11, "MC2"),
            (530, "1"),
            (531, "1"),
            (533, "0"),
            (55, "AAPL"),
        ],
    );
}

#[test]
fn every_reject_has_exec_type_8_a_reason_and_a_text() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut small = logged_on(&gw, "SMALL");
    let mut blocked = logged_on(&gw, "BLOCKED");
    let mut c1 = logged_on(&gw, "CLIENT1");

    // Blocked account (kill switch).
    let er = send_reject_expect(&mut blocked, "X1", "1", "10", "150.00", "AAPL");
    check(&er, &[(103, "0"), (1, "ACC3")]);
    assert!(s(&er, 58).contains("blocked"), "{er:?}");

    // Unknown symbol.
    let er = send_reject_expect(&mut c1, "U1", "1", "10", "1.00", "ZZZZ");
    check(&er, &[(103, "1")]);

    // Price band: AAPL trades within [120, 180].
    let er = send_reject_expect(&mut small, "PB1", "1", "10", "180.01", "AAPL");
    check(&er, &[(103, "3")]);
    assert!(s(&er, 58).contains("band"), "{er:?}");
    let er = send_reject_expect(&mut small, "PB2", "2", "10", "119.99", "AAPL");
    check(&er, &[(103, "3")]);

    // Max order quantity 1000.
    let er = send_reject_expect(&mut small, "MQ", "1", "1001", "150.00", "AAPL");
    check(&er, &[(103, "3")]);
    assert!(
        s(&er, 58).contains("1001") && s(&er, 58).contains("1000"),
        "{er:?}"
    );

    // Max order notional 100000: 700 x 150 = 105000.
    let er = send_reject_expect(&mut small, "MN", "1", "700", "150.00", "AAPL");
    check(&er, &[(103, "3")]);
    assert!(s(&er, 58).contains("notional"), "{er:?}");

    // Working buys use 180000 of the 200000 credit and 1200 of the 1500 position.
    rest(&mut small, "A", "1", "600", "150.00", "AAPL");
    rest(&mut small, "B", "1", "600", "150.00", "AAPL");
    // Max position: 1200 + 400 = 1600 > 1500.
    let er = send_reject_expect(&mut small, "MP", "1", "400", "125.00", "AAPL");
    check(&er, &[(103, "3")]);
    assert!(s(&er, 58).contains("osition"), "{er:?}");
    // Credit limit: 180000 + 200 x 140 = 208000 > 200000.
    let er = send_reject_expect(&mut small, "CL", "1", "200", "140.00", "AAPL");
    check(&er, &[(103, "3")]);
    assert!(s(&er, 58).to_lowercase().contains("credit"), "{er:?}");
    // Max open orders 3: a third order rests, a fourth is refused.
    rest(&mut small, "S", "2", "100", "170.00", "AAPL");
    let er = send_reject_expect(&mut small, "MO", "2", "100", "170.00", "AAPL");
    check(&er, &[(103, "3")]);
    assert!(s(&er, 58).contains("open orders"), "{er:?}");

    // Duplicate ClOrdID of a live order ("A" is working)...
    let er = send_reject_expect(&mut small, "A", "1", "1", "150.00", "AAPL");
    check(&er, &[(103, "6")]);
    // ...and the original is untouched.
    small.send("H", &[(11, "A"), (54, "1"), (55, "AAPL")]);
    let st = small.expect("8");
    check(&st, &[(150, "I"), (39, "0")]);
    check_num(&st, &[(38, "600"), (151, "600")]);
    // A replace that breaks a limit is an OrderCancelReject, the order stays.
    small.send(
        "G",
        &[
            (11, "A2"),
            (41, "A"),
            (54, "1"),
            (55, "AAPL"),
            (38, "1001"),
            (40, "2"),
            (44, "150"),
            (60, T60),
        ],
    );
    let rj = small.expect("9");
    check(&rj, &[(434, "2"), (11, "A2"), (41, "A"), (39, "0")]);
    assert!(rj.has(102) && rj.has(58), "{rj:?}");

    // A rejected order leaves no trace: the refused ClOrdIDs can be used again.
    small.send(
        "F",
        &[(11, "A-X"), (41, "A"), (54, "1"), (55, "AAPL"), (60, T60)],
    );
    check(&small.expect("8"), &[(150, "4"), (11, "A-X")]);
    rest(&mut small, "MO", "2", "100", "170.00", "AAPL");

    // Unsupported message types: a BusinessMessageReject.
    c1.send("B", &[(148, "hello"), (33, "1"), (58, "news")]);
    let j = c1.expect("j");
    check(&j, &[(372, "B"), (380, "3")]);
    assert!(j.has(45) && j.has(58), "RefSeqNum and Text: {j:?}");
    // Application messages only the gateway sends are not accepted either.
    c1.send("r", &[(11, "MCX"), (37, "X"), (530, "7"), (531, "7")]);
    let j = c1.expect("j");
    check(&j, &[(372, "r"), (380, "3")]);
    // A FIX 4.4 type the gateway's dictionary does not list is refused
    // at the session level (35=3, 373=11) or by the application (35=j).
    c1.send("R", &[(131, "QR1"), (146, "1"), (55, "AAPL")]);
    let m = c1.recv(Duration::from_secs(10)).expect("a reply to 35=R");
    assert!(
        m.msg_type() == b"j" || (m.msg_type() == b"3" && m.get_str(373) == Some("11")),
        "35=R is refused: {m:?}"
    );
    // The session is fine afterwards.
    rest(&mut c1, "OK1", "1", "1", "150.00", "AAPL");
    quiet(&mut c1);
    quiet(&mut small);
    quiet(&mut blocked);
}

#[test]
fn logout_and_reconnect_recover_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut c1 = logged_on(&gw, "CLIENT1");
    let mut c2 = logged_on(&gw, "CLIENT2");

    let ack = rest(&mut c1, "L1", "2", "100", "150.00", "AAPL");
    let last_seen = ack.seq_num().unwrap();

    // CLIENT1 logs out.
    c1.send("5", &[]);
    let lo = c1.expect("5");
    assert_eq!(lo.seq_num(), Some(last_seen + 1));
    assert!(
        c1.expect_disconnect(Duration::from_secs(5)),
        "closed after logout"
    );
    let next_in = c1.seq;
    let expected_out = last_seen + 2;

    // While it is away CLIENT2 trades against its resting order.
    new_order(&mut c2, "LB", "1", "60", "150.00", "AAPL");
    check(&c2.expect("8"), &[(150, "0")]);
    let t = c2.expect("8");
    check_fill(&t, "LB", "2", "60", "150.00", "60", "0", "150.00", "2");

    // CLIENT1 logs on again with its next MsgSeqNum: the Logon reply's
    // MsgSeqNum is beyond what it expects, so it asks for the gap.
    let mut c1 = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1.seq = next_in;
    let reply = c1.logon(&[]);
    let reply_seq = reply.seq_num().unwrap();
    assert_eq!(
        reply_seq,
        expected_out + 1,
        "the fill took {expected_out}: {reply:?}"
    );
    // No ResendRequest from the gateway: our numbers are in order.
    quiet(&mut c1);
    c1.send("2", &[(7, &expected_out.to_string()), (16, "0")]);
    let fill = c1.expect("8");
    assert_eq!(fill.seq_num(), Some(expected_out));
    check(&fill, &[(43, "Y")]);
    assert!(fill.has(122), "OrigSendingTime on a resend: {fill:?}");
    check_fill(&fill, "L1", "1", "60", "150.00", "60", "40", "150.00", "1");
    assert_eq!(s(&fill, 880), s(&t, 880));
    // The Logon reply itself is admin: gap-filled.
    let gf = c1.expect("4");
    assert_eq!(gf.seq_num(), Some(reply_seq));
    check(&gf, &[(123, "Y"), (36, &(reply_seq + 1).to_string())]);
    quiet(&mut c1);

    // Numbering continues in both directions: the order still works.
    c1.send("H", &[(11, "L1"), (54, "2"), (55, "AAPL")]);
    let st = c1.expect("8");
    assert_eq!(st.seq_num(), Some(reply_seq + 1));
    check(&st, &[(150, "I"), (39, "1")]);
    check_num(&st, &[(14, "60"), (151, "40")]);

    // A client that comes back with a MsgSeqNum that is too high gets a
    // ResendRequest for the messages it skipped.
    c1.send("5", &[]);
    c1.expect("5");
    assert!(c1.expect_disconnect(Duration::from_secs(5)));
    let expected_in = c1.seq;
    let mut c1 = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1.seq = expected_in + 5;
    let reply = c1.logon(&[]);
    assert_eq!(reply.seq_num(), Some(reply_seq + 3));
    let rr = c1.expect("2");
    check(&rr, &[(7, &expected_in.to_string())]);
    let end = s(&rr, 16);
    assert!(
        end == "0" || end == (expected_in + 5).to_string(),
        "EndSeqNo 0 or the Logon's number: {rr:?}"
    );
    // Answer with a gap fill; the session then carries on normally.
    let save = c1.seq;
    c1.seq = expected_in;
    c1.send(
        "4",
        &[(43, "Y"), (122, T60), (123, "Y"), (36, &(save).to_string())],
    );
    c1.seq = save;
    c1.send("1", &[(112, "AFTER")]);
    let hb = c1.expect("0");
    check(&hb, &[(112, "AFTER")]);
    quiet(&mut c1);
}

//! The venue configuration changed between two runs, with the binary: the
//! journal is replayed under the configuration each input was processed
//! under (journaled at every start), so a lowered limit applies from the
//! restart on and never undoes what clients were told before it; a change
//! the books cannot follow is refused with the reason.

mod common;

use common::{Client, Gateway, TWO_CLIENTS};

fn logged_on(gw: &Gateway, comp_id: &str, seq: u64) -> Client {
    let mut c = Client::connect(gw.port, comp_id, "FIXGW");
    c.seq = seq;
    c.logon(&[]);
    c
}

/// The next ExecutionReport for ClOrdID `cl` with ExecType `exec_type`,
/// skipping whatever comes before it (a resend's gap fill, other reports).
fn report(c: &mut Client, cl: &str, exec_type: &str) -> fixgw::fix::Message {
    loop {
        let m = c
            .recv(std::time::Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no ExecutionReport {cl} {exec_type}"));
        if m.msg_type() == b"8" && m.get_str(11) == Some(cl) && m.get_str(150) == Some(exec_type) {
            return m;
        }
    }
}

#[test]
fn a_lowered_limit_applies_from_the_restart_and_keeps_what_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let venue = std::fs::read_to_string(common::repo_path("sessions/venue.toml")).unwrap();
    let mut gw = Gateway::start_with_venue(dir.path(), TWO_CLIENTS, &venue);
    let mut c2 = logged_on(&gw, "CLIENT2", 1);
    c2.limit_order("B1", "1", "500", "150.00", "AAPL");
    assert_eq!(c2.expect("8").get_str(150), Some("0"));
    let c2_next = c2.seq;
    drop(c2);
    // Killed, not stopped: the restart replays the journal.
    gw.kill9();

    // ACC2 (CLIENT2's account) may now send orders of 100 at most.
    let limit = "max_order_qty = \"1000000\"";
    assert_eq!(venue.matches(limit).count(), 2, "{venue}");
    let at = venue.rfind(limit).unwrap();
    let tight = format!(
        "{}max_order_qty = \"100\"{}",
        &venue[..at],
        &venue[at + limit.len()..]
    );
    std::fs::write(gw.venue.as_ref().unwrap(), &tight).unwrap();
    gw.restart();

    // The order accepted before is still there: CLIENT1 trades with it.
    let mut c1 = logged_on(&gw, "CLIENT1", 1);
    c1.limit_order("S1", "2", "300", "150.00", "AAPL");
    let first = c1.expect("8");
    assert_eq!(first.get_str(150), Some("0"), "{first:?}");
    let fill = c1.expect("8");
    assert_eq!(
        (fill.get_str(150), fill.get_str(32)),
        (Some("F"), Some("300")),
        "{fill:?}"
    );
    // CLIENT2 asks for what it missed: the fill of its order.
    let mut c2 = logged_on(&gw, "CLIENT2", c2_next);
    c2.send("2", &[(7, "1"), (16, "0")]);
    let fill = report(&mut c2, "B1", "F");
    assert_eq!(
        (fill.get_str(11), fill.get_str(32), fill.get_str(151)),
        (Some("B1"), Some("300"), Some("200")),
        "{fill:?}"
    );
    // A new order over the new limit is refused.
    c2.limit_order("B2", "1", "500", "150.00", "AAPL");
    let reject = report(&mut c2, "B2", "8");
    assert_eq!(reject.get_str(150), Some("8"), "{reject:?}");
    drop((c1, c2));
    gw.kill9();

    // `journal verify` replays it all, switching where the runs did.
    let r = gw.fixgw_on(&["journal", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    // `journal dump` shows which limits were in force from where.
    let r = gw.fixgw_on(&["journal", "dump"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let limits: Vec<String> = r
        .out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["kind"] == "configure")
        .map(|l| l["config"][0]["accounts"][1]["limits"]["max_order_qty"].to_string())
        .collect();
    assert_eq!(limits, ["\"1000000\"", "\"100\""], "{}", r.out);

    // Reordering the instruments would move every order to another book:
    // refused, with both lists.
    let swapped = tight.replacen("symbol = \"AAPL\"", "symbol = \"TMP\"", 1);
    let swapped = swapped
        .replacen("symbol = \"MSFT\"", "symbol = \"AAPL\"", 1)
        .replacen("symbol = \"TMP\"", "symbol = \"MSFT\"", 1);
    std::fs::write(gw.venue.as_ref().unwrap(), &swapped).unwrap();
    let r = gw.fixgw_on(&["run"]);
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(
        r.err
            .contains("cannot take over from the one the store was last run under")
            && r.err.contains("instruments [MSFT"),
        "{}",
        r.err
    );
}

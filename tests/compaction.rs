//! The store compacted (`CompactStore`, with venue checkpoints), end to end
//! with the real binary. At start-up: records of sessions that reset since
//! are deleted at the next start, the books and every session carry on, a
//! resend still finds what the client may ask for, `journal verify` checks
//! the rest from the checkpoint, a start that could only rebuild the venue
//! from the deleted records is refused with the reason, and one under a
//! configuration that only gained an instrument and a session restores.
//! While running: the same records are deleted without a restart, and a
//! kill afterwards loses nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, Gateway};

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
CheckpointInputs=1
[SESSION]
TargetCompID=CLIENT1
[SESSION]
TargetCompID=CLIENT2
"
);

/// Logged on with ResetSeqNumFlag=Y: both sides start over at 1.
fn logged_on(gw: &Gateway, comp_id: &str) -> Client {
    let mut c = Client::connect(gw.port, comp_id, "FIXGW");
    c.logon(&[(141, "Y")]);
    c
}

/// Sends a limit order; returns its first ExecutionReport's ExecType.
fn order(c: &mut Client, cl: &str, side: &str, qty: &str, px: &str, sym: &str) -> String {
    c.limit_order(cl, side, qty, px, sym);
    let er = c.expect("8");
    er.get_str(150).unwrap_or_default().to_string()
}

/// The batch the newest venue checkpoint follows (0: none).
fn checkpoint_after(data: &Path) -> u64 {
    std::fs::read(data.join("fixgw-venue-checkpoint"))
        .ok()
        .and_then(|b| {
            b.get(..8)
                .map(|h| u64::from_be_bytes(h.try_into().unwrap()))
        })
        .unwrap_or(0)
}

/// Waits until the checkpoint thread has caught up: the newest checkpoint
/// moved past `before` and then stays put for a while.
fn checkpoints_settle(data: &Path, before: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (checkpoint_after(data), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = checkpoint_after(data);
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > before && last.1.elapsed() > Duration::from_millis(500) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no venue checkpoint after batch {before}: {now}"
        );
    }
}

/// A gateway on `dir` with both clients logged on (ResetSeqNumFlag=Y).
fn started(dir: &Path) -> (Gateway, Client, Client) {
    let gw = Gateway::start(dir, CFG);
    let c1 = logged_on(&gw, "CLIENT1");
    let c2 = logged_on(&gw, "CLIENT2");
    (gw, c1, c2)
}

/// The first day ends once its checkpoints are stored: both clients log
/// out; the next day they log on again with ResetSeqNumFlag=Y, which voids
/// what they were sent.
fn next_day(gw: &Gateway, mut c1: Client, mut c2: Client) -> (Client, Client) {
    checkpoints_settle(&gw.data, 0);
    for c in [&mut c1, &mut c2] {
        c.send("5", &[]);
        c.expect("5");
    }
    drop((c1, c2));
    (logged_on(gw, "CLIENT1"), logged_on(gw, "CLIENT2"))
}

/// Logged on again after a restart, carrying on from MsgSeqNum `seq`.
fn reconnect(gw: &Gateway, comp_id: &str, seq: u64) -> Client {
    let mut c = Client::connect(gw.port, comp_id, "FIXGW");
    c.seq = seq;
    c.logon(&[]);
    c
}

/// The first day: CLIENT1 sells 100 AAPL at 150, CLIENT2 buys 60 of them,
/// CLIENT1 bids for 10 MSFT at 400.
fn first_day(c1: &mut Client, c2: &mut Client) {
    assert_eq!(order(c1, "S1", "2", "100", "150.00", "AAPL"), "0");
    assert_eq!(order(c2, "B1", "1", "60", "150.00", "AAPL"), "0");
    assert_eq!(c2.expect("8").get_str(150), Some("F"));
    assert_eq!(c1.expect("8").get_str(150), Some("F"));
    assert_eq!(order(c1, "M1", "1", "10", "400.00", "MSFT"), "0");
}

/// CLIENT2 takes what rests from both days (the books came back whole):
/// AAPL sell 40 at 150, MSFT buy 10 at 400, and the second day's MSFT
/// sell 5 at 401.
fn trade_what_rests(c2: &mut Client) {
    assert_eq!(order(c2, "B2", "1", "40", "150.00", "AAPL"), "0");
    assert_eq!(c2.expect("8").get_str(150), Some("F"));
    assert_eq!(order(c2, "S2", "2", "10", "400.00", "MSFT"), "0");
    assert_eq!(c2.expect("8").get_str(150), Some("F"));
    assert_eq!(order(c2, "B3", "1", "5", "401.00", "MSFT"), "0");
    let fill = c2.expect("8");
    assert_eq!(
        (fill.get_str(150), fill.get_str(32)),
        (Some("F"), Some("5"))
    );
}

/// `journal verify` passes, replaying from the venue checkpoint.
fn verifies_from_the_checkpoint(gw: &Gateway) {
    let r = gw.fixgw_on(&["journal", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(
        r.out
            .contains("replayed from the venue checkpoint after it"),
        "{}",
        r.out
    );
}

fn log_lines_with(gw: &Gateway, what: &str) -> Vec<String> {
    std::fs::read_to_string(&gw.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

/// `removed=N` of the last line with `what` ("store compacted").
fn last_removed(gw: &Gateway, what: &str) -> u64 {
    last_count(gw, what, "removed=").expect("a compaction was logged")
}

/// The number after `key` in the last log line with `what`, if any.
fn last_count(gw: &Gateway, what: &str, key: &str) -> Option<u64> {
    let lines = log_lines_with(gw, what);
    let line = lines.last()?;
    let at = line.find(key).expect(key) + key.len();
    let n = line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok());
    Some(n.unwrap_or_else(|| panic!("no count in {line}")))
}

#[test]
fn records_of_reset_sessions_are_deleted_and_the_venue_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, mut c1, mut c2) = started(dir.path());
    first_day(&mut c1, &mut c2);
    let first = checkpoints_settle(&gw.data, 0);
    drop((c1, c2));
    assert!(gw.sigterm(Duration::from_secs(10)).success());

    // A new day: both sessions reset at logon, which voids what they were
    // sent before. One more order, and its checkpoint.
    gw.restart();
    let mut c1 = logged_on(&gw, "CLIENT1");
    let c2 = logged_on(&gw, "CLIENT2");
    assert_eq!(order(&mut c1, "X1", "2", "5", "401.00", "MSFT"), "0");
    checkpoints_settle(&gw.data, first);
    drop((c1, c2));
    assert!(gw.sigterm(Duration::from_secs(10)).success());
    let before = std::fs::read_to_string(&gw.log).unwrap();

    // The first day's records are deleted: while the second day ran (its
    // second checkpoint made the first the fallback), or else at the next
    // start.
    gw.restart();
    assert!(
        log_lines_with(&gw, "venue restored from its checkpoint").len() >= 2,
        "{before}"
    );
    let removed: u64 = ["store compacted while running", "store compacted: "]
        .into_iter()
        .filter(|what| !log_lines_with(&gw, what).is_empty())
        .map(|what| last_removed(&gw, what))
        .sum();
    assert!(
        removed > 0,
        "nothing compacted:\n{}",
        std::fs::read_to_string(&gw.log).unwrap()
    );

    // The books are as they were: the AAPL sell's 40 and the MSFT buy rest,
    // and so does the second day's MSFT sell.
    let mut c1 = reconnect(&gw, "CLIENT1", 3);
    // What the session sent since its reset is still there to resend.
    c1.send("2", &[(7, "1"), (16, "0")]);
    assert_eq!(c1.expect("4").get_str(123), Some("Y"));
    let resent = c1.expect("8");
    assert_eq!(
        (resent.get_str(11), resent.get_str(43)),
        (Some("X1"), Some("Y")),
        "{resent:?}"
    );
    let mut c2 = reconnect(&gw, "CLIENT2", 2);
    trade_what_rests(&mut c2);
    let c1_next = c1.seq;
    drop((c1, c2));
    assert!(gw.sigterm(Duration::from_secs(10)).success());

    // `journal verify` replays what is left from the checkpoint.
    verifies_from_the_checkpoint(&gw);

    // A venue file that changes a lot size cannot take over the books
    // (their quantities are in lots): the start is refused, and says why.
    let venue = dir.path().join("other-venue.toml");
    let toml = std::fs::read_to_string(common::repo_path("sessions/venue.toml")).unwrap();
    std::fs::write(
        &venue,
        toml.replace("lot_size = \"1\"", "lot_size = \"10\""),
    )
    .unwrap();
    gw.venue = Some(venue);
    let r = gw.fixgw_on(&["run"]);
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(
        r.err
            .contains("cannot take over from the one the store was last run under")
            && r.err.contains("AAPL tick 0.01 lot 10"),
        "{}",
        r.err
    );

    // What an operator does most: list a new instrument, and a new client
    // session (first in the settings, so every session's place moves).
    // The checkpoint restores under it, CLIENT1 carries on where its
    // sequence numbers were, and the new session trades the new instrument.
    let grown = dir.path().join("grown-venue.toml");
    std::fs::write(
        &grown,
        format!(
            "{toml}\n[[instruments]]\nsymbol = \"NEWSYM\"\ntick_size = \"0.01\"\nlot_size = \"1\"\n\
             [[accounts]]\nname = \"ACC3\"\n[accounts.limits]\nmax_order_qty = \"1000\"\n\
             max_order_notional = \"1000000\"\nmax_open_orders = 10\ncredit_limit = \"1000000\"\n\
             max_position = \"1000\"\n[[sessions]]\ncomp_id = \"CLIENT3\"\naccount = \"ACC3\"\n"
        ),
    )
    .unwrap();
    let settings = std::fs::read_to_string(&gw.config).unwrap();
    let first = "[SESSION]\nTargetCompID=CLIENT1";
    assert!(settings.contains(first), "{settings}");
    std::fs::write(
        &gw.config,
        settings.replace(first, &format!("[SESSION]\nTargetCompID=CLIENT3\n{first}")),
    )
    .unwrap();
    gw.venue = Some(grown);
    let restored_before = log_lines_with(&gw, "venue restored from its checkpoint").len();
    gw.restart();
    let mut c3 = logged_on(&gw, "CLIENT3");
    assert!(
        log_lines_with(&gw, "venue restored from its checkpoint").len() > restored_before,
        "{}",
        std::fs::read_to_string(&gw.log).unwrap()
    );
    let mut c1 = reconnect(&gw, "CLIENT1", c1_next);
    assert_eq!(order(&mut c3, "N1", "2", "7", "20.00", "NEWSYM"), "0");
    assert_eq!(order(&mut c1, "N2", "1", "7", "20.00", "NEWSYM"), "0");
    assert_eq!(c1.expect("8").get_str(150), Some("F"));
    let fill = c3.expect("8");
    assert_eq!(
        (fill.get_str(150), fill.get_str(1), fill.get_str(32)),
        (Some("F"), Some("ACC3"), Some("7"))
    );
    drop((c1, c3));
    assert!(gw.sigterm(Duration::from_secs(10)).success());
    // The replay switches to the grown configuration where the run did,
    // and matches what was sent.
    let r = gw.fixgw_on(&["journal", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
}

#[test]
fn records_of_reset_sessions_are_deleted_while_running_and_a_kill_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, mut c1, mut c2) = started(dir.path());
    first_day(&mut c1, &mut c2);
    let (mut c1, mut c2) = next_day(&gw, c1, c2);

    // A new day without a restart: both sessions log on again with
    // ResetSeqNumFlag=Y, which voids what they were sent. Two orders, a
    // checkpoint after each: the second makes the first the fallback, and
    // the first day's records go.
    assert_eq!(order(&mut c1, "X1", "2", "5", "401.00", "MSFT"), "0");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while log_lines_with(&gw, "store compacted while running").is_empty() {
        assert!(
            Instant::now() < deadline,
            "no compaction while running:\n{}",
            std::fs::read_to_string(&gw.log).unwrap()
        );
        // Each order is an input: the shadow stores a checkpoint after it.
        n += 1;
        assert_eq!(
            order(&mut c2, &format!("Y{n}"), "1", "1", "130.00", "AAPL"),
            "0"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let removed = last_removed(&gw, "store compacted while running");
    assert!(removed > 0, "{removed}");

    // What CLIENT1 was sent since its reset can still be resent (its
    // Logon is gap-filled).
    c1.send("2", &[(7, "1"), (16, "0")]);
    assert_eq!(c1.expect("4").get_str(123), Some("Y"));
    let resent = c1.expect("8");
    assert_eq!(
        (resent.get_str(11), resent.get_str(43)),
        (Some("X1"), Some("Y")),
        "{resent:?}"
    );
    let (c1_next, c2_next) = (c1.seq, c2.seq);

    // Killed now: the deletions were written with the next batches; the
    // restart restores the venue from a checkpoint and the books are as
    // they were (AAPL sell 40 and MSFT buy 10 from the first day, the
    // second day's MSFT sell 5 and AAPL buy 1).
    drop((c1, c2));
    gw.kill9();
    gw.restart();
    let c1 = reconnect(&gw, "CLIENT1", c1_next);
    let mut c2 = reconnect(&gw, "CLIENT2", c2_next);
    trade_what_rests(&mut c2);
    drop((c1, c2));
    assert!(gw.sigterm(Duration::from_secs(10)).success());

    // The journal was compacted: `journal verify` replays what is left
    // from the checkpoint and checks every stored report against it.
    verifies_from_the_checkpoint(&gw);
}

#[test]
fn a_kill_while_deleting_records_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, mut c1, c2) = started(dir.path());
    // A first day of 300 resting bids, one record each: deleting them takes
    // several steps of the core.
    const BIDS: usize = 300;
    for i in 0..BIDS {
        assert_eq!(
            order(&mut c1, &format!("D{i}"), "1", "1", "130.00", "AAPL"),
            "0"
        );
    }
    let (mut c1, c2) = next_day(&gw, c1, c2);

    // The second day: orders until the first day's records are planned
    // for deletion, three more (each step deletes a chunk, each commit
    // flushes the chunks deleted before it), then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut bids = 0;
    let mut after_plan = 0;
    while after_plan < 3 {
        bids += 1;
        assert_eq!(
            order(&mut c1, &format!("Y{bids}"), "1", "1", "129.00", "AAPL"),
            "0"
        );
        let planned = last_count(&gw, "store compaction while running", "records=");
        if planned.is_none_or(|n| n < BIDS as u64) {
            assert!(
                Instant::now() < deadline,
                "no compaction while running:\n{}",
                std::fs::read_to_string(&gw.log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        } else {
            after_plan += 1;
        }
    }
    let (c1_next, c2_next) = (c1.seq, c2.seq);
    drop((c1, c2));
    gw.kill9();

    // Every bid of both days is still in the book: CLIENT2 sells into all
    // of them, the first day's first (better price), and gets one fill
    // each. Start-up deletes what the kill left of the first day (the
    // deletions flushed before it stay deleted), unless the kill also
    // caught the checkpoint thread between its renames: one checkpoint
    // then, no fallback, nothing deleted at this start.
    gw.restart();
    let left = last_count(&gw, "store compacted: ", "removed=").unwrap_or(0);
    assert!(left <= BIDS as u64 + 1, "{left}");
    let c1 = reconnect(&gw, "CLIENT1", c1_next);
    let mut c2 = reconnect(&gw, "CLIENT2", c2_next);
    let total = BIDS + bids;
    assert_eq!(
        order(&mut c2, "SELL", "2", &total.to_string(), "129.00", "AAPL"),
        "0"
    );
    let mut fills = Vec::new();
    while fills.len() < total {
        let er = c2.expect("8");
        if er.get_str(11) == Some("SELL") && er.get_str(150) == Some("F") {
            fills.push(er.get_str(31).unwrap_or_default().to_string());
        }
    }
    assert_eq!(fills.iter().filter(|p| p.starts_with("130")).count(), BIDS);
    assert_eq!(fills.iter().filter(|p| p.starts_with("129")).count(), bids);
    drop((c1, c2));
    assert!(gw.sigterm(Duration::from_secs(10)).success());
    verifies_from_the_checkpoint(&gw);
}

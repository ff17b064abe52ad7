//! The operator commands of the real `fixgw` binary, on good and bad input:
//! `check-config`, `sessions`, `store set-seq` / `store reset`, `journal
//! dump`, `journal verify` and `disk-check`, with the exit codes and
//! messages a user sees, against stores written by a real gateway.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{fixgw, repo_path, Client, Gateway, Run};
use fixgw::session::batch_store::SEQ_RESERVE;
use fixgw::session::log_backend::SledBackend;
use serde_json::Value;

const CFG: &str = common::TWO_CLIENTS;

/// Runs a command that must succeed; returns its stdout.
fn ok(args: &[&str]) -> String {
    let r = fixgw(args);
    assert_eq!(r.code, 0, "fixgw {args:?} failed: {}{}", r.out, r.err);
    r.out
}

/// Runs a command that must fail with exit code 1; returns its stderr.
fn fails(args: &[&str]) -> String {
    let r = fixgw(args);
    assert_eq!(r.code, 1, "fixgw {args:?} should fail: {}{}", r.out, r.err);
    r.err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `cmd` with the gateway's `--config` and `--data`.
fn at<'a>(gw: &'a Gateway, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut args = cmd.to_vec();
    args.extend_from_slice(&["--config", s(&gw.config), "--data", s(&gw.data)]);
    args
}

fn logged_on(gw: &Gateway, comp_id: &str) -> Client {
    let mut c = Client::connect(gw.port, comp_id, "FIXGW");
    c.logon(&[]);
    c
}

/// Sends a limit order; returns the MsgSeqNum of its acknowledgement.
fn order(c: &mut Client, cl: &str, side: &str, qty: &str, px: &str, sym: &str) -> u64 {
    c.limit_order(cl, side, qty, px, sym);
    let er = c.expect("8");
    assert_eq!(er.get_str(150), Some("0"), "{er:?}");
    er.seq_num().unwrap()
}

/// A gateway (default venue: ACC1 for CLIENT1, ACC2 for CLIENT2) that has
/// seen: CLIENT1 sells 100 AAPL at 150, CLIENT2 buys 60 AAPL at 150 (a
/// trade), CLIENT1 buys 10 MSFT at 400. Returns the stopped gateway.
fn trading_store(dir: &Path) -> Gateway {
    let mut gw = Gateway::start(dir, CFG);
    let mut c1 = logged_on(&gw, "CLIENT1");
    let mut c2 = logged_on(&gw, "CLIENT2");
    order(&mut c1, "S1", "2", "100", "150.00", "AAPL");
    order(&mut c2, "B1", "1", "60", "150.00", "AAPL");
    assert_eq!(c2.expect("8").get_str(150), Some("F"));
    assert_eq!(c1.expect("8").get_str(150), Some("F"));
    order(&mut c1, "M1", "1", "10", "400.00", "MSFT");
    gw.kill9();
    gw
}

#[test]
fn every_command_explains_itself_with_an_example() {
    for cmd in [
        &["check-config"][..],
        &["sessions"],
        &["store", "set-seq"],
        &["store", "reset"],
        &["journal", "dump"],
        &["journal", "verify"],
        &["disk-check"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = ok(&args);
        assert!(out.contains("Example: fixgw "), "{args:?}: {out}");
    }
}

/// `disk-check` measures a directory's disk with a scratch file it removes,
/// and names a directory that is not there.
#[test]
fn disk_check_measures_the_store_directory_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&[
        "disk-check",
        "--data",
        s(dir.path()),
        "--rate",
        "1000",
        "--seconds",
        "1",
    ]);
    assert!(out.contains("1000 records"), "{out}");
    assert!(out.contains("fdatasync µs  p50 "), "{out}");
    assert!(out.contains("record µs     p50 "), "{out}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{out}");

    let missing = dir.path().join("data");
    let err = fails(&["disk-check", "--data", s(&missing)]);
    assert!(
        err.contains("fixgw disk-check: no directory") && err.contains("give --data DIR"),
        "{err}"
    );
}

/// A commit window over 100 ms is refused before anything starts, naming
/// the option and its range.
#[test]
fn run_refuses_a_commit_window_over_100_ms() {
    let r = fixgw(&["run", "--commit-window", "200000"]);
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(
        r.err.contains("--commit-window") && r.err.contains("0..=100000"),
        "{}",
        r.err
    );
}

/// `fixgw run --cpu-wakeup-latency 0`: the kernel grants the request while
/// the gateway serves and withdraws it when the process dies, even by
/// SIGKILL (the request is an open file). Needs root, as the option does.
#[test]
fn run_holds_its_cpu_wakeup_latency_request_until_the_process_ends() {
    use fixgw::cpu_latency::{current, grantable};
    let before = match grantable() {
        Ok(v) => v,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    assert_ne!(before, 0, "another process holds a request of 0 µs");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_with_args(dir.path(), CFG, &["--cpu-wakeup-latency", "0"]);
    let _c1 = logged_on(&gw, "CLIENT1");
    assert_eq!(current(), Some(0), "the gateway serves without its request");
    gw.kill9();
    assert_eq!(current(), Some(before));
}

#[test]
fn check_config_prints_what_would_start() {
    let out = ok(&["check-config"]);
    for want in [
        "sessions/gateway.cfg: OK, 4 session(s)",
        "sessions/venue.toml: OK, 2 instrument(s), 2 account(s)",
        "FIX.4.4:FIXGW->CLIENT1",
        "role order-entry port 9878  account ACC1",
        "FIX.4.4:FIXGW->DROPCOPY",
        "role drop-copy",
        "0.0.0.0:9878  CLIENT1, CLIENT2, DROPCOPY, MDCLIENT",
        "AAPL         tick 0.01",
        "reference 400.00",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("warning"), "{out}");
}

/// Runs check-config on the default files with `edit` applied to one of
/// them (`venue`: the venue file, else the settings); returns the result
/// and the path of the edited file.
fn check_edited(venue: bool, from: &str, to: &str) -> (Run, String) {
    let dir = tempfile::tempdir().unwrap();
    let dict = repo_path("dictionaries/FIX44.xml");
    let read = |f: &str| std::fs::read_to_string(repo_path(f)).unwrap();
    let mut cfg = read("sessions/gateway.cfg").replace("dictionaries/FIX44.xml", s(&dict));
    let mut toml = read("sessions/venue.toml");
    let edited = if venue { &mut toml } else { &mut cfg };
    assert!(edited.contains(from), "{from:?}");
    *edited = edited.replacen(from, to, 1);
    let (cfg_path, venue_path) = (dir.path().join("bad.cfg"), dir.path().join("bad.toml"));
    std::fs::write(&cfg_path, cfg).unwrap();
    std::fs::write(&venue_path, toml).unwrap();
    let run = fixgw(&[
        "check-config",
        "--config",
        s(&cfg_path),
        "--venue",
        s(&venue_path),
    ]);
    let path = if venue { venue_path } else { cfg_path };
    (run, path.display().to_string())
}

#[test]
fn check_config_names_file_and_line_of_every_error() {
    let must_fail = |venue: bool, from: &str, to: &str, want: &str| {
        let (r, path) = check_edited(venue, from, to);
        let want = want.replace("{FILE}", &path);
        assert_eq!(r.code, 1, "{from:?} -> {to:?}: {}{}", r.out, r.err);
        assert!(
            r.err.contains(&want),
            "{from:?} -> {to:?}: want {want:?} in {}",
            r.err
        );
    };
    // Settings: a bad value (file, line, key and what is allowed), a line
    // that is no setting.
    let shipped = std::fs::read_to_string(repo_path("sessions/gateway.cfg")).unwrap();
    let line_of = |text: &str| 1 + shipped.lines().position(|l| l == text).unwrap();
    must_fail(
        false,
        "ResetOnLogon=N",
        "ResetOnLogon=maybe",
        &format!(
            "{{FILE}}:{}: ResetOnLogon=\"maybe\" is invalid",
            line_of("ResetOnLogon=N")
        ),
    );
    must_fail(
        false,
        "TargetCompID=CLIENT2",
        "this is not a setting",
        &format!(
            "{{FILE}}:{}: cannot parse \"this is not a setting\"",
            line_of("TargetCompID=CLIENT2")
        ),
    );
    // Venue: TOML syntax with its line, a bad value, an unknown account.
    must_fail(
        true,
        "lot_size = \"1\"",
        "lot_size = 1x",
        "{FILE}: TOML parse error at line 16",
    );
    must_fail(
        true,
        "tick_size = \"0.01\"",
        "tick_size = \"0\"",
        "{FILE}: instrument AAPL: tick_size must be positive",
    );
    must_fail(
        true,
        "account = \"ACC2\"",
        "account = \"NOPE\"",
        "session CLIENT2 maps to unknown account NOPE",
    );
    // A session without an account is only a warning.
    let (r, _) = check_edited(true, "comp_id = \"CLIENT2\"", "comp_id = \"OTHER\"");
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .contains("warning: order-entry session FIX.4.4:FIXGW->CLIENT2 has no account"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("maps session OTHER to account ACC2, but"),
        "{}",
        r.out
    );

    // Missing files, said once.
    let err = fails(&["check-config", "--config", "/nonexistent/gateway.cfg"]);
    assert_eq!(
        err.trim(),
        "fixgw check-config: /nonexistent/gateway.cfg: No such file or directory (os error 2)"
    );
    let err = fails(&["check-config", "--venue", "/nonexistent/venue.toml"]);
    assert!(
        err.contains("cannot read venue config /nonexistent/venue.toml"),
        "{err}"
    );
}

#[test]
fn set_seq_is_refused_while_the_gateway_runs_and_seen_by_the_client_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), CFG);
    let data = gw.data.clone();
    let mut c1 = logged_on(&gw, "CLIENT1");
    let er_seq = order(&mut c1, "S1", "2", "100", "150.00", "AAPL");
    assert_eq!(er_seq, 2);

    // The gateway holds the store: every store command refuses, nothing changes.
    let in_use = format!(
        "the store in {} is in use by a running gateway (stop it first)",
        data.display()
    );
    for cmd in [
        &["sessions"][..],
        &["store", "set-seq", "--session", "CLIENT1", "--sender", "50"],
        &["store", "reset", "--session", "CLIENT1"],
        &["journal", "dump"],
        &["journal", "verify"],
    ] {
        let args = at(&gw, cmd);
        let err = fails(&args);
        assert!(err.contains(&in_use), "{args:?}: {err}");
    }
    // Still serving: the same session goes on with the next numbers.
    assert_eq!(order(&mut c1, "S2", "2", "1", "150.00", "AAPL"), 3);
    gw.kill9();

    // Stored: CLIENT1 sent Logon + 2 orders (next target 4), we sent Logon +
    // 2 ERs (next sender 4); after the kill the gateway continues after the
    // numbers it had reserved.
    let out = ok(&at(&gw, &["sessions"]));
    let after_kill = (4 + SEQ_RESERVE).to_string();
    assert!(
        out.contains("unclean stop: 4 was next; continues after its reservation"),
        "{out}"
    );
    let row = |out: &str, key: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        row(&out, "FIX.4.4:FIXGW->CLIENT1")[1..4],
        [after_kill.as_str(), "4", "2"],
        "{out}"
    );
    assert_eq!(
        row(&out, "FIX.4.4:FIXGW->CLIENT2")[1..],
        ["1", "1", "0", "-", "no", "record", "yet"],
        "{out}"
    );

    // Bad requests.
    let args = at(
        &gw,
        &["store", "set-seq", "--session", "NOBODY", "--sender", "5"],
    );
    assert!(fails(&args).contains("no session \"NOBODY\" in the store or the settings"));
    let r = fixgw(&[
        "store",
        "set-seq",
        "--session",
        "CLIENT1",
        "--data",
        s(&data),
    ]);
    assert_eq!(r.code, 2, "neither --sender nor --target: {}", r.err);
    let r = fixgw(&[
        "store",
        "set-seq",
        "--session",
        "CLIENT1",
        "--sender",
        "0",
        "--data",
        s(&data),
    ]);
    assert_eq!(r.code, 2, "sequence numbers start at 1: {}", r.err);
    let err = fails(&["sessions", "--data", s(&dir.path().join("nothing"))]);
    assert!(err.contains("no store in"), "{err}");
    assert!(!dir.path().join("nothing").exists(), "no store created");

    // The change, by client CompID, with --data only.
    let out = ok(&[
        "store",
        "set-seq",
        "--session",
        "CLIENT1",
        "--sender",
        "50",
        "--target",
        "7",
        "--data",
        s(&data),
    ]);
    assert!(
        out.contains(
            &format!("FIX.4.4:FIXGW->CLIENT1: next sender {after_kill} -> 50, next target 4 -> 7 (recorded as batch")
        ),
        "{out}"
    );
    assert_eq!(
        row(&ok(&at(&gw, &["sessions"])), "FIX.4.4:FIXGW->CLIENT1")[1..3],
        ["50", "7"]
    );

    // A restarted gateway uses them: the client logs on with MsgSeqNum 7 and
    // the Logon reply carries 50; no ResendRequest (7 was expected).
    gw.restart();
    let mut c1 = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1.seq = 7;
    let reply = c1.logon(&[]);
    assert_eq!(reply.seq_num(), Some(50), "{reply:?}");
    assert!(
        c1.recv(Duration::from_millis(500)).is_none(),
        "nothing else"
    );
    assert_eq!(order(&mut c1, "S3", "2", "1", "150.00", "AAPL"), 51);
}

#[test]
fn reset_starts_one_session_over_and_drops_its_stored_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = trading_store(dir.path());
    let data = gw.data.clone();
    let out = ok(&[
        "store",
        "reset",
        "--session",
        "FIX.4.4:FIXGW->CLIENT1",
        "--data",
        s(&data),
    ]);
    assert!(
        out.contains(&format!("FIX.4.4:FIXGW->CLIENT1: reset: next sender {} -> 1, next target 4 -> 1, 3 stored message(s) dropped", 5 + SEQ_RESERVE)),
        "{out}"
    );
    let out = ok(&["sessions", "--config", s(&gw.config), "--data", s(&data)]);
    let c1 = out.lines().find(|l| l.contains("->CLIENT1")).unwrap();
    let c2 = out.lines().find(|l| l.contains("->CLIENT2")).unwrap();
    assert_eq!(
        c1.split_whitespace().collect::<Vec<_>>()[1..4],
        ["1", "1", "0"],
        "{out}"
    );
    assert_eq!(
        c2.split_whitespace().collect::<Vec<_>>()[1..4],
        [(4 + SEQ_RESERVE).to_string().as_str(), "3", "2"],
        "CLIENT2 untouched (after a kill: continues after its reservation): {out}"
    );

    // The client starts at 1 and a resend of everything is only a gap fill.
    gw.restart();
    let mut c1 = logged_on(&gw, "CLIENT1");
    c1.send("2", &[(7, "1"), (16, "0")]);
    let gf = c1.expect("4");
    assert_eq!(gf.get_str(123), Some("Y"), "{gf:?}");
    // The journal is untouched: the books are as they were (the MSFT buy rests).
    let mut c2 = Client::connect(gw.port, "CLIENT2", "FIXGW");
    c2.seq = 3;
    c2.logon(&[]);
    order(&mut c2, "X1", "2", "10", "400.00", "MSFT");
    assert_eq!(c2.expect("8").get_str(150), Some("F"));
}

/// Journal lines of a dump.
fn dump(gw: &Gateway, filters: &[&str]) -> Vec<Value> {
    let mut args = at(gw, &["journal", "dump"]);
    args.extend_from_slice(filters);
    ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn orders(lines: &[Value]) -> Vec<(&str, &str)> {
    lines
        .iter()
        .filter(|l| l["kind"] == "fix")
        .map(|l| (l["session"].as_str().unwrap(), l["fix"].as_str().unwrap()))
        .map(|(s, f)| (s, f.split('|').find(|x| x.starts_with("11=")).unwrap()))
        .collect()
}

#[test]
fn journal_dump_shows_inputs_and_events_and_filters_them() {
    let dir = tempfile::tempdir().unwrap();
    let gw = trading_store(dir.path());
    let all = dump(&gw, &[]);
    assert_eq!(
        orders(&all),
        [
            ("CLIENT1", "11=S1"),
            ("CLIENT2", "11=B1"),
            ("CLIENT1", "11=M1")
        ]
    );
    let buy = all
        .iter()
        .find(|l| l["fix"].as_str().is_some_and(|f| f.contains("11=B1")))
        .unwrap();
    assert_eq!(buy["msg_type"], "D");
    assert!(buy["time"].as_str().unwrap().ends_with('Z'), "{buy}");
    assert!(
        buy["fix"].as_str().unwrap().starts_with("8=FIX.4.4|9="),
        "{buy}"
    );
    let trade = buy["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "trade")
        .unwrap_or_else(|| panic!("no trade in {buy}"));
    assert_eq!(trade["symbol"], "AAPL");
    assert_eq!(trade["price"], "150.00");
    assert_eq!(trade["qty"], "60");
    assert_eq!(trade["aggressor"], "buy");
    assert_eq!(trade["maker"]["account"], "ACC1");
    assert_eq!(trade["maker"]["session"], "CLIENT1");
    assert_eq!(trade["maker"]["leaves_qty"], "40");
    assert_eq!(trade["taker"]["account"], "ACC2");
    assert_eq!(trade["taker"]["avg_px"], "150");
    let reports: Vec<&Value> = buy["messages"].as_array().unwrap().iter().collect();
    assert!(
        reports
            .iter()
            .any(|m| m["to"] == "CLIENT1" && m["msg_type"] == "8"),
        "{buy}"
    );

    // Filters: session, symbol, account (message or event), time.
    let c1 = dump(&gw, &["--session", "CLIENT1"]);
    assert!(c1.iter().all(|l| l["session"] == "CLIENT1"), "{c1:?}");
    assert_eq!(orders(&c1), [("CLIENT1", "11=S1"), ("CLIENT1", "11=M1")]);
    assert_eq!(
        orders(&dump(&gw, &["--session", "FIX.4.4:FIXGW->CLIENT2"])),
        [("CLIENT2", "11=B1")]
    );
    assert_eq!(
        orders(&dump(&gw, &["--symbol", "MSFT"])),
        [("CLIENT1", "11=M1")]
    );
    let msft = dump(&gw, &["--symbol", "MSFT"]);
    assert_eq!(msft.len(), 1, "only the MSFT order: {msft:?}");
    assert_eq!(
        orders(&dump(&gw, &["--account", "ACC2"])),
        [("CLIENT2", "11=B1")]
    );
    assert_eq!(
        orders(&dump(&gw, &["--account", "ACC1", "--symbol", "AAPL"])),
        [("CLIENT1", "11=S1"), ("CLIENT2", "11=B1")],
        "the buy traded with ACC1"
    );
    assert!(dump(&gw, &["--account", "NOBODY"]).is_empty());
    assert_eq!(
        orders(&dump(
            &gw,
            &["--from", "2000-01-01", "--to", "2200-01-01T00:00:00Z"]
        ))
        .len(),
        3
    );
    assert!(dump(&gw, &["--from", "2200-01-01"]).is_empty());
    assert!(dump(&gw, &["--to", "20000101-00:00:00"]).is_empty());
    let t = buy["time"].as_str().unwrap();
    assert_eq!(
        orders(&dump(&gw, &["--from", t, "--session", "CLIENT1"])),
        [("CLIENT1", "11=M1")]
    );
    let r = fixgw(&at(&gw, &["journal", "dump", "--from", "yesterday"]));
    assert_eq!(r.code, 2);
    assert!(r.err.contains("\"yesterday\" is not a time"), "{}", r.err);
}

#[test]
fn journal_verify_summarises_and_names_the_bad_batch() {
    let dir = tempfile::tempdir().unwrap();
    let gw = trading_store(dir.path());
    let args = at(&gw, &["journal", "verify"]);
    let out = ok(&args);
    for want in [
        "journal in",
        "orders    3 (3 accepted, 0 rejected)",
        "trades    1",
        "sessions  2",
        "replayed twice with identical events; 5 stored application message(s) match the replay",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(out.contains("inputs    ") && out.contains("fix 3"), "{out}");

    // Damage one record: verify names it and fails; so does a dump.
    let (bad, last) = {
        let (db, tree) = SledBackend::open_tree_for_tool(&gw.data).unwrap();
        let keys: Vec<u64> = tree
            .iter()
            .keys()
            .map(|k| u64::from_be_bytes(k.unwrap().as_ref().try_into().unwrap()))
            .collect();
        let bad = keys[keys.len() / 2];
        let mut v = tree.get(bad.to_be_bytes()).unwrap().unwrap().to_vec();
        let n = v.len();
        v[n - 1] ^= 0xff;
        tree.insert(bad.to_be_bytes(), v).unwrap();
        db.flush().unwrap();
        (bad, *keys.last().unwrap())
    };
    let err = fails(&args);
    assert!(
        err.contains(&format!("batch {bad}: checksum mismatch")),
        "{err}"
    );
    let err = fails(&at(&gw, &["journal", "dump"]));
    assert!(
        err.contains(&format!("batch {bad}: checksum mismatch")),
        "{err}"
    );

    // A missing record is a gap.
    {
        let (db, tree) = SledBackend::open_tree_for_tool(&gw.data).unwrap();
        tree.remove(bad.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = fails(&args);
    assert!(
        err.contains(&format!("batch {}: batch {bad} missing", bad + 1)),
        "{err} (last batch {last})"
    );
}

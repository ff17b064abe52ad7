//! A real disk that fills up (issue 7, disk faults): the store lives on a
//! small tmpfs volume the test mounts; a filler file takes the free space
//! while clients trade. The gateway must refuse orders with a precise
//! answer, keep the sessions up, release nothing that is not written, and
//! resume by itself once there is room; afterwards `journal verify` passes
//! and a restart resends every ExecutionReport a client had received.
//!
//! Mounting needs CAP_SYS_ADMIN (root in the CI container). Where the
//! machine does not allow it, the test says so and checks nothing; the
//! same behaviour is covered in-process with an injected failure
//! (`src/gateway/fault_tests.rs`).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fixgw, Client, Gateway};
use fixgw::fix::time::{format_utc_string, now_utc, Precision};
use fixgw::fix::Message;

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
AdminHttpAddress=off
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
"
);

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the volume has no space left; returns its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    let mut size = chunk.len();
    while size > 0 {
        match f.write(&chunk[..size]) {
            Ok(n) => written += n as u64,
            Err(_) => size /= 2,
        }
    }
    let _ = f.sync_all();
    written
}

fn order(c: &mut Client, cl: &str, side: &str, px: &str) {
    c.limit_order(cl, side, "1", px, "AAPL");
}

/// The next message `wanted` takes, within `timeout` (others skipped).
fn next_where(
    c: &mut Client,
    timeout: Duration,
    wanted: impl Fn(&Message) -> bool,
) -> Option<Message> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let m = c.recv(left)?;
        if wanted(&m) {
            return Some(m);
        }
    }
}

/// The next application message (heartbeats skipped), within `timeout`.
fn next_app(c: &mut Client, timeout: Duration) -> Option<Message> {
    next_where(c, timeout, |m| m.msg_type() != b"0")
}

/// A 24 MiB tmpfs (unmounted when dropped, so bind it first: it is then
/// dropped last), a gateway whose store is on it, CLIENT1 and CLIENT2
/// logged on, and the store directory; None (after saying SKIPPED) where
/// mounting is not allowed.
fn on_small_disk(dir: &Path) -> Option<(Tmpfs, Gateway, Client, Client, PathBuf)> {
    let data = dir.join("data");
    let volume = match Tmpfs::mount(&data, "24m") {
        Ok(v) => v,
        Err(e) => {
            eprintln!("SKIPPED: this machine does not allow mounting a tmpfs ({e}); the in-process fault tests (src/gateway/fault_tests.rs) cover the behaviour");
            return None;
        }
    };
    let gw = Gateway::start(dir, CFG);
    let mut c1 = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1.logon(&[]);
    let mut c2 = Client::connect(gw.port, "CLIENT2", "FIXGW");
    c2.logon(&[]);
    Some((volume, gw, c1, c2, data))
}

/// Fills the disk, then `c` sends buy orders until one is not answered:
/// that order's batch could not be written, so its ExecutionReport is
/// held. Returns its ClOrdID; the ExecIDs of the answered ones go to
/// `exec_ids`.
fn trade_until_held(c: &mut Client, data: &Path, exec_ids: &mut BTreeSet<String>) -> String {
    let filled = fill(&data.join("filler"));
    eprintln!("filler: {filled} bytes");
    let mut sent = 0;
    loop {
        sent += 1;
        assert!(
            sent < 50_000,
            "the store never failed on a full disk ({sent} orders)"
        );
        let cl = format!("b{sent}");
        order(c, &cl, "1", "121");
        match next_app(c, Duration::from_secs(3)) {
            Some(m) => {
                assert_eq!(m.get_str(150), Some("0"), "{m:?}");
                exec_ids.insert(m.get_str(17).unwrap().to_string());
            }
            None => {
                eprintln!("store failed at order {sent}");
                return cl;
            }
        }
    }
}

#[test]
fn a_full_disk_refuses_orders_keeps_sessions_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_volume, mut gw, mut c1, mut c2, data)) = on_small_disk(dir.path()) else {
        return;
    };
    let mut exec_ids = BTreeSet::new();
    let held_order = trade_until_held(&mut c1, &data, &mut exec_ids);
    let filler = data.join("filler");
    let mut record = |m: &Message| {
        if m.msg_type() == b"8" {
            exec_ids.insert(m.get_str(17).unwrap().to_string());
        }
    };

    // CLIENT2 has nothing held: its orders are refused at once with a
    // precise answer, and the session answers test requests.
    order(&mut c2, "s1", "2", "179");
    let refusal = next_app(&mut c2, Duration::from_secs(5)).expect("an answer while down");
    assert_eq!(refusal.msg_type(), b"j", "{refusal:?}");
    assert_eq!(refusal.get_str(380), Some("4"));
    assert_eq!(refusal.get_str(379), Some("s1"));
    assert!(
        refusal
            .get_str(58)
            .unwrap()
            .starts_with("Store cannot write"),
        "{refusal:?}"
    );
    c2.send("1", &[(112, "alive?")]);
    let hb = c2.expect("0");
    assert_eq!(hb.get_str(112), Some("alive?"));
    // CLIENT1's session is up too (its answers wait for the store).
    order(&mut c1, "after", "1", "121");
    assert!(next_app(&mut c1, Duration::from_secs(1)).is_none());

    // Room again: everything held comes out, in order, by itself.
    std::fs::remove_file(&filler).unwrap();
    let first = next_app(&mut c1, Duration::from_secs(10)).expect("the held report");
    assert_eq!(first.get_str(11), Some(held_order.as_str()), "{first:?}");
    assert_eq!(first.get_str(150), Some("0"));
    record(&first);
    let second = next_app(&mut c1, Duration::from_secs(5)).expect("the refusal");
    assert_eq!(
        (second.msg_type(), second.get_str(379)),
        (&b"j"[..], Some("after"))
    );
    // And orders are accepted again.
    order(&mut c2, "s2", "2", "179");
    let ack = next_app(&mut c2, Duration::from_secs(5)).expect("accepted");
    assert_eq!(ack.get_str(150), Some("0"), "{ack:?}");
    order(&mut c1, "b-last", "1", "121");
    let ack = next_app(&mut c1, Duration::from_secs(5)).expect("accepted");
    assert_eq!(ack.get_str(150), Some("0"), "{ack:?}");
    record(&ack);

    // Nothing stored is corrupt, and every report CLIENT1 saw is stored.
    assert!(gw.sigterm(Duration::from_secs(15)).success());
    let config = gw.config.display().to_string();
    let data_arg = data.display().to_string();
    let venue = common::repo_path("sessions/venue.toml")
        .display()
        .to_string();
    let verify = fixgw(&[
        "journal", "verify", "--config", &config, "--venue", &venue, "--data", &data_arg,
    ]);
    assert_eq!(
        verify.code, 0,
        "journal verify: {}{}",
        verify.out, verify.err
    );
    gw.restart();
    let mut c1b = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1b.seq = c1.seq + 1; // the Logout at shutdown
    c1b.logon(&[]);
    c1b.send("2", &[(7, "1"), (16, "0")]);
    let mut resent = BTreeSet::new();
    while let Some(m) = c1b.recv(Duration::from_secs(2)) {
        if m.msg_type() == b"8" {
            assert_eq!(m.get_str(43), Some("Y"));
            resent.insert(m.get_str(17).unwrap().to_string());
        }
    }
    let missing: Vec<_> = exec_ids.difference(&resent).collect();
    assert!(missing.is_empty(), "reports lost: {missing:?}");
    eprintln!(
        "{} reports before, during and after the full disk; all resent after a restart",
        exec_ids.len()
    );
}

/// The next message of type `msg_type` within `timeout`, skipping others.
fn next_of(c: &mut Client, msg_type: &str, timeout: Duration) -> Option<Message> {
    next_where(c, timeout, |m| m.msg_type() == msg_type.as_bytes())
}

/// An OrigSendingTime (122) for a message resent now.
fn orig_sending_time() -> String {
    format_utc_string(now_utc() - 1_000_000_000, Precision::Millis)
}

/// A second fault on top of the first: the gateway is killed while the
/// store cannot write. Nothing of the unwritten batches was durable, so
/// after the restart (with room again) the gateway asks each client for
/// the messages after its last durable one, as after any crash:
/// - CLIENT1's order whose batch could not be written was never answered.
///   Resent with PossDupFlag=Y, as a QuickFIX initiator does, it is
///   processed once; every ExecutionReport CLIENT1 had received is resent.
/// - CLIENT2's order was refused with 35=j while the store was down, and
///   that refusal could not be stored either. A client that holds the
///   refusal final answers the ResendRequest for it with a gap fill (what
///   QuickFIX's DoNotSend gives): nothing is processed for it, the session
///   goes on, and its next order is accepted. (A client that resends it
///   gets it processed then, once: the README says so.)
///
/// Then, with the disk full to the last byte, `journal verify` refuses,
/// saying the disk is full; with 256 KiB free it passes, and the gateway
/// starts and takes a Logon.
#[test]
fn a_kill_while_the_disk_is_full_loses_no_order_and_doubles_none() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_volume, mut gw, mut c1, mut c2, data)) = on_small_disk(dir.path()) else {
        return;
    };
    let mut before = BTreeSet::new();
    let held = trade_until_held(&mut c1, &data, &mut before);
    let filler = data.join("filler");
    let held_seq = c1.seq - 1;
    order(&mut c2, "s1", "2", "179");
    let refusal = next_app(&mut c2, Duration::from_secs(5)).expect("an answer while down");
    assert_eq!(
        (refusal.msg_type(), refusal.get_str(380)),
        (&b"j"[..], Some("4"))
    );
    let refused_seq = c2.seq - 1;

    // Killed with the disk still full; then room again, and a restart.
    gw.kill9();
    std::fs::remove_file(&filler).unwrap();
    gw.restart();

    // CLIENT1: the gateway asks for the held order, which comes again.
    let mut c1b = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1b.seq = c1.seq;
    c1b.logon(&[]);
    let next_out = c1b.seq;
    let rr = next_of(&mut c1b, "2", Duration::from_secs(10)).expect("a ResendRequest");
    assert_eq!(rr.get_str(7), Some(held_seq.to_string().as_str()), "{rr:?}");
    c1b.seq = held_seq;
    let orig = orig_sending_time();
    c1b.send(
        "D",
        &[
            (43, "Y"),
            (122, &orig),
            (11, &held),
            (21, "1"),
            (38, "1"),
            (40, "2"),
            (44, "121"),
            (54, "1"),
            (55, "AAPL"),
            (59, "0"),
            (60, "20260101-00:00:00.000"),
        ],
    );
    c1b.seq = next_out;
    let ack = next_of(&mut c1b, "8", Duration::from_secs(10)).expect("the held order's report");
    assert_eq!(
        (ack.get_str(11), ack.get_str(150)),
        (Some(held.as_str()), Some("0")),
        "{ack:?}"
    );
    let held_exec = ack.get_str(17).unwrap().to_string();
    assert!(!before.contains(&held_exec), "ExecID {held_exec} reused");

    // Everything CLIENT1 was told is still there, and the held order's
    // acknowledgement exists once.
    c1b.send("2", &[(7, "1"), (16, "0")]);
    let mut resent = Vec::new();
    while let Some(m) = c1b.recv(Duration::from_secs(2)) {
        if m.msg_type() == b"8" {
            assert_eq!(m.get_str(43), Some("Y"), "{m:?}");
            resent.push((
                m.get_str(17).unwrap().to_string(),
                m.get_str(11).unwrap().to_string(),
            ));
        }
    }
    let resent_ids: BTreeSet<String> = resent.iter().map(|(id, _)| id.clone()).collect();
    let missing: Vec<_> = before.difference(&resent_ids).collect();
    assert!(missing.is_empty(), "reports lost: {missing:?}");
    let held_reports: Vec<_> = resent.iter().filter(|(_, cl)| *cl == held).collect();
    assert_eq!(
        held_reports,
        [&(held_exec.clone(), held.clone())],
        "the held order is acknowledged exactly once"
    );

    // CLIENT2: asked for the refused order, it gap-fills over it.
    let mut c2b = Client::connect(gw.port, "CLIENT2", "FIXGW");
    c2b.seq = c2.seq;
    c2b.logon(&[]);
    let next_out = c2b.seq;
    let rr = next_of(&mut c2b, "2", Duration::from_secs(10)).expect("a ResendRequest");
    assert_eq!(
        rr.get_str(7),
        Some(refused_seq.to_string().as_str()),
        "{rr:?}"
    );
    c2b.seq = refused_seq;
    let orig = orig_sending_time();
    let new_seq = next_out.to_string();
    c2b.send("4", &[(43, "Y"), (122, &orig), (123, "Y"), (36, &new_seq)]);
    c2b.seq = next_out;
    order(&mut c2b, "s2", "2", "179");
    let ack = next_app(&mut c2b, Duration::from_secs(10)).expect("an answer to s2");
    assert_eq!(
        (ack.msg_type(), ack.get_str(11), ack.get_str(150)),
        (&b"8"[..], Some("s2"), Some("0")),
        "{ack:?}"
    );
    c2b.send("2", &[(7, "1"), (16, "0")]);
    while let Some(m) = c2b.recv(Duration::from_secs(2)) {
        assert_ne!(
            m.get_str(11),
            Some("s1"),
            "the refused order was processed: {m:?}"
        );
    }

    // The disk full again. To the last byte, the store does not open (sled
    // writes a small snapshot file at every open), and the error says why.
    // With 256 KiB free it opens, for an operator command and for the
    // gateway: sled's recovery no longer rewrites the zeros at the end of
    // its last segment, which needed 4-8 MiB.
    assert!(gw.sigterm(Duration::from_secs(15)).success());
    let filled = fill(&filler);
    let venue = common::repo_path("sessions/venue.toml")
        .display()
        .to_string();
    let verify = gw.fixgw_on(&["journal", "verify", "--venue", &venue]);
    assert_eq!(verify.code, 1, "{}{}", verify.out, verify.err);
    assert!(
        verify.err.contains("is full: free some space there"),
        "{}",
        verify.err
    );
    assert!(
        filled > 256 * 1024,
        "only {filled} bytes were free after the restart: recovery took the room"
    );
    let filler_file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    filler_file.set_len(filled - 256 * 1024).unwrap();
    drop(filler_file);
    let verify = gw.fixgw_on(&["journal", "verify", "--venue", &venue]);
    assert_eq!(
        verify.code, 0,
        "journal verify with 256 KiB free: {}{}",
        verify.out, verify.err
    );
    gw.restart();
    let mut c2c = Client::connect(gw.port, "CLIENT2", "FIXGW");
    c2c.seq = c2b.seq + 1; // the Logout at shutdown
    c2c.logon(&[]);
    assert!(gw.sigterm(Duration::from_secs(15)).success());
    eprintln!(
        "{} reports before the kill, the held order {held} processed once after it; the store opens with 256 KiB free",
        before.len()
    );
}

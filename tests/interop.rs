//! Interop with a real QuickFIX engine: `tests/interop/quickfix_client.py`
//! (the `quickfix` Python binding, validating every message it receives
//! against QuickFIX's own FIX44.xml) trades against the real `fixgw` binary
//! from two order-entry sessions, subscribes to market data from MDCLIENT
//! (rebuilding the book from W + X) and logs on as DROPCOPY (a copy of every
//! ExecutionReport and OrderCancelReject of both clients).
//! Missing `quickfix` is a failure, never a skip: run `.ci/install-quickfix`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo_path, Gateway};

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
[SESSION]
TargetCompID=MDCLIENT
SessionRole=market-data
# QuickFIX's stock FIX44.xml has no RptSeq (83) in W or X.
SendRptSeq=N
PersistMessages=N
[SESSION]
TargetCompID=DROPCOPY
SessionRole=drop-copy
"
);

/// The whole client run, logons to logouts.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

#[test]
fn quickfix_clients_trade_subscribe_to_market_data_and_get_drop_copies() {
    let probe = Command::new(python())
        .args(["-c", "import quickfix"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    assert!(
        probe.status.success(),
        "the QuickFIX Python binding is not installed (`import quickfix` failed: {}).\n\
         Run .ci/install-quickfix (builds it with pip, about 6 minutes) and rerun this test.",
        String::from_utf8_lossy(&probe.stderr).trim()
    );

    let dir = tempfile::tempdir().unwrap();
    // The default venue config: AAPL, ACC1 for CLIENT1 and ACC2 for CLIENT2.
    let gw = Gateway::start(dir.path(), CFG);
    let mut child = Command::new(python())
        .arg(repo_path("tests/interop/quickfix_client.py"))
        .args(["--port", &gw.port.to_string(), "--timeout", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start quickfix_client.py");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let gateway_log = std::fs::read_to_string(&gw.log).unwrap_or_default();
    let report = format!(
        "--- client stdout\n{out}\n--- client stderr\n{err}\n--- gateway log\n{gateway_log}"
    );
    match status {
        None => panic!("quickfix_client.py did not finish in {CLIENT_TIMEOUT:?}\n{report}"),
        Some(s) => assert!(s.success(), "quickfix_client.py failed ({s})\n{report}"),
    }
    assert!(out.contains("interop OK"), "{report}");
    assert!(out.contains("market data: "), "{report}");
    print!("{out}");
}

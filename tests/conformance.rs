//! Runs fixgw's own acceptance scenarios (`conformance/scenarios/*.def`)
//! against the real binary started on `sessions/acceptance.cfg`.
//! QuickFIX's own scripts are run by `.ci/run` from `../shared`.

mod common;

use common::{repo_path, Gateway};
use fixgw_conformance::{run_all, RunnerOptions};

#[test]
fn own_scenarios_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(repo_path("sessions/acceptance.cfg")).unwrap();
    let cfg = cfg
        .replace("SocketAcceptPort=5001", "SocketAcceptPort={PORT}")
        .replace(
            "DataDictionary=dictionaries/FIX44.xml",
            "DataDictionary={DICT}",
        );
    let gw = Gateway::start(dir.path(), &cfg);
    let mut scripts: Vec<_> = std::fs::read_dir(repo_path("conformance/scenarios"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "def"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 6, "scenarios missing");
    let opts = RunnerOptions::new("127.0.0.1", gw.port);
    let mut out = Vec::new();
    let summary = run_all(&scripts, &opts, &mut out);
    let report = String::from_utf8_lossy(&out);
    assert_eq!(summary.failed, 0, "{report}");
    assert_eq!(summary.passed, scripts.len(), "{report}");
}

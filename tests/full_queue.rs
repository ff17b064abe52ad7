//! Many sessions at full load: more requests wait for the core than one
//! batch takes (`gateway::core::MAX_BATCH`, 1 024), and none of them may be
//! lost. Ten sessions of the load generator (`fixgw::load`) keep 256 requests each in flight
//! against the running binary; every request must be answered.
//!
//! A build that dropped the first message left over when a batch was full
//! (6903e88) left 1 536-1 838 of 2.2 million requests unanswered in 20 s
//! runs of `benches/load.sh`, and 1 792 in this test's run, done by hand
//! with that build's binary (this one: 0).

mod common;

use common::{repo_path, Gateway};
use fixgw::load::LoadOptions;

const SESSIONS: usize = 10;

#[test]
fn ten_sessions_at_full_load_get_every_request_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(concat!(
        crate::acceptor_defaults!(),
        "ResetOnLogon=Y\nSessionRole=order-entry\nConnectionRateLimit=0\nAdminHttpAddress=off\n"
    ));
    for i in 1..=SESSIONS {
        cfg.push_str(&format!("[SESSION]\nTargetCompID=LOAD{i:02}\n"));
    }
    let venue = std::fs::read_to_string(repo_path("sessions/bench-venue.toml")).unwrap();
    let gw = Gateway::start_with_venue_args(dir.path(), &cfg, &venue, &["--flush", "os"]);
    let opts = LoadOptions {
        port: gw.port,
        sessions: SESSIONS,
        sender_comp_ids: (1..=SESSIONS).map(|i| format!("LOAD{i:02}")).collect(),
        window: 256,
        duration_secs: 4.0,
        warmup_secs: 1.0,
        mix: "60,30,10".parse().unwrap(),
        ..LoadOptions::default()
    };
    let r = common::run_load(&opts);
    let sent = r.orders_sent;
    assert!(sent > 10_000, "too little load to fill a batch:\n{r}");
    assert_eq!(r.unanswered, 0, "requests lost:\n{r}");
    assert_eq!(r.acks, sent, "every request acknowledged:\n{r}");
    assert!(r.errors.is_empty(), "{r}");
}

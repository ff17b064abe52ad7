//! Sequence numbers and stored messages survive `kill -9`: after a restart a
//! client logs on with its next number, the gateway continues its own after
//! the numbers it had reserved (a kill may have hit while the store was
//! failing, when numbers are sent before they are durable; continuing after
//! the reservation means none is ever used twice), and a ResendRequest
//! returns the messages sent before the crash and gap-fills the rest.

mod common;

use std::time::Duration;

use common::{Client, Gateway};
use fixgw::fix::Message;
use fixgw::session::batch_store::SEQ_RESERVE;

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
[SESSION]
TargetCompID=CRASHY
SessionRole=echo
"
);

/// The body of a message (everything after the standard header fields that
/// a resend changes), for comparing a resend with the original.
fn body_without_volatile_header(m: &Message) -> Vec<(i32, Vec<u8>)> {
    m.iter()
        .filter(|(t, _)| ![8, 9, 10, 43, 52, 122].contains(t))
        .map(|(t, v)| (t, v.to_vec()))
        .collect()
}

#[test]
fn sequence_numbers_and_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), CFG);
    let mut c = Client::connect(gw.port, "CRASHY", "FIXGW");
    let reply = c.logon(&[]);
    assert_eq!(reply.seq_num(), Some(1));
    let mut echoes = Vec::new();
    for i in 0..5 {
        let id = format!("ORD{i}");
        c.send(
            "D",
            &[
                (11, &id),
                (21, "1"),
                (38, "100"),
                (40, "1"),
                (54, "1"),
                (55, "AAPL"),
                (60, "20260101-00:00:00"),
            ],
        );
        echoes.push(c.expect("D"));
    }
    assert_eq!(echoes.last().unwrap().seq_num(), Some(6));
    // The echo of the last order was written to the socket only after the
    // store flush, so it is durable now. Kill without any shutdown.
    gw.kill9();
    gw.restart();

    let mut c2 = Client::connect(gw.port, "CRASHY", "FIXGW");
    c2.seq = c.seq;
    let reply = c2.logon(&[]);
    let next = 7 + SEQ_RESERVE;
    assert_eq!(
        reply.seq_num(),
        Some(next),
        "outbound numbering continues after the reservation"
    );
    // Inbound numbering continued too: no ResendRequest follows the Logon.
    c2.send("1", &[(112, "PING")]);
    let hb = c2.expect("0");
    assert_eq!(hb.get(112), Some(&b"PING"[..]));

    c2.send("2", &[(7, "1"), (16, "0")]);
    let gap = c2.expect("4");
    assert_eq!(gap.seq_num(), Some(1));
    assert_eq!(gap.get(36), Some(&b"2"[..]));
    for original in &echoes {
        let resent = c2.expect("D");
        assert_eq!(resent.get(43), Some(&b"Y"[..]));
        assert_eq!(
            resent.get(122),
            original.get(52),
            "OrigSendingTime = original SendingTime"
        );
        assert_eq!(
            body_without_volatile_header(&resent),
            body_without_volatile_header(original)
        );
    }
    // 7 up to the Logon reply and the heartbeat (admin messages): one gap fill.
    let tail = c2.expect("4");
    assert_eq!(tail.seq_num(), Some(7));
    assert_eq!(tail.get_str(123), Some("Y"));
    assert_eq!(tail.get_u64(36), Some(next + 2));
    assert!(c2.recv(Duration::from_millis(300)).is_none());
}

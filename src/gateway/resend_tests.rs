//! A ResendRequest for more messages than the connection's outbound queue
//! holds (a drop-copy consumer back after a long absence) is answered chunk
//! by chunk as the client reads: never a slow-consumer logout, and the wire
//! order is that of a resend sent in one go, with what the session sends
//! meanwhile after it.

use std::sync::Arc;

use crate::fix::Message;
use crate::session::log_backend::MemDisk;

use super::fault_tests::{setup_default, types, Party, SEC, T0};
use super::harness::Harness;

/// Crossing order pairs traded while the drop copy is away (4 copies each).
const PAIRS: usize = 30;

#[test]
fn a_resend_larger_than_the_outbound_queue_streams_as_the_client_reads() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup_default(dir.path(), "MaxOutboundQueue=16\n");
    let disk = MemDisk::new();
    let mut h = Harness::open(&s.settings, Some(&s.venue), Arc::new(disk.backend()), T0).unwrap();
    let mut c1 = Party::logon(&mut h, "CLIENT1", T0);
    let mut c2 = Party::logon(&mut h, "CLIENT2", T0);
    let mut dc = Party::logon(&mut h, "DROPCOPY", T0);
    let dc_next_in = dc.next_in;
    h.disconnect(&mut dc.conn);
    let mut now = T0 + SEC;
    h.step(now);

    // While the drop copy is away, 30 trades: 120 copies, stored for it.
    for k in 0..PAIRS {
        now += SEC / 100;
        c1.order(&mut h, &format!("b{k}"), "1", "10", "150", now);
        c2.order(&mut h, &format!("s{k}"), "2", "10", "150", now);
        h.step(now);
        assert_eq!(types(&c1.recv()), ["8/0", "8/F"]);
        assert_eq!(types(&c2.recv()), ["8/0", "8/F"]);
    }

    // It comes back, expecting what it missed: the gateway's Logon shows
    // the gap, and the client asks for everything from there.
    now += SEC;
    let logon = dc.fix.logon(30, &[], now);
    dc.conn = h.connect(logon);
    h.step(now);
    let got = dc.conn.drain();
    assert_eq!(types(&got), ["A"]);
    let logon_seq = got[0].seq_num().unwrap();
    assert_eq!(logon_seq, dc_next_in + 4 * PAIRS as u64);
    let begin = dc_next_in.to_string();
    dc.send(&mut h, "2", &[(7, &begin), (16, "0")], now);

    // One more trade while the resend is under way: its copies follow it.
    let mut resent: Vec<Message> = Vec::new();
    let mut steps = 0;
    while !dc.conn.is_closed() && steps < 200 {
        steps += 1;
        now += SEC / 1000;
        if steps == 2 {
            c1.order(&mut h, "b-live", "1", "10", "150", now);
            c2.order(&mut h, "s-live", "2", "10", "150", now);
        }
        h.step(now);
        c1.recv();
        c2.recv();
        // The client reads what is queued (at most 16) at each step.
        resent.extend(dc.conn.drain());
        if resent.len() >= 4 * PAIRS + 1 + 4 {
            break;
        }
    }
    assert!(
        !dc.conn.is_closed(),
        "the drop copy was logged out: {:?}",
        types(&resent)
    );
    assert!(
        steps > 4 * PAIRS / 16,
        "the resend should need several steps with a queue of 16, took {steps}"
    );

    // In order: the 120 copies again (43=Y, same numbers), then the gap fill
    // for the Logon's own number, then the live trade's 4 copies.
    let seqs: Vec<u64> = resent.iter().map(|m| m.seq_num().unwrap()).collect();
    let expected: Vec<u64> = (dc_next_in..logon_seq + 1 + 4).collect();
    assert_eq!(seqs, expected, "{:?}", types(&resent));
    for m in &resent[..4 * PAIRS] {
        assert_eq!(m.msg_type(), b"8");
        assert_eq!(m.get_str(43), Some("Y"), "{m:?}");
        assert!(m.get_str(122).is_some(), "{m:?}");
    }
    let gap_fill = &resent[4 * PAIRS];
    assert_eq!(gap_fill.msg_type(), b"4");
    assert_eq!(gap_fill.get_str(123), Some("Y"));
    assert_eq!(gap_fill.get_u64(36), Some(logon_seq + 1));
    for m in &resent[4 * PAIRS + 1..] {
        assert_eq!(m.msg_type(), b"8");
        assert_eq!(m.get_str(43), None, "live copies are not resends: {m:?}");
    }
    let live: Vec<&str> = resent[4 * PAIRS + 1..]
        .iter()
        .map(|m| m.get_str(11).unwrap())
        .collect();
    assert_eq!(live.iter().filter(|c| c.ends_with("-live")).count(), 4);
}

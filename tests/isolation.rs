//! A hostile byte stream on one connection never disturbs another session
//! and never brings the gateway down.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{Client, Gateway};

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
SessionRole=echo
MaxMessageSize=4096
[SESSION]
TargetCompID=GOOD
[SESSION]
TargetCompID=EVIL
"
);

fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bias towards FIX-looking bytes so the framer is exercised.
            match x % 8 {
                0 => 0x01,
                1 => b'=',
                2 => b'8',
                3 => b'9',
                _ => (x >> 8) as u8,
            }
        })
        .collect()
}

#[test]
fn garbage_on_one_connection_does_not_disturb_another_session() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), CFG);
    let mut good = Client::connect(gw.port, "GOOD", "FIXGW");
    good.logon(&[]);

    // The evil session logs on properly, then sends garbage of every kind.
    let mut evil = Client::connect(gw.port, "EVIL", "FIXGW");
    evil.logon(&[]);
    let junk: Vec<Vec<u8>> = vec![
        garbage(1, 5000),
        b"8=FIX.4.4\x019=99999999\x0135=0\x01".to_vec(),
        b"8=FIX.4.4\x019=abc\x0135=0\x0110=000\x01".to_vec(),
        b"8=FIX.4.4\x019=5\x0135=0\x0110=999\x01".to_vec(),
        vec![0u8; 3000],
    ];
    for j in &junk {
        evil.send_raw(j);
    }
    // Unrouted connections sending garbage are closed without a byte.
    for seed in 2..6 {
        let mut raw = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        let _ = raw.write_all(&garbage(seed, 20_000));
    }

    for i in 0..20 {
        let id = format!("T{i}");
        good.send("1", &[(112, &id)]);
        let hb = good.expect("0");
        assert_eq!(hb.get(112), Some(id.as_bytes()));
    }
    good.send(
        "D",
        &[
            (11, "X1"),
            (21, "1"),
            (40, "1"),
            (54, "1"),
            (55, "AAPL"),
            (60, "20260101-00:00:00"),
        ],
    );
    let echo = good.expect("D");
    assert_eq!(echo.get(11), Some(&b"X1"[..]));
    good.send("5", &[]);
    good.expect("5");
    assert!(good.expect_disconnect(Duration::from_secs(5)));
}

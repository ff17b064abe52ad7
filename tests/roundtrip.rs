//! Property: any message the encoder writes parses back to the same fields,
//! passes the framing codec intact, and re-encodes to the same bytes.

use bytes::BytesMut;
use fixgw::fix::{Encoder, FixCodec, Message};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn value() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but SOH (a FIX value cannot contain the delimiter); may be empty.
    proptest::collection::vec(any::<u8>().prop_filter("no SOH", |b| *b != 0x01), 0..40)
}

fn body() -> impl Strategy<Value = Vec<(i32, Vec<u8>)>> {
    proptest::collection::vec(
        (
            (1i32..20_000).prop_filter("not framing", |t| ![8, 9, 10, 35].contains(t)),
            value(),
        ),
        0..30,
    )
}

fn encode(msg_type: &[u8], fields: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.start(msg_type);
    for (t, v) in fields {
        e.field(*t, v);
    }
    e.finish(b"FIX.4.4").to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_parse_encode_is_identity(
        msg_type in proptest::collection::vec(b'0'..=b'z', 1..3),
        fields in body(),
    ) {
        let bytes = encode(&msg_type, &fields);
        // Framing: the codec hands back exactly the message.
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = FixCodec::default().decode(&mut buf).unwrap().expect("one frame");
        prop_assert_eq!(&frame[..], &bytes[..]);
        prop_assert!(buf.is_empty());
        // Parsing: same fields in the same order.
        let m = Message::parse(frame).unwrap();
        prop_assert_eq!(m.msg_type(), &msg_type[..]);
        let parsed: Vec<(i32, Vec<u8>)> = m.iter().skip(3).filter(|(t, _)| *t != 10).map(|(t, v)| (t, v.to_vec())).collect();
        prop_assert_eq!(&parsed, &fields);
        // Re-encoding gives the same bytes.
        prop_assert_eq!(encode(m.msg_type(), &parsed), bytes);
    }
}

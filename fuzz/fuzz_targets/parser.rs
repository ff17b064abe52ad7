//! Arbitrary bytes through the field parser and `Message::parse`: the
//! hand-written splitter must agree with the nom `field` combinator on every
//! input, and whatever parses must survive a round trip through the
//! `Encoder`, the framing codec and the parser again with the same tags and
//! values.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

use fixgw::fix::parser::{parse_fields, parse_fields_nom, parse_message};
use fixgw::fix::{Encoder, FieldSpan, FixCodec, Message};

/// Longest BeginString `Encoder::finish` accepts (a configuration limit).
const MAX_BEGIN_STRING: usize = 24;

fuzz_target!(|data: &[u8]| {
    let mut spans: Vec<FieldSpan> = Vec::new();
    let result = parse_fields(data, &mut spans);
    match parse_fields_nom(data) {
        Ok(want) => assert_eq!((result.clone(), &spans[..]), (Ok(()), &want[..])),
        Err(e) => assert_eq!(result.clone(), Err(e)),
    }
    let fields_ok = result.is_ok();
    if fields_ok {
        for s in &spans {
            assert!(s.start <= s.end && (s.end as usize) < data.len());
            assert_eq!(data[s.end as usize], 0x01, "a value ends at SOH");
        }
        round_trip_body(data, &spans);
    }

    let mut msg_spans: Vec<FieldSpan> = Vec::new();
    let message_ok = parse_message(data, &mut msg_spans).is_ok();
    assert!(
        !message_ok || fields_ok,
        "a message is a sequence of fields"
    );
    let parsed = Message::parse(Bytes::copy_from_slice(data));
    assert_eq!(
        parsed.is_ok(),
        message_ok,
        "Message::parse agrees with parse_message"
    );
    if let Ok(msg) = parsed {
        assert_eq!(msg.fields(), &msg_spans[..]);
        round_trip_message(&msg);
    }
});

/// Any field list, written as the body of a message, reads back unchanged.
fn round_trip_body(data: &[u8], spans: &[FieldSpan]) {
    let mut e = Encoder::new();
    e.start(b"X");
    for s in spans {
        e.field(s.tag, &data[s.start as usize..s.end as usize]);
    }
    let out = e.finish(b"FIX.4.4").to_vec();
    let mut back = Vec::new();
    parse_message(&out, &mut back).expect("encoded output parses");
    assert_eq!(back.len(), spans.len() + 4);
    for (a, b) in spans.iter().zip(&back[3..]) {
        assert_eq!(a.tag, b.tag);
        assert_eq!(
            &data[a.start as usize..a.end as usize],
            &out[b.start as usize..b.end as usize]
        );
    }
}

/// A parsed message re-encoded with its own BeginString and MsgType is a
/// valid frame (the codec accepts it whole) with the same fields.
fn round_trip_message(msg: &Message) {
    let fields = msg.fields();
    if msg.begin_string().len() > MAX_BEGIN_STRING {
        return;
    }
    let mut e = Encoder::new();
    e.start(msg.msg_type());
    let middle = &fields[3..fields.len() - 1];
    for f in middle {
        e.field(f.tag, msg.value(f));
    }
    let out = Bytes::copy_from_slice(e.finish(msg.begin_string()));

    let mut codec = FixCodec::new(out.len(), true);
    let mut buf = BytesMut::from(&out[..]);
    let frame = codec.decode(&mut buf).expect("no framing error");
    assert_eq!(
        frame.as_ref(),
        Some(&out),
        "the codec accepts the whole frame"
    );
    assert!(buf.is_empty());

    let back = Message::parse(out).expect("re-encoded message parses");
    assert_eq!(back.begin_string(), msg.begin_string());
    assert_eq!(back.msg_type(), msg.msg_type());
    let back_fields = back.fields();
    assert_eq!(back_fields.len(), fields.len());
    for (a, b) in middle.iter().zip(&back_fields[3..]) {
        assert_eq!((a.tag, msg.value(a)), (b.tag, back.value(b)));
    }
}

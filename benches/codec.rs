//! Wire-codec benchmarks: decoding (+ validating) a ~200-byte NewOrderSingle
//! and encoding an ExecutionReport, with `fefix` decoding the same bytes in
//! the same run for comparison. Results and their reading are in
//! `benches/CODEC_RESULTS.md`; run with `cargo bench --bench codec`.
//!
//! For on-CPU figures on a loaded machine, `CODEC_LOOP="<op> <n>"` skips
//! criterion and runs `n` iterations of one operation in a plain loop, to be
//! measured with `perf stat -e task-clock,instructions` (and once with
//! `n = 0` to subtract the setup): `<op>` is one of `parse`, `decode`,
//! `validate`, `full` (decode + validate), `fefix` or `encode`, or
//! `validate_new_shape`: `validate` of two NewOrderSingles whose tags come in
//! different orders, alternately, so that no message finds its tag sequence
//! remembered by the validator (its slower path; one op = one message).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, Criterion, Throughput};
use tokio_util::codec::Decoder;

use fixgw::fix::dictionary::Dictionary;
use fixgw::fix::parser::parse_message;
use fixgw::fix::time::{Precision, UtcNanos};
use fixgw::fix::validate::{validate, ValidationOptions};
use fixgw::fix::{Encoder, FieldSpan, FixCodec, Message};

/// A realistic NewOrderSingle (limit order, day, with account, currency and
/// exchange), framed with a correct BodyLength and CheckSum by our encoder.
fn new_order_single() -> Vec<u8> {
    order(false)
}

/// [`new_order_single`], or (`price_first`) the same order with another tag
/// sequence: Price (44) before OrderQty (38) and OrdType (40).
fn order(price_first: bool) -> Vec<u8> {
    let mut e = Encoder::new();
    e.start(b"D")
        .field_int(34, 215_347)
        .field(49, b"CLIENT0042")
        .field(52, b"20240315-14:30:15.123")
        .field(56, b"FIXGW")
        .field(1, b"ACCT-000731")
        .field(11, b"ORD-20240315-000123456")
        .field(15, b"USD")
        .field(21, b"1");
    if price_first {
        e.field(44, b"187.25");
    }
    e.field(38, b"1500").field(40, b"2");
    if !price_first {
        e.field(44, b"187.25");
    }
    e.field(54, b"1")
        .field(55, b"AAPL")
        .field(59, b"0")
        .field(60, b"20240315-14:30:15.120")
        .field(207, b"XNAS");
    e.finish(b"FIX.4.4").to_vec()
}

/// Encodes a fill ExecutionReport with the fields a venue typically sends.
fn encode_execution_report(e: &mut Encoder, seq: i64, now: UtcNanos) -> usize {
    e.start(b"8")
        .field_int(34, seq)
        .field(49, b"FIXGW")
        .field_time(52, now, Precision::Millis)
        .field(56, b"CLIENT0042")
        .field(1, b"ACCT-000731")
        .field(6, b"187.25")
        .field_int(14, 1500)
        .field(15, b"USD")
        .field_int(17, seq * 2 + 1)
        .field(11, b"ORD-20240315-000123456")
        .field_int(31, 18725)
        .field_int(32, 1500)
        .field_int(37, 9_000_123)
        .field_int(38, 1500)
        .field(39, b"2")
        .field(40, b"2")
        .field(44, b"187.25")
        .field(54, b"1")
        .field(55, b"AAPL")
        .field(59, b"0")
        .field_time(60, now, Precision::Millis)
        .field(150, b"F")
        .field_int(151, 0)
        .field(207, b"XNAS");
    e.finish(b"FIX.4.4").len()
}

fn load_dictionary() -> Dictionary {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dictionaries/FIX44.xml");
    Dictionary::from_file(path).expect("dictionaries/FIX44.xml loads")
}

/// Frames one message out of a socket-like buffer, as the acceptor does.
fn frame(codec: &mut FixCodec, buf: &mut BytesMut, wire: &[u8]) -> bytes::Bytes {
    buf.extend_from_slice(wire);
    codec
        .decode(buf)
        .expect("no framing error")
        .expect("a complete frame")
}

fn bench_decode(c: &mut Criterion) {
    let nos = new_order_single();
    let dict = load_dictionary();
    let opts = ValidationOptions::default();
    // Prove the sample is what the figures claim before timing anything.
    let sample = Message::parse(bytes::Bytes::from(nos.clone())).expect("sample parses");
    validate(&dict, &sample, &opts).expect("sample is a valid NewOrderSingle");

    let mut g = c.benchmark_group(format!("decode_new_order_single_{}B", nos.len()));
    g.throughput(Throughput::Bytes(nos.len() as u64));

    let mut spans: Vec<FieldSpan> = Vec::with_capacity(64);
    g.bench_function("fixgw/parse_message (fields only, no alloc)", |b| {
        b.iter(|| {
            parse_message(black_box(&nos), &mut spans).expect("parses");
            black_box(spans.len())
        })
    });

    let mut codec = FixCodec::default();
    let mut buf = BytesMut::with_capacity(4096);
    g.bench_function("fixgw/codec+Message::parse (decode only)", |b| {
        b.iter(|| {
            let raw = frame(&mut codec, &mut buf, black_box(&nos));
            black_box(Message::parse(raw).expect("parses"))
        })
    });

    g.bench_function("fixgw/validate (pre-parsed message)", |b| {
        b.iter(|| validate(&dict, black_box(&sample), &opts).expect("valid"))
    });

    g.bench_function("fixgw/codec+Message::parse+validate", |b| {
        b.iter(|| {
            let raw = frame(&mut codec, &mut buf, black_box(&nos));
            let msg = Message::parse(raw).expect("parses");
            validate(&dict, &msg, &opts).expect("valid");
            black_box(msg)
        })
    });

    // fefix: its Decoder checks BodyLength and CheckSum and splits the
    // fields (no dictionary validation exists in fefix 0.7).
    let mut fefix =
        fefix::tagvalue::Decoder::<fefix::tagvalue::Config>::new(fefix::Dictionary::fix44());
    assert!(fefix.decode(&nos[..]).is_ok(), "fefix decodes the sample");
    g.bench_function("fefix/Decoder::decode (decode only)", |b| {
        b.iter(|| {
            let m = fefix.decode(black_box(&nos[..])).expect("fefix decodes");
            black_box(&m);
        })
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut e = Encoder::new();
    let now: UtcNanos = 1_710_513_015_123_000_000;
    let len = encode_execution_report(&mut e, 1, now);
    let msg = Message::parse(bytes::Bytes::copy_from_slice(e.as_bytes())).expect("parses");
    validate(&load_dictionary(), &msg, &ValidationOptions::default())
        .expect("a valid ExecutionReport");

    let mut g = c.benchmark_group(format!("encode_execution_report_{len}B"));
    g.throughput(Throughput::Bytes(len as u64));
    let mut seq = 1;
    g.bench_function("fixgw/Encoder (25 fields)", |b| {
        b.iter(|| {
            seq += 1;
            black_box(encode_execution_report(
                &mut e,
                black_box(seq),
                black_box(now),
            ))
        })
    });
    g.finish();
}

/// `CODEC_LOOP="<op> <n>"`: `n` iterations of one operation, for `perf stat`.
fn run_loop(spec: &str) {
    let mut words = spec.split_whitespace();
    let op = words.next().unwrap_or_default();
    let n: u64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .expect("CODEC_LOOP=\"<op> <iterations>\"");
    let nos = new_order_single();
    let dict = load_dictionary();
    let opts = ValidationOptions::default();
    let sample = Message::parse(bytes::Bytes::from(nos.clone())).expect("sample parses");
    let mut codec = FixCodec::default();
    let mut buf = BytesMut::with_capacity(4096);
    let mut spans: Vec<FieldSpan> = Vec::with_capacity(64);
    let mut fefix =
        fefix::tagvalue::Decoder::<fefix::tagvalue::Config>::new(fefix::Dictionary::fix44());
    let mut e = Encoder::new();
    let now: UtcNanos = 1_710_513_015_123_000_000;
    // Dispatch once, outside the timed loop.
    let repeat = |f: &mut dyn FnMut(u64)| (0..n).for_each(|i| f(black_box(i)));
    match op {
        "parse" => repeat(&mut |_| {
            parse_message(black_box(&nos), &mut spans).expect("parses");
            black_box(spans.len());
        }),
        "decode" => repeat(&mut |_| {
            let raw = frame(&mut codec, &mut buf, black_box(&nos));
            black_box(Message::parse(raw).expect("parses"));
        }),
        "validate" => repeat(&mut |_| validate(&dict, black_box(&sample), &opts).expect("valid")),
        "validate_new_shape" => {
            let other = Message::parse(bytes::Bytes::from(order(true))).expect("sample parses");
            let pair = [&sample, &other];
            repeat(&mut |i| validate(&dict, black_box(pair[i as usize % 2]), &opts).expect("valid"))
        }
        "full" => repeat(&mut |_| {
            let raw = frame(&mut codec, &mut buf, black_box(&nos));
            let msg = Message::parse(raw).expect("parses");
            validate(&dict, &msg, &opts).expect("valid");
            black_box(msg);
        }),
        "fefix" => repeat(&mut |_| {
            let m = fefix.decode(black_box(&nos[..])).expect("fefix decodes");
            black_box(&m);
        }),
        "encode" => repeat(&mut |i| {
            black_box(encode_execution_report(&mut e, i as i64, black_box(now)));
        }),
        other => panic!("unknown CODEC_LOOP operation `{other}`"),
    }
}

criterion_group!(benches, bench_decode, bench_encode);

fn main() {
    if let Ok(spec) = std::env::var("CODEC_LOOP") {
        run_loop(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

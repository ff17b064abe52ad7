//! End-to-end tests of the load generator against a tiny in-test FIX
//! acceptor on an ephemeral port.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, Instant};
use tokio_util::codec::FramedRead;

use super::*;
use crate::fix::time::{now_utc, Precision};
use crate::fix::{Encoder, FixCodec, Message, BEGIN_STRING_FIX44};

/// How the fake acceptor behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Answer each request this long after it arrived.
    delay: Duration,
    /// Send a TestRequest and a ResendRequest right after the Logon reply.
    probe: bool,
    /// Log the client out this long after Logon.
    logout_after: Option<Duration>,
    /// Only this SenderCompID is logged out (None: every one).
    logout_only: Option<&'static str>,
    /// Never answer an order or a cancel.
    silent: bool,
}

/// What the fake acceptor saw.
#[derive(Default)]
struct Seen {
    logons: AtomicU64,
    orders: AtomicU64,
    cancels: AtomicU64,
    max_outstanding: AtomicUsize,
    heartbeat_answered_test_request: AtomicBool,
    gap_fill_received: AtomicBool,
    logouts: AtomicU64,
    malformed: AtomicU64,
    /// Longest wait, in ms, from our Logout to the client's answer.
    logout_answer_ms: AtomicU64,
}

async fn start_acceptor(b: Behaviour) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock, b.clone(), s.clone()));
        }
    });
    (port, seen)
}

struct Out {
    enc: Encoder,
    seq: i64,
    client: String,
}

impl Out {
    fn begin(&mut self, msg_type: &[u8]) -> &mut Encoder {
        self.seq += 1;
        self.enc
            .start(msg_type)
            .field(49, b"FIXGW")
            .field_str(56, &self.client)
            .field_int(34, self.seq)
            .field_time(52, now_utc(), Precision::Millis)
    }

    fn finish(&mut self) -> Vec<u8> {
        self.enc.finish(BEGIN_STRING_FIX44).to_vec()
    }

    /// The answer to a D (New) or F (Canceled).
    fn answer(&mut self, m: &Message) -> Vec<u8> {
        let is_cancel = m.msg_type() == b"F";
        let seq = self.seq;
        let e = self.begin(b"8");
        e.field(37, b"O")
            .field_int(17, seq)
            .field(11, m.get(11).unwrap_or(b"?"));
        if is_cancel {
            e.field(41, m.get(41).unwrap_or(b"?"))
                .field(150, b"4")
                .field(39, b"4")
                .field(151, b"0");
        } else {
            e.field(150, b"0")
                .field(39, b"0")
                .field(151, m.get(38).unwrap_or(b"0"));
        }
        e.field(55, m.get(55).unwrap_or(b"?"))
            .field(54, m.get(54).unwrap_or(b"1"))
            .field(38, m.get(38).unwrap_or(b"0"))
            .field(14, b"0")
            .field(6, b"0");
        self.finish()
    }
}

async fn serve(sock: TcpStream, b: Behaviour, seen: Arc<Seen>) {
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let mut reader = FramedRead::new(rd, FixCodec::default());
    let mut out = Out {
        enc: Encoder::new(),
        seq: 0,
        client: String::new(),
    };
    let mut delayed: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let far = Instant::now() + Duration::from_secs(3600);
    let mut logout_at = far;
    let mut logout_sent: Option<Instant> = None;
    loop {
        let next_answer = delayed.front().map_or(far, |d| d.0);
        tokio::select! {
            frame = reader.next() => {
                let Some(Ok(frame)) = frame else { return };
                let Ok(m) = Message::parse(frame) else {
                    seen.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let mut reply = Vec::new();
                match m.msg_type() {
                    b"A" => {
                        seen.logons.fetch_add(1, Ordering::Relaxed);
                        out.client = m.get_str(49).unwrap_or("?").to_string();
                        if m.get(141) == Some(b"Y") {
                            out.seq = 0;
                        }
                        out.begin(b"A")
                            .field(98, b"0")
                            .field(108, m.get(108).unwrap_or(b"30"));
                        reply.extend(out.finish());
                        if b.probe {
                            out.begin(b"1").field(112, b"TEST1");
                            reply.extend(out.finish());
                            out.begin(b"2").field(7, b"1").field(16, b"0");
                            reply.extend(out.finish());
                        }
                        if let Some(after) = b.logout_after {
                            if b.logout_only.is_none_or(|only| only == out.client) {
                                logout_at = Instant::now() + after;
                            }
                        }
                    }
                    b"D" | b"F" => {
                        let counter = if m.msg_type() == b"D" {
                            &seen.orders
                        } else {
                            &seen.cancels
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        if b.silent {
                            continue;
                        }
                        let answer = out.answer(&m);
                        if b.delay.is_zero() {
                            reply.extend(answer);
                        } else {
                            delayed.push_back((Instant::now() + b.delay, answer));
                            seen.max_outstanding.fetch_max(delayed.len(), Ordering::Relaxed);
                        }
                    }
                    b"0" if m.get(112) == Some(b"TEST1") => {
                        seen.heartbeat_answered_test_request.store(true, Ordering::Relaxed);
                    }
                    b"4" if m.get(123) == Some(b"Y")
                        && m.get(34) == Some(b"1")
                        && m.get_u64(36) > Some(1) =>
                    {
                        seen.gap_fill_received.store(true, Ordering::Relaxed);
                    }
                    b"5" => {
                        seen.logouts.fetch_add(1, Ordering::Relaxed);
                        if let Some(at) = logout_sent {
                            let ms = at.elapsed().as_millis() as u64;
                            seen.logout_answer_ms.fetch_max(ms, Ordering::Relaxed);
                            return;
                        }
                        out.begin(b"5");
                        let bye = out.finish();
                        let _ = wr.write_all(&bye).await;
                        return;
                    }
                    _ => {}
                }
                if !reply.is_empty() && wr.write_all(&reply).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(next_answer), if !delayed.is_empty() => {
                let now = Instant::now();
                let mut batch = Vec::new();
                while delayed.front().is_some_and(|d| d.0 <= now) {
                    if let Some((_, a)) = delayed.pop_front() {
                        batch.extend(a);
                    }
                }
                if wr.write_all(&batch).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(logout_at), if logout_at < far => {
                out.begin(b"5").field(58, b"maintenance");
                let bye = out.finish();
                let _ = wr.write_all(&bye).await;
                logout_at = far;
                logout_sent = Some(Instant::now());
            }
        }
    }
}

fn opts(port: u16) -> LoadOptions {
    LoadOptions {
        port,
        duration_secs: 2.0,
        warmup_secs: 0.5,
        heartbeat_secs: 1,
        ..LoadOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rate_run_reports_the_rate_and_latencies() {
    let (port, seen) = start_acceptor(Behaviour {
        probe: true,
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let hgrm = dir.path().join("lat.hgrm");
    let o = LoadOptions {
        sessions: 2,
        rate: Some(2000),
        hgrm: Some(hgrm.clone()),
        ..opts(port)
    };
    let r = run(&o).await.unwrap();
    println!("{r}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.sessions_logged_on, 2);
    assert_eq!(r.rejects, 0);
    assert_eq!(r.unanswered, 0);
    assert_eq!(r.problems(), None);
    assert!(
        (1800.0..=2200.0).contains(&r.orders_per_sec),
        "{}",
        r.orders_per_sec
    );
    // 2 s at 2000/s, all answered; 1.5 s of them measured.
    assert_eq!(r.orders_sent, 4000);
    assert_eq!(r.acks, 4000);
    assert!((2900..=3100).contains(&r.samples), "{}", r.samples);
    assert!(r.p50_us > 0.0 && r.p50_us <= r.p90_us && r.p90_us <= r.p99_us);
    assert!(r.p99_us <= r.p999_us && r.p999_us <= r.max_us);
    // The mix: about 10 % cancels, every one of an acknowledged order.
    assert!((200..=600).contains(&r.cancels_sent), "{}", r.cancels_sent);
    assert_eq!(r.cancel_rejects, 0);
    assert_eq!(seen.cancels.load(Ordering::Relaxed), r.cancels_sent);
    assert_eq!(
        seen.orders.load(Ordering::Relaxed) + seen.cancels.load(Ordering::Relaxed),
        4000
    );
    assert_eq!(seen.logons.load(Ordering::Relaxed), 2);
    assert_eq!(seen.logouts.load(Ordering::Relaxed), 2);
    assert_eq!(seen.malformed.load(Ordering::Relaxed), 0);
    assert!(seen.heartbeat_answered_test_request.load(Ordering::Relaxed));
    assert!(seen.gap_fill_received.load(Ordering::Relaxed));
    let text = std::fs::read_to_string(&hgrm).unwrap();
    assert!(text.starts_with("       Value     Percentile"), "{text}");
    assert!(text.contains(&format!("Total count    = {:12}]", r.samples)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_mode_respects_the_window() {
    let (port, seen) = start_acceptor(Behaviour {
        delay: Duration::from_millis(2),
        ..Behaviour::default()
    })
    .await;
    let o = LoadOptions {
        window: 8,
        duration_secs: 1.0,
        warmup_secs: 0.2,
        ..opts(port)
    };
    let r = run(&o).await.unwrap();
    println!("{r}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.max_in_flight, 8);
    assert_eq!(seen.max_outstanding.load(Ordering::Relaxed), 8);
    assert_eq!(r.unanswered, 0);
    assert_eq!(r.acks, r.orders_sent);
    // Each answer takes at least 2 ms, so at most 8 per 2 ms.
    assert!(
        r.orders_per_sec > 500.0 && r.orders_per_sec <= 4000.0,
        "{}",
        r.orders_per_sec
    );
    assert!(r.p50_us >= 2000.0, "{}", r.p50_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_logout_is_an_error_in_the_report() {
    let (port, _) = start_acceptor(Behaviour {
        logout_after: Some(Duration::from_millis(300)),
        ..Behaviour::default()
    })
    .await;
    let o = LoadOptions {
        rate: Some(500),
        warmup_secs: 0.0,
        ..opts(port)
    };
    let t0 = std::time::Instant::now();
    let r = run(&o).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with("CLIENT1: acceptor logged out: maintenance"),
        "{:?}",
        r.errors
    );
    assert!(r.to_string().contains("acceptor logged out"));
    // A request sent as the Logout was on its way stays unanswered.
    assert!(r.unanswered <= 1, "{}", r.unanswered);
    let problems = r.problems().unwrap_or_default();
    assert!(problems.ends_with("1 session errors"), "{problems}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_logged_out_answers_at_once_while_the_others_run_on() {
    let (port, seen) = start_acceptor(Behaviour {
        logout_after: Some(Duration::from_millis(300)),
        logout_only: Some("CLIENT1"),
        ..Behaviour::default()
    })
    .await;
    let o = LoadOptions {
        sessions: 2,
        rate: Some(500),
        warmup_secs: 0.0,
        ..opts(port)
    };
    let r = run(&o).await.unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with("CLIENT1: acceptor logged out: maintenance"),
        "{:?}",
        r.errors
    );
    // CLIENT1 answered the acceptor's Logout; CLIENT2 logged out at the end.
    assert_eq!(seen.logouts.load(Ordering::Relaxed), 2);
    // The answer went at once, not when the run (2 s) was over.
    let waited = seen.logout_answer_ms.load(Ordering::Relaxed);
    assert!(waited < 500, "Logout answered after {waited} ms");
    // CLIENT2 sent its whole share: half of 2 s at 500/s.
    assert!(r.orders_sent >= 500, "{}", r.orders_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_answered_make_the_run_unclean() {
    let (port, seen) = start_acceptor(Behaviour {
        silent: true,
        ..Behaviour::default()
    })
    .await;
    let o = LoadOptions {
        rate: Some(200),
        duration_secs: 0.5,
        warmup_secs: 0.0,
        ..opts(port)
    };
    let r = run(&o).await.unwrap();
    let sent = seen.orders.load(Ordering::Relaxed) + seen.cancels.load(Ordering::Relaxed);
    assert!(sent > 0);
    assert_eq!(r.orders_sent, sent);
    assert_eq!(r.acks, 0);
    assert_eq!(r.unanswered, sent);
    // The session itself ended normally: the silence is the only problem.
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.problems(), Some(format!("{sent} requests unanswered")));
}

#[tokio::test]
async fn no_acceptor_fails_the_run() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = run(&opts(port)).await.unwrap_err().to_string();
    assert!(
        err.contains("no session logged on: CLIENT1: connect to"),
        "{err}"
    );
}

#[test]
fn clap_defaults_match_default_and_flags_parse() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadOptions,
    }
    let d = Cli::parse_from(["load"]).load;
    assert_eq!(d, LoadOptions::default());
    let o = Cli::parse_from([
        "load",
        "--sender",
        "A",
        "--sender",
        "B,C",
        "-n",
        "4",
        "--rate",
        "10000",
        "--mix",
        "50,40,10",
        "--prices",
        "10.5",
        "--reset-seq",
        "false",
        "--duration",
        "1.5",
        "--warmup",
        "0.5",
    ])
    .load;
    assert_eq!(o.sender_comp_ids, ["A", "B", "C"]);
    assert_eq!(o.sender_for(3), "A");
    assert_eq!(LoadOptions::default().sender_for(2), "CLIENT3");
    assert_eq!(o.rate, Some(10_000));
    assert_eq!(o.mix.crossing, 40);
    assert!(!o.reset_seq);
    assert_eq!(o.duration_secs, 1.5);
    let inst = o.instruments().unwrap();
    assert_eq!(inst[1].symbol, "MSFT");
    assert_eq!(inst[1].base_cents, 1050);
    assert!(o.validate().is_ok());
    let bad = LoadOptions {
        warmup_secs: 3.0,
        duration_secs: 2.0,
        ..LoadOptions::default()
    };
    assert!(bad.validate().is_err());
    assert!(LoadOptions {
        rate: Some(0),
        ..LoadOptions::default()
    }
    .validate()
    .is_err());
}

#[test]
fn the_driver_wakes_for_each_request_only_up_to_20_000_per_second() {
    let at = |total_rate| {
        super::driver::sleeps_on_time(&Schedule {
            total_rate,
            sessions: 2,
        })
    };
    assert!(at(1_000));
    assert!(at(10_000));
    assert!(at(20_000));
    assert!(!at(20_001));
    assert!(!at(50_000));
}

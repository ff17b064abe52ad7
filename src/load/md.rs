//! Market-data subscribers of the load generator (`--md-subscribers N`):
//! each logs on as its own session, subscribes (MarketDataRequest, 263=1)
//! to the traded symbols and counts the incremental entries (279 fields of
//! every MarketDataIncrementalRefresh) that reach it while orders flow. The
//! sum over subscribers, divided by the measured interval, is the fan-out
//! rate the report gives.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::fix::{Encoder, Message, BEGIN_STRING_FIX44, SOH};

use super::client::{connect_and_logon, header, SessionSetup};

/// What one subscriber received.
#[derive(Debug, Clone, Default)]
pub struct MdStats {
    /// Its SenderCompID.
    pub sender_comp_id: String,
    /// Snapshots (W) received.
    pub snapshots: u64,
    /// Incremental refreshes (X) received.
    pub messages: u64,
    /// Entries in them.
    pub entries: u64,
    /// Entries received during the measured interval.
    pub entries_measured: u64,
    /// Why the subscriber stopped early, if it did.
    pub error: Option<String>,
}

/// Number of MDEntries (279=) in a MarketDataIncrementalRefresh frame.
pub fn count_entries(frame: &[u8]) -> u64 {
    frame
        .windows(5)
        .filter(|w| w[0] == SOH && &w[1..] == b"279=")
        .count() as u64
}

/// Runs one subscriber: log on, subscribe to `symbols` at `depth`, then
/// count until the end of the measured interval `go` delivers.
pub async fn run_subscriber(
    setup: SessionSetup,
    symbols: Vec<String>,
    depth: u32,
    logged_on: oneshot::Sender<Result<(), String>>,
    go: oneshot::Receiver<(Instant, Instant)>,
) -> MdStats {
    let mut stats = MdStats {
        sender_comp_id: setup.sender.clone(),
        ..MdStats::default()
    };
    let (mut reader, mut writer) = match connect_and_logon(&setup).await {
        Ok(halves) => halves,
        Err(e) => {
            stats.error = Some(e.clone());
            let _ = logged_on.send(Err(e));
            return stats;
        }
    };
    let mut enc = Encoder::new();
    let mut seq = 2;
    header(&mut enc, b"V", &setup, seq);
    enc.field(262, format!("{}-md", setup.sender).as_bytes())
        .field(263, b"1")
        .field_int(264, i64::from(depth))
        .field(265, b"1")
        .field(267, b"3")
        .field(269, b"0")
        .field(269, b"1")
        .field(269, b"2")
        .field_int(146, symbols.len() as i64);
    for s in &symbols {
        enc.field(55, s.as_bytes());
    }
    seq += 1;
    if let Err(e) = writer.write_all(enc.finish(BEGIN_STRING_FIX44)).await {
        let e = format!("sending MarketDataRequest: {e}");
        stats.error = Some(e.clone());
        let _ = logged_on.send(Err(e));
        return stats;
    }
    let _ = logged_on.send(Ok(()));
    let Ok((from, end)) = go.await else {
        return stats;
    };
    // Entries already queued when the flow stops still count if they arrive
    // shortly after; the rate divides by the measured interval only.
    let stop = end + Duration::from_millis(200);
    loop {
        let frame = match tokio::time::timeout_at(stop, reader.next()).await {
            Err(_) => break,
            Ok(None) => {
                stats.error = Some("connection closed by the acceptor".into());
                break;
            }
            Ok(Some(Err(e))) => {
                stats.error = Some(format!("read: {e}"));
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        let now = Instant::now();
        // The hot case, an X, is counted without parsing.
        if frame.windows(6).any(|w| w == b"\x0135=X\x01") {
            let n = count_entries(&frame);
            stats.messages += 1;
            stats.entries += n;
            if now >= from && now <= end {
                stats.entries_measured += n;
            }
            continue;
        }
        let Ok(m) = Message::parse(frame) else {
            continue;
        };
        match m.msg_type() {
            b"W" => stats.snapshots += 1,
            b"1" => {
                header(&mut enc, b"0", &setup, seq);
                if let Some(id) = m.get(112) {
                    enc.field(112, id);
                }
                seq += 1;
                let _ = writer.write_all(enc.finish(BEGIN_STRING_FIX44)).await;
            }
            b"5" => {
                stats.error = Some(format!(
                    "logged out: {}",
                    m.get_str(58).unwrap_or("no text")
                ));
                break;
            }
            b"Y" => {
                stats.error = Some(format!(
                    "subscription rejected: {}",
                    m.get_str(58).unwrap_or("no text")
                ));
                break;
            }
            _ => {}
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_entries_not_other_279_digits() {
        let x = b"8=FIX.4.4\x019=50\x0135=X\x01262=a\x01268=2\x01279=0\x01269=0\x01270=1279\x01279=2\x01269=1\x0110=000\x01";
        assert_eq!(count_entries(x), 2);
        assert_eq!(count_entries(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01"), 0);
    }
}

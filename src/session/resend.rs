//! Servicing a counterparty's ResendRequest: stored application messages are
//! resent with PossDupFlag=Y and OrigSendingTime, runs of anything else
//! (admin messages, messages not stored) become SequenceReset-GapFill.

use bytes::Bytes;

use crate::fix::tags;
use crate::fix::Message;

use super::outbound::is_admin_msg_type;
use super::state::{Action, Session};
use super::store::MessageStore;

/// Tags of the FIX 4.4 standard header.
pub const HEADER_TAGS: [i32; 27] = [
    8, 9, 35, 49, 56, 115, 128, 90, 91, 34, 50, 142, 57, 143, 116, 144, 129, 145, 43, 97, 52, 122,
    212, 213, 347, 369, 627,
];

/// True for a standard header tag (or a member of the NoHops group).
pub fn is_header_tag(tag: i32) -> bool {
    HEADER_TAGS.contains(&tag) || matches!(tag, 628..=630)
}

impl Session {
    pub(crate) fn next_resend_request(&mut self, msg: &Message, store: &mut dyn MessageStore) {
        if !self.verify(msg, false, false, store) {
            return;
        }
        let begin = msg.get_u64(tags::BEGIN_SEQ_NO).unwrap_or(1).max(1);
        let mut end = msg.get_u64(tags::END_SEQ_NO).unwrap_or(0);
        let next_sender = store.next_sender_seq();
        tracing::info!(session = %self.cfg.id, begin, end, "received ResendRequest");
        if end == 0 || end >= next_sender {
            end = next_sender - 1;
        }
        if !self.cfg.persist_messages {
            // Only a forward gap fill: a request for numbers we never sent
            // (begin >= next_sender, up to u64::MAX) is answered with nothing,
            // as when messages are stored, and never with a MsgSeqNum that
            // does not fit the wire encoding.
            let new_seq = (end + 1).min(next_sender);
            if new_seq > begin {
                self.send_gap_fill(begin, new_seq);
            }
        } else {
            self.resend_range_from_store(begin, end, next_sender, store);
        }
        if let Some(seq) = msg.seq_num() {
            if seq == store.next_target_seq() {
                store.set_next_target_seq(seq + 1);
            }
        }
    }

    fn resend_range_from_store(
        &mut self,
        begin: u64,
        end: u64,
        next_sender: u64,
        store: &mut dyn MessageStore,
    ) {
        let messages = match store.get_range(begin, end) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(session = %self.cfg.id, error = %e, "cannot read store; gap-filling");
                Vec::new()
            }
        };
        let mut gap_start: Option<u64> = None;
        let mut current = begin;
        let mut last_seq = 0;
        for (seq, raw) in messages {
            if current != seq && gap_start.is_none() {
                gap_start = Some(current);
            }
            let resent = Message::parse(raw.clone())
                .ok()
                .filter(|m| !is_admin_msg_type(m.msg_type()));
            match resent {
                Some(m) => {
                    if let Some(g) = gap_start.take() {
                        self.send_gap_fill(g, seq);
                    }
                    self.resend_one(&m, seq);
                }
                None => {
                    gap_start.get_or_insert(seq);
                }
            }
            current = seq + 1;
            last_seq = seq;
        }
        if let Some(g) = gap_start {
            self.send_gap_fill(g, last_seq + 1);
        }
        if end > last_seq || last_seq == 0 {
            let new_seq = (end + 1).min(next_sender);
            if new_seq > current {
                self.send_gap_fill(current, new_seq);
            }
        }
    }

    /// Resends a stored application message: same MsgSeqNum and body,
    /// PossDupFlag=Y, OrigSendingTime = its SendingTime, fresh SendingTime.
    fn resend_one(&mut self, stored: &Message, seq: u64) {
        let mut header: Vec<(i32, Bytes)> = Vec::new();
        let mut body_start = None;
        let raw = stored.raw();
        for f in &stored.fields()[3..] {
            if f.tag == tags::CHECK_SUM {
                break;
            }
            if !is_header_tag(f.tag) {
                body_start = Some(f);
                break;
            }
            match f.tag {
                tags::MSG_SEQ_NUM
                | tags::SENDER_COMP_ID
                | tags::TARGET_COMP_ID
                | tags::POSS_DUP_FLAG => {}
                tags::ORIG_SENDING_TIME => {}
                tags::SENDING_TIME => {
                    header.push((
                        tags::ORIG_SENDING_TIME,
                        raw.slice(f.start as usize..f.end as usize),
                    ));
                }
                t => header.push((t, raw.slice(f.start as usize..f.end as usize))),
            }
        }
        header.push((tags::POSS_DUP_FLAG, Bytes::from_static(b"Y")));
        let body = match body_start {
            Some(f) => {
                // Body runs from the first body tag to the SOH before 10=.
                let tag_start = raw[..f.start as usize]
                    .iter()
                    .rposition(|&b| b == crate::fix::SOH)
                    .map(|p| p + 1)
                    .unwrap_or(0);
                let ten = stored
                    .fields()
                    .last()
                    .map(|t| t.start as usize - 3)
                    .unwrap_or(raw.len());
                raw.slice(tag_start..ten)
            }
            None => Bytes::new(),
        };
        let msg_type = stored.msg_type().to_vec();
        let bytes = self.encode(&msg_type, seq, &header, &body);
        tracing::debug!(session = %self.cfg.id, seq, "resending message");
        self.last_sent = self.now;
        self.actions.push_back(Action::Send(bytes));
    }

    /// SequenceReset-GapFill numbered `begin`, to `new_seq`. Does not consume
    /// an outbound number.
    pub(crate) fn send_gap_fill(&mut self, begin: u64, new_seq: u64) {
        let orig = {
            let mut v = Vec::with_capacity(24);
            crate::fix::time::format_utc(self.now, self.cfg.timestamp_precision, &mut v);
            Bytes::from(v)
        };
        let header = [
            (tags::POSS_DUP_FLAG, Bytes::from_static(b"Y")),
            (tags::ORIG_SENDING_TIME, orig),
        ];
        let mut body = Vec::with_capacity(24);
        body.extend_from_slice(format!("36={new_seq}\x01123=Y\x01").as_bytes());
        let bytes = self.encode(b"4", begin, &header, &body);
        tracing::debug!(session = %self.cfg.id, begin, new_seq, "sending gap fill");
        self.last_sent = self.now;
        self.actions.push_back(Action::Send(bytes));
    }
}

//! Servicing a counterparty's ResendRequest: stored application messages are
//! resent with PossDupFlag=Y and OrigSendingTime, runs of anything else
//! (admin messages, messages not stored) become SequenceReset-GapFill.

use bytes::Bytes;

use crate::fix::tags;
use crate::fix::Message;

use super::outbound::is_admin_msg_type;
use super::state::{Action, ResendJob, Session};
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

    /// Starts answering a ResendRequest for `begin..=end` from the store.
    ///
    /// A large range is resent in chunks of [`Session::resend_chunk`]
    /// messages, so that it never floods the connection's outbound queue:
    /// the first chunk now, the rest through [`Session::continue_resend`] as
    /// the connection drains. What the session sends meanwhile (new
    /// application messages, heartbeats, a Logout) waits behind the resend,
    /// so the wire order is exactly that of a resend sent in one go.
    fn resend_range_from_store(
        &mut self,
        begin: u64,
        mut end: u64,
        next_sender: u64,
        store: &mut dyn MessageStore,
    ) {
        if let Some(from) = self.deferred_from {
            // Messages from `from` on wait, unsent, behind the running
            // resend: a later request never resends them ahead of their
            // first sending.
            end = end.min(from - 1);
        }
        self.deferred_from.get_or_insert(next_sender);
        self.resend_jobs.push_back(ResendJob {
            scan: begin,
            end,
            next_sender,
            current: begin,
            last_seq: 0,
            gap_start: None,
        });
        if self.resend_jobs.len() == 1 {
            self.continue_resend(store);
        }
    }

    /// True while a resend is under way: more chunks to send.
    pub fn resend_in_progress(&self) -> bool {
        !self.resend_jobs.is_empty()
    }

    /// Messages per resend chunk: an eighth of the outbound queue (at least
    /// one), which leaves room for what the session sends meanwhile.
    pub fn resend_chunk(&self) -> u64 {
        (self.cfg.max_outbound_queue as u64 / 8).max(1)
    }

    /// Sends the next chunk of the running resend; when it is complete, what
    /// waited behind it follows.
    pub fn continue_resend(&mut self, store: &mut dyn MessageStore) {
        let Some(mut job) = self.resend_jobs.pop_front() else {
            return;
        };
        let chunk_end = job
            .end
            .min(job.scan.saturating_add(self.resend_chunk() - 1));
        match self.resend_step(&mut job, chunk_end, store) {
            Some(false) => {
                self.resend_jobs.push_front(job);
                return;
            }
            Some(true) => {}
            None => {
                // Gap-filling over messages that exist would lose them for
                // the client: it asks again after reconnecting.
                self.disconnect();
                return;
            }
        }
        if self.resend_jobs.is_empty() {
            self.deferred_from = None;
            self.actions.append(&mut self.deferred);
        }
    }

    /// Resends the stored messages numbered `job.scan..=chunk_end`; runs of
    /// anything else become gap fills, which may span chunks. Returns
    /// whether the job is complete, or None when the store cannot be read.
    fn resend_step(
        &mut self,
        job: &mut ResendJob,
        chunk_end: u64,
        store: &mut dyn MessageStore,
    ) -> Option<bool> {
        let messages = match store.get_range(job.scan, chunk_end) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(session = %self.cfg.id, error = %e, "cannot read the store to resend; disconnecting");
                return None;
            }
        };
        self.resending = true;
        for (seq, raw) in messages {
            if job.current != seq && job.gap_start.is_none() {
                job.gap_start = Some(job.current);
            }
            let resent = Message::parse(raw.clone())
                .ok()
                .filter(|m| !is_admin_msg_type(m.msg_type()));
            match resent {
                Some(m) => {
                    if let Some(g) = job.gap_start.take() {
                        self.send_gap_fill(g, seq);
                    }
                    self.resend_one(&m, seq);
                }
                None => {
                    job.gap_start.get_or_insert(seq);
                }
            }
            job.current = seq + 1;
            job.last_seq = seq;
        }
        let done = chunk_end >= job.end;
        job.scan = chunk_end.saturating_add(1);
        if done {
            if let Some(g) = job.gap_start {
                self.send_gap_fill(g, job.last_seq + 1);
            }
            if job.end > job.last_seq || job.last_seq == 0 {
                let new_seq = (job.end + 1).min(job.next_sender);
                if new_seq > job.current {
                    self.send_gap_fill(job.current, new_seq);
                }
            }
        }
        self.resending = false;
        Some(done)
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
        self.push(Action::Send(bytes));
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
        self.push(Action::Send(bytes));
    }
}

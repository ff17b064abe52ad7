//! Everything the session sends: stamping the standard header (34, 49, 52,
//! 56 and extra header fields in ascending tag order), consuming an outbound
//! MsgSeqNum in the store, and the session-generated messages (Heartbeat,
//! TestRequest, ResendRequest, Logout, Reject, BusinessMessageReject).

use bytes::Bytes;

use crate::fix::reject::Rejection;
use crate::fix::tags;
use crate::fix::Message;

use super::application::{BusinessReject, OutboundMessage};
use super::state::{Action, Session};
use super::store::MessageStore;

/// Header routing fields and their reverse (OnBehalfOf ↔ DeliverTo).
const REVERSE_ROUTE: [(i32, i32); 6] = [
    (tags::ON_BEHALF_OF_COMP_ID, tags::DELIVER_TO_COMP_ID),
    (tags::ON_BEHALF_OF_SUB_ID, tags::DELIVER_TO_SUB_ID),
    (tags::ON_BEHALF_OF_LOCATION_ID, tags::DELIVER_TO_LOCATION_ID),
    (tags::DELIVER_TO_COMP_ID, tags::ON_BEHALF_OF_COMP_ID),
    (tags::DELIVER_TO_SUB_ID, tags::ON_BEHALF_OF_SUB_ID),
    (tags::DELIVER_TO_LOCATION_ID, tags::ON_BEHALF_OF_LOCATION_ID),
];

/// Routing fields to put on a reply to `msg` (QuickFIX's reverseRoute).
pub(crate) fn reverse_route(msg: &Message) -> Vec<(i32, Bytes)> {
    let mut out = Vec::new();
    for (from, to) in REVERSE_ROUTE {
        if let Some(v) = msg.get(from) {
            if !v.is_empty() {
                out.push((to, Bytes::copy_from_slice(v)));
            }
        }
    }
    out
}

/// True for session-level message types (their resends become gap fills).
pub fn is_admin_msg_type(mt: &[u8]) -> bool {
    matches!(mt, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

impl Session {
    /// Encodes a message with the standard header. `seq` is the MsgSeqNum;
    /// `extra_header` must not contain 34, 49, 52 or 56.
    pub(crate) fn encode(
        &mut self,
        msg_type: &[u8],
        seq: u64,
        extra_header: &[(i32, Bytes)],
        body: &[u8],
    ) -> Bytes {
        let precision = self.cfg.timestamp_precision;
        let now = self.now;
        let cfg = &self.cfg;
        let e = &mut self.enc;
        e.start(msg_type);
        if extra_header.is_empty() {
            // The common case, already in tag order.
            e.field_int(tags::MSG_SEQ_NUM, seq as i64);
            e.field(tags::SENDER_COMP_ID, cfg.id.sender_comp_id.as_bytes());
            e.field_time(tags::SENDING_TIME, now, precision);
            e.field(tags::TARGET_COMP_ID, cfg.id.target_comp_id.as_bytes());
        } else {
            let mut header: Vec<(i32, HeaderValue)> = Vec::with_capacity(4 + extra_header.len());
            header.push((tags::MSG_SEQ_NUM, HeaderValue::Seq(seq)));
            header.push((tags::SENDER_COMP_ID, HeaderValue::Sender));
            header.push((tags::SENDING_TIME, HeaderValue::Now));
            header.push((tags::TARGET_COMP_ID, HeaderValue::Target));
            for (i, (t, _)) in extra_header.iter().enumerate() {
                header.push((*t, HeaderValue::Extra(i)));
            }
            header.sort_by_key(|(t, _)| *t);
            for (tag, v) in &header {
                match v {
                    HeaderValue::Seq(s) => e.field_int(*tag, *s as i64),
                    HeaderValue::Sender => e.field(*tag, cfg.id.sender_comp_id.as_bytes()),
                    HeaderValue::Now => e.field_time(*tag, now, precision),
                    HeaderValue::Target => e.field(*tag, cfg.id.target_comp_id.as_bytes()),
                    HeaderValue::Extra(i) => e.field(*tag, &extra_header[*i].1),
                };
            }
        }
        e.raw(body);
        crate::arena::copy(e.finish(cfg.id.begin_string.as_bytes()))
    }

    /// Sends with the next outbound MsgSeqNum; stores application messages.
    fn send_with_seq(
        &mut self,
        msg_type: &[u8],
        extra_header: &[(i32, Bytes)],
        body: &[u8],
        store: &mut dyn MessageStore,
    ) {
        let seq = store.next_sender_seq();
        let bytes = self.encode(msg_type, seq, extra_header, body);
        if self.cfg.persist_messages && !is_admin_msg_type(msg_type) {
            store.save(seq, bytes.clone());
        }
        store.set_next_sender_seq(seq + 1);
        self.last_sent = self.now;
        self.push(Action::Send(bytes));
    }

    /// Consumes a MsgSeqNum for `msg` and stores it for resend without sending.
    pub(crate) fn store_outbound(&mut self, msg: &OutboundMessage, store: &mut dyn MessageStore) {
        let seq = store.next_sender_seq();
        let bytes = self.encode(&msg.msg_type, seq, &msg.header, &msg.body);
        if self.cfg.persist_messages {
            store.save(seq, bytes);
        }
        store.set_next_sender_seq(seq + 1);
    }

    /// Sends an application message produced by the application.
    pub(crate) fn send_outbound(&mut self, msg: &OutboundMessage, store: &mut dyn MessageStore) {
        self.send_with_seq(&msg.msg_type, &msg.header, &msg.body, store);
    }

    /// Sends a session-level message with `body` fields in the given order.
    pub(crate) fn send_admin(
        &mut self,
        msg_type: &[u8],
        extra_header: &[(i32, Bytes)],
        body: &[(i32, Bytes)],
        store: &mut dyn MessageStore,
    ) {
        let body = encode_fields(body);
        self.send_with_seq(msg_type, extra_header, &body, store);
    }

    /// Heartbeat, echoing a TestReqID when answering a TestRequest.
    pub(crate) fn send_heartbeat(
        &mut self,
        test_req_id: Option<&[u8]>,
        store: &mut dyn MessageStore,
    ) {
        let body: Vec<(i32, Bytes)> = test_req_id
            .map(|id| vec![(tags::TEST_REQ_ID, Bytes::copy_from_slice(id))])
            .unwrap_or_default();
        self.send_admin(b"0", &[], &body, store);
    }

    /// TestRequest with TestReqID `TEST` (as QuickFIX).
    pub(crate) fn send_test_request(&mut self, store: &mut dyn MessageStore) {
        let body = [(tags::TEST_REQ_ID, Bytes::from_static(b"TEST"))];
        self.send_admin(b"1", &[], &body, store);
    }

    /// ResendRequest from the next expected number to infinity (16=0),
    /// remembering that numbers up to `received - 1` are outstanding.
    pub(crate) fn send_resend_request(&mut self, received: u64, store: &mut dyn MessageStore) {
        let begin = store.next_target_seq();
        self.resend_range = Some((begin, received.saturating_sub(1)));
        let body = [
            (tags::BEGIN_SEQ_NO, Bytes::from(begin.to_string())),
            (tags::END_SEQ_NO, Bytes::from_static(b"0")),
        ];
        tracing::info!(session = %self.cfg.id, begin, "sending ResendRequest");
        self.send_admin(b"2", &[], &body, store);
    }

    /// Logout, optionally with Text; starts the LogoutTimeout.
    pub(crate) fn generate_logout(&mut self, text: Option<&str>, store: &mut dyn MessageStore) {
        let body: Vec<(i32, Bytes)> = text
            .map(|t| vec![(tags::TEXT, Bytes::copy_from_slice(t.as_bytes()))])
            .unwrap_or_default();
        self.send_admin(b"5", &[], &body, store);
        self.logout_sent_at = Some(self.now);
    }

    /// Session-level Reject of `msg`. Consumes the inbound MsgSeqNum when the
    /// rejected message was the expected one (and not a Logon/SequenceReset).
    pub(crate) fn reject(
        &mut self,
        msg: &Message,
        rejection: Rejection,
        store: &mut dyn MessageStore,
    ) {
        let msg_type = msg.msg_type();
        let seq = msg.seq_num();
        tracing::info!(
            session = %self.cfg.id,
            reason = rejection.reason.text(),
            ref_tag = ?rejection.ref_tag,
            "rejecting message"
        );
        let mut body: Vec<(i32, Bytes)> = Vec::with_capacity(5);
        if let Some(s) = seq {
            body.push((tags::REF_SEQ_NUM, Bytes::from(s.to_string())));
        } else if let Some(raw) = msg.get(tags::MSG_SEQ_NUM) {
            body.push((tags::REF_SEQ_NUM, Bytes::copy_from_slice(raw)));
        }
        body.push((
            tags::TEXT,
            Bytes::from_static(rejection.reason.text().as_bytes()),
        ));
        if let Some(t) = rejection.ref_tag {
            body.push((tags::REF_TAG_ID, Bytes::from(t.to_string())));
        }
        body.push((tags::REF_MSG_TYPE, Bytes::copy_from_slice(msg_type)));
        body.push((
            tags::SESSION_REJECT_REASON,
            Bytes::from(rejection.reason.code().to_string()),
        ));
        let route = reverse_route(msg);
        if msg_type != b"A" && msg_type != b"4" && seq == Some(store.next_target_seq()) {
            store.set_next_target_seq(store.next_target_seq() + 1);
        }
        self.send_admin(b"3", &route, &body, store);
    }

    /// BusinessMessageReject (35=j) of an application message.
    pub(crate) fn business_reject(
        &mut self,
        msg: &Message,
        bmr: &BusinessReject,
        store: &mut dyn MessageStore,
    ) {
        let mut body: Vec<(i32, Bytes)> = Vec::with_capacity(5);
        if let Some(s) = msg.get(tags::MSG_SEQ_NUM) {
            body.push((tags::REF_SEQ_NUM, Bytes::copy_from_slice(s)));
        }
        body.push((tags::TEXT, Bytes::copy_from_slice(bmr.text.as_bytes())));
        body.push((tags::REF_MSG_TYPE, Bytes::copy_from_slice(msg.msg_type())));
        if let Some(id) = &bmr.ref_id {
            body.push((
                tags::BUSINESS_REJECT_REF_ID,
                Bytes::copy_from_slice(id.as_bytes()),
            ));
        }
        body.push((
            tags::BUSINESS_REJECT_REASON,
            Bytes::from(bmr.reason.to_string()),
        ));
        let route = reverse_route(msg);
        self.send_admin(b"j", &route, &body, store);
    }
}

enum HeaderValue {
    Seq(u64),
    Sender,
    Now,
    Target,
    Extra(usize),
}

/// Encodes `tag=value<SOH>` fields in the given order.
pub fn encode_fields(fields: &[(i32, Bytes)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|(_, v)| v.len() + 6).sum());
    for (t, v) in fields {
        crate::fix::encoder::push_int(&mut out, i64::from(*t));
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(crate::fix::SOH);
    }
    out
}

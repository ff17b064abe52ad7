//! QuickFIX's acceptance-test application (`SessionRole=echo`): valid
//! NewOrderSingle, SecurityDefinition and Email messages are echoed back to
//! the sender with their body re-serialised in canonical order; an order
//! flagged PossResend whose ClOrdID was already seen since logon is dropped;
//! every other application message gets BusinessMessageReject 380=3.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use crate::fix::dictionary::Dictionary;
use crate::fix::{tags, FieldSpan, Message};
use crate::session::outbound::encode_fields;
use crate::session::resend::is_header_tag;
use crate::session::{Application, BusinessReject, OutboundMessage, SessionId};

/// Header fields the echo replaces with its own (or drops).
const NOT_ECHOED: [i32; 9] = [8, 9, 35, 34, 49, 52, 56, 43, 122];

/// The echo application of one session.
#[derive(Debug, Default)]
pub struct EchoApp {
    dictionary: Option<Arc<Dictionary>>,
    seen_cl_ord_ids: HashSet<Vec<u8>>,
}

impl EchoApp {
    /// An echo application; the dictionary gives group structure for ordering.
    pub fn new(dictionary: Option<Arc<Dictionary>>) -> EchoApp {
        EchoApp {
            dictionary,
            seen_cl_ord_ids: HashSet::new(),
        }
    }

    fn body_fields(&self, msg: &Message) -> Vec<FieldSpan> {
        match &self.dictionary {
            Some(d) => crate::fix::validate::canonical_body(d, msg),
            None => {
                let mut body: Vec<FieldSpan> = msg.fields()[3..]
                    .iter()
                    .filter(|f| !is_header_tag(f.tag) && f.tag != tags::CHECK_SUM)
                    .copied()
                    .collect();
                body.sort_by_key(|f| f.tag);
                body
            }
        }
    }

    fn echo(&self, msg: &Message) -> OutboundMessage {
        let header: Vec<(i32, Bytes)> = msg.fields()[3..]
            .iter()
            .filter(|f| is_header_tag(f.tag) && !NOT_ECHOED.contains(&f.tag))
            .map(|f| (f.tag, msg.raw().slice(f.start as usize..f.end as usize)))
            .collect();
        let body: Vec<(i32, Bytes)> = self
            .body_fields(msg)
            .iter()
            .map(|f| (f.tag, msg.raw().slice(f.start as usize..f.end as usize)))
            .collect();
        OutboundMessage {
            msg_type: Bytes::copy_from_slice(msg.msg_type()),
            header,
            body: Bytes::from(encode_fields(&body)),
        }
    }
}

impl Application for EchoApp {
    fn on_logon(&mut self, _session: &SessionId) {
        self.seen_cl_ord_ids.clear();
    }

    fn on_logout(&mut self, _session: &SessionId) {
        self.seen_cl_ord_ids.clear();
    }

    fn from_app(
        &mut self,
        _session: &SessionId,
        msg: &Message,
        out: &mut Vec<OutboundMessage>,
    ) -> Result<(), BusinessReject> {
        match msg.msg_type() {
            b"D" => {
                let id = msg.get(tags::CL_ORD_ID).unwrap_or_default().to_vec();
                let first_time = self.seen_cl_ord_ids.insert(id);
                if !first_time && msg.get_flag(tags::POSS_RESEND) {
                    tracing::info!("dropping PossResend order already seen");
                    return Ok(());
                }
                out.push(self.echo(msg));
                Ok(())
            }
            b"d" | b"C" => {
                out.push(self.echo(msg));
                Ok(())
            }
            _ => Err(BusinessReject::unsupported_message_type()),
        }
    }
}

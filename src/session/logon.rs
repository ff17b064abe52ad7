//! Logon handling: authentication and resets before any state is touched,
//! HeartBtInt adoption, the Logon reply, and a too-high first MsgSeqNum.

use bytes::Bytes;

use crate::fix::tags;
use crate::fix::Message;

use super::application::Application;
use super::state::{Session, Status, SEC};
use super::store::MessageStore;

/// Whether a Logon carries the Username (553) and Password (554) a session
/// configures (None: not required). The error says which one is wrong,
/// never its value. The acceptor checks this before routing; the session
/// checks it again before touching its store.
pub(crate) fn check_credentials(
    username: Option<&str>,
    password: Option<&str>,
    msg: &Message,
) -> Result<(), &'static str> {
    if username.is_some_and(|u| msg.get(tags::USERNAME) != Some(u.as_bytes())) {
        return Err("wrong or missing Username");
    }
    if password.is_some_and(|p| msg.get(tags::PASSWORD) != Some(p.as_bytes())) {
        return Err("wrong or missing Password");
    }
    Ok(())
}

impl Session {
    pub(crate) fn next_logon(
        &mut self,
        msg: &Message,
        store: &mut dyn MessageStore,
        app: &mut dyn Application,
    ) {
        let received_reset = msg.get_flag(tags::RESET_SEQ_NUM_FLAG);
        let mid_session = self.is_logged_on();
        if mid_session && !received_reset {
            tracing::warn!(session = %self.cfg.id, "Logon received while logged on; disconnecting");
            self.disconnect();
            return;
        }
        if !mid_session && !self.authenticate(msg) {
            self.disconnect();
            return;
        }
        // Checks that must pass before the store may be reset.
        if !mid_session && !self.logon_time_and_ids_ok(msg) {
            self.disconnect();
            return;
        }
        let Some(seq) = msg.seq_num() else {
            self.disconnect();
            return;
        };
        if received_reset || (!mid_session && self.cfg.reset_on_logon) {
            store.reset(self.now);
        }
        if seq < store.next_target_seq() && !msg.get_flag(tags::POSS_DUP_FLAG) {
            // verify(checkTooHigh=false, checkTooLow=true). Not LoggedOn:
            // the application never hears of this session.
            self.logout_too_low(seq, store);
            return;
        }
        let hb = msg
            .get_u64(tags::HEART_BT_INT)
            .or(self.cfg.heart_bt_int.map(u64::from))
            .unwrap_or(30);
        self.heart_bt_int = (hb.min(86_400) as i64) * SEC;
        self.status = Status::LoggedOn;
        self.last_received = self.now;
        self.test_requests = 0;
        self.logout_sent_at = None;
        self.send_logon_reply(hb, received_reset, store);
        if seq > store.next_target_seq() && !received_reset {
            self.queue.clear();
            self.resend_range = None;
            let seq_for_queue = seq;
            self.queue_and_request(msg, seq_for_queue, store);
        } else {
            store.set_next_target_seq(store.next_target_seq() + 1);
        }
        tracing::info!(session = %self.cfg.id, heart_bt_int = hb, "logged on");
        app.on_logon(&self.cfg.id);
    }

    fn queue_and_request(&mut self, msg: &Message, seq: u64, store: &mut dyn MessageStore) {
        self.queue.insert(seq, msg.clone());
        self.send_resend_request(seq, store);
    }

    /// Username / Password (553 / 554) when the session configures them.
    fn authenticate(&self, msg: &Message) -> bool {
        let cfg = &self.cfg;
        match check_credentials(cfg.username.as_deref(), cfg.password.as_deref(), msg) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(session = %cfg.id, "Logon refused: {why}");
                false
            }
        }
    }

    /// SendingTime and CompIDs of a first Logon. A failure closes the
    /// connection without a word (the counterparty is not yet trusted).
    fn logon_time_and_ids_ok(&self, msg: &Message) -> bool {
        let time_ok = msg
            .get(tags::SENDING_TIME)
            .map(|t| self.is_good_time(t))
            .unwrap_or(false);
        if !time_ok {
            tracing::warn!(session = %self.cfg.id, "Logon refused: SendingTime accuracy problem");
            return false;
        }
        let ids_ok = msg.get(tags::SENDER_COMP_ID) == Some(self.cfg.id.target_comp_id.as_bytes())
            && msg.get(tags::TARGET_COMP_ID) == Some(self.cfg.id.sender_comp_id.as_bytes());
        if !ids_ok {
            tracing::warn!(session = %self.cfg.id, "Logon refused: CompID problem");
        }
        ids_ok
    }

    fn send_logon_reply(&mut self, hb: u64, reset: bool, store: &mut dyn MessageStore) {
        let mut body: Vec<(i32, Bytes)> = vec![
            (tags::ENCRYPT_METHOD, Bytes::from_static(b"0")),
            (tags::HEART_BT_INT, Bytes::from(hb.to_string())),
        ];
        if reset {
            body.push((tags::RESET_SEQ_NUM_FLAG, Bytes::from_static(b"Y")));
        }
        if self.cfg.send_next_expected_msg_seq_num {
            let next = store.next_target_seq() + 1;
            body.push((
                tags::NEXT_EXPECTED_MSG_SEQ_NUM,
                Bytes::from(next.to_string()),
            ));
        }
        self.send_admin(b"A", &[], &body, store);
    }
}

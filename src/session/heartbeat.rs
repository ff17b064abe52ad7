//! Timers: LogonTimeout, LogoutTimeout, Heartbeat, TestRequest and the
//! receive timeout, with QuickFIX's formulas (TestRequest after 1.2 ×
//! HeartBtInt of silence per outstanding request, disconnect after 2.4 ×).

use crate::fix::time::UtcNanos;

use super::state::{Session, Status, SEC};
use super::store::MessageStore;

impl Session {
    /// Called periodically (the acceptor ticks every 100 ms).
    pub fn on_timer(&mut self, now: UtcNanos, store: &mut dyn MessageStore) {
        self.now = now;
        match self.status {
            Status::Disconnected => {}
            Status::AwaitingLogon { since } => {
                if now - since >= i64::from(self.cfg.logon_timeout_secs) * SEC {
                    tracing::info!(session = %self.cfg.id, "LogonTimeout expired; disconnecting");
                    self.disconnect();
                }
            }
            Status::LoggedOn => self.logged_on_timer(store),
        }
    }

    fn logged_on_timer(&mut self, store: &mut dyn MessageStore) {
        if self.disconnect_pending() || !self.check_session_time(store) {
            return;
        }
        let now = self.now;
        if let Some(at) = self.logout_sent_at {
            if now - at >= i64::from(self.cfg.logout_timeout_secs) * SEC {
                tracing::info!(session = %self.cfg.id, "LogoutTimeout expired; disconnecting");
                self.disconnect();
                return;
            }
        }
        let hb = self.heart_bt_int;
        if hb == 0 {
            return;
        }
        let since_sent = now - self.last_sent;
        let since_received = now - self.last_received;
        if since_sent < hb && since_received < hb {
            return;
        }
        if since_received * 10 >= hb * 24 {
            tracing::warn!(session = %self.cfg.id, "no message received for 2.4 x HeartBtInt; disconnecting");
            self.disconnect();
            return;
        }
        if since_received * 10 >= hb * 12 * (i64::from(self.test_requests) + 1) {
            self.send_test_request(store);
            self.test_requests += 1;
        } else if since_sent >= hb && self.test_requests == 0 {
            self.send_heartbeat(None, store);
        }
    }
}

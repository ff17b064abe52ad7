//! The core's side of the admin API: answers from the live sessions and
//! venue, and operator actions, journaled with who did them.

use serde_json::{json, Value};

use super::*;

impl Core {
    /// Answers one admin request (actions take effect in this batch).
    pub(super) fn admin(&mut self, req: AdminRequest, now: UtcNanos) -> AdminReply {
        match req {
            AdminRequest::Sessions => AdminReply::Json(self.sessions_json()),
            AdminRequest::Book { symbol, depth } => self.book_json(&symbol, depth),
            AdminRequest::Positions => self.positions_json(),
            AdminRequest::Metrics => AdminReply::Metrics(self.metrics_text()),
            AdminRequest::Action { .. } if self.store_down.is_some() => AdminReply::Error(
                503,
                "the store cannot write; nothing was done (retry when fixgw_store_down is 0)"
                    .into(),
            ),
            AdminRequest::Action { who, action } => self.operator(who, action, now),
        }
    }

    fn sessions_json(&self) -> Value {
        let list: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let cfg = e.session.config();
                json!({
                    "session": cfg.id.to_string(),
                    "target_comp_id": cfg.id.target_comp_id,
                    "role": cfg.role.as_str(),
                    "connected": e.conn.is_some(),
                    "logged_on": e.session.is_logged_on(),
                    "next_sender_seq": e.store.next_sender_seq(),
                    "next_target_seq": e.store.next_target_seq(),
                    "stored_messages": e.store.stored_messages(),
                })
            })
            .collect();
        Value::Array(list)
    }

    fn book_json(&self, symbol: &str, depth: usize) -> AdminReply {
        let Some(venue) = self.venue.as_ref() else {
            return AdminReply::Error(404, "this gateway runs no venue".into());
        };
        let Some((id, spec)) = venue.instrument_spec(symbol) else {
            return AdminReply::Error(404, format!("unknown symbol {symbol}"));
        };
        let engine = venue.engine();
        let n = if depth == 0 { usize::MAX } else { depth };
        let side = |s: Side| -> Vec<Value> {
            engine
                .book(id)
                .map(|b| b.depth(s, n))
                .unwrap_or_default()
                .iter()
                .map(|l| {
                    json!({
                        "price": spec.ticks_to_price(l.price).to_string(),
                        "qty": spec.lots_to_qty(l.qty).to_string(),
                        "orders": l.order_count,
                    })
                })
                .collect()
        };
        AdminReply::Json(json!({
            "symbol": symbol,
            "halted": engine.is_halted(id),
            "last_trade_price": engine.last_trade_price(id).map(|p| spec.ticks_to_price(p).to_string()),
            "bids": side(Side::Buy),
            "asks": side(Side::Sell),
        }))
    }

    fn positions_json(&self) -> AdminReply {
        let Some(venue) = self.venue.as_ref() else {
            return AdminReply::Error(404, "this gateway runs no venue".into());
        };
        let engine = venue.engine();
        let mut list = Vec::new();
        for (a, account) in venue.account_list().iter().enumerate() {
            for symbol in venue.symbol_names() {
                let Some((id, spec)) = venue.instrument_spec(symbol) else {
                    continue;
                };
                let Some(p) = engine.position(a as crate::engine::AccountId, id) else {
                    continue;
                };
                let pos = p.position;
                if pos.bought_qty == 0 && pos.sold_qty == 0 {
                    continue;
                }
                let money = |ticks_x_lots: i64| {
                    (spec.ticks_to_price(ticks_x_lots) * spec.lot_size)
                        .normalize()
                        .to_string()
                };
                list.push(json!({
                    "account": account,
                    "symbol": symbol,
                    "net_qty": spec.lots_to_qty(pos.net_qty.unsigned_abs()).to_string(),
                    "side": if pos.net_qty >= 0 { "long" } else { "short" },
                    "bought_qty": spec.lots_to_qty(pos.bought_qty).to_string(),
                    "sold_qty": spec.lots_to_qty(pos.sold_qty).to_string(),
                    "realized_pnl": money(pos.realized),
                    "unrealized_pnl": money(p.unrealized),
                    "blocked": engine.is_blocked(a as crate::engine::AccountId),
                }));
            }
        }
        AdminReply::Json(Value::Array(list))
    }

    fn metrics_text(&self) -> String {
        let rejects = self
            .venue
            .as_ref()
            .map(|v| v.reject_counts())
            .unwrap_or_default();
        let live = Live {
            connected: self.entries.iter().filter(|e| e.conn.is_some()).count(),
            configured: self.entries.len(),
            trades: self.venue.as_ref().map_or(0, |v| v.engine().trade_count()),
            md_subscriptions: self.venue.as_ref().map_or(0, |v| v.md_subscriptions()),
            store_down: self.store_down.is_some(),
            venue_rejects: &rejects,
        };
        self.metrics.render(&live)
    }

    fn operator(&mut self, who: String, action: OperatorAction, now: UtcNanos) -> AdminReply {
        let text = action.text();
        let journal = |core: &mut Core| {
            core.venue_input(
                VenueInput::Operator {
                    who: who.clone(),
                    ts_ns: now.max(0) as u64,
                    action: text.clone(),
                },
                now,
            )
        };
        let session_entry = |core: &Core, comp: &str| core.by_comp.get(comp).copied();
        match &action {
            OperatorAction::Halt(_)
            | OperatorAction::Resume(_)
            | OperatorAction::Kill(_)
            | OperatorAction::Unblock(_) => {
                if self.venue.is_none() {
                    return AdminReply::Error(404, "this gateway runs no venue".into());
                }
                match journal(self) {
                    Ok(()) => AdminReply::Json(json!({ "done": text, "by": who })),
                    Err(e) => AdminReply::Error(404, e.text),
                }
            }
            OperatorAction::Logout(comp) => {
                let Some(i) = session_entry(self, comp) else {
                    return AdminReply::Error(404, format!("unknown session {comp}"));
                };
                if self.entries[i].conn.is_none() {
                    return AdminReply::Error(409, format!("session {comp} is not connected"));
                }
                let _ = journal(self);
                let e = &mut self.entries[i];
                e.session
                    .force_logout("Logged out by the operator", now, &mut e.store);
                AdminReply::Json(json!({ "done": text, "by": who }))
            }
            OperatorAction::SetSeq {
                session,
                sender,
                target,
            } => {
                let Some(i) = session_entry(self, session) else {
                    return AdminReply::Error(404, format!("unknown session {session}"));
                };
                if self.entries[i].conn.is_some() {
                    return AdminReply::Error(
                        409,
                        format!("session {session} is connected: log it out first"),
                    );
                }
                let _ = journal(self);
                let store = &mut self.entries[i].store;
                if let Some(n) = sender {
                    store.set_next_sender_seq(*n);
                }
                if let Some(n) = target {
                    store.set_next_target_seq(*n);
                }
                AdminReply::Json(json!({
                    "done": text,
                    "by": who,
                    "next_sender_seq": store.next_sender_seq(),
                    "next_target_seq": store.next_target_seq(),
                }))
            }
        }
    }
}

//! Venue checkpoints: the venue's whole dynamic state (the engine's
//! snapshot, remembered orders, ClOrdID indexes, counters, market data) as
//! bytes, taken between batches. Start-up restores the newest checkpoint
//! and replays only the journal after it, instead of every input since the
//! store was created.
//!
//! What comes from the configuration (instruments, accounts, sessions and
//! their settings) is not in a checkpoint: a restore builds the venue from
//! the configuration and takes over the state. The configuration may have
//! gained instruments and accounts (after the others) and sessions
//! (anywhere, matched by CompID); a checkpoint taken under a configuration
//! that had an instrument, account or session this one lacks or changed is
//! refused (start-up then replays the whole journal).

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::{OrderRec, Venue, REJECT_CANCEL, REJECT_ORDER};
use crate::engine::matching::Engine;
use crate::venue::market_data::MdCheckpoint;

const MAGIC: &str = "fixgw venue checkpoint";
/// Version 2 added the configuration; a version 1 checkpoint restores
/// under the configuration the venue is built with.
const VERSION: u32 = 2;

/// Why a checkpoint cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Not a checkpoint of this version, or damaged.
    #[error("not a readable venue checkpoint: {0}")]
    Decode(String),
    /// Taken under other sessions or instruments.
    #[error("the checkpoint was taken under another configuration: {0}")]
    ConfigMismatch(String),
    /// Restored onto a venue that has processed input.
    #[error("a checkpoint is restored onto a fresh venue only")]
    NotFresh,
}

/// One session's part (in the configuration's session order): its
/// ClOrdID index and working orders.
#[derive(Serialize, Deserialize)]
struct SessionPart<'a> {
    cl_ord_ids: Vec<(Cow<'a, str>, u64)>,
    live: Cow<'a, BTreeSet<u64>>,
}

#[derive(Serialize, Deserialize)]
struct State<'a> {
    magic: Cow<'a, str>,
    version: u32,
    /// What the state's numbers refer to: instruments (symbol, tick and
    /// lot size), accounts, and the sessions with their accounts.
    setup: String,
    engine: Cow<'a, [u8]>,
    sessions: Vec<SessionPart<'a>>,
    orders: Vec<(u64, Cow<'a, OrderRec>)>,
    by_engine_id: Cow<'a, super::EngineIds>,
    done: Cow<'a, VecDeque<u64>>,
    next_order_id: u64,
    next_exec_id: u64,
    next_request_ref: u64,
    rejects: Vec<(Cow<'a, str>, u32, u64)>,
    md: MdCheckpoint<'a>,
    /// The configuration it was taken under ([`Venue::config_text`]); last,
    /// so a version 1 checkpoint reads as one without it.
    config: Option<Cow<'a, str>>,
}

impl Venue {
    /// The configuration a checkpoint's numbers depend on: instruments,
    /// accounts and sessions, in their configured order.
    fn checkpoint_setup(&self) -> String {
        let (ni, na) = (self.instruments.len(), self.account_names.len());
        format!(
            "{}{}]",
            self.setup_head(ni, na),
            self.setup_sessions().join(", ")
        )
    }

    /// The setup up to the session list: the first `ni` instruments (with
    /// tick and lot sizes) and `na` accounts.
    fn setup_head(&self, ni: usize, na: usize) -> String {
        let instruments: Vec<String> = self.instruments[..ni]
            .iter()
            .map(|i| {
                format!(
                    "{} tick {} lot {}",
                    i.symbol, i.spec.tick_size, i.spec.lot_size
                )
            })
            .collect();
        format!(
            "instruments [{}], accounts [{}], sessions [",
            instruments.join(", "),
            self.account_names[..na].join(", "),
        )
    }

    /// Each session as `CompID=account` (`-` without one).
    fn setup_sessions(&self) -> Vec<String> {
        self.sessions
            .iter()
            .map(|s| {
                let acc = s.account.and_then(|a| self.account_names.get(a as usize));
                session_entry(&s.info.comp_id, acc.map(String::as_str))
            })
            .collect()
    }

    /// Where each of a checkpoint's sessions is in this venue's list, by
    /// CompID, and how many instruments the checkpoint has: the
    /// configuration may list instruments and accounts after the
    /// checkpoint's, and sessions anywhere, but it keeps every instrument
    /// (with its tick and lot size), account and session (with its
    /// account) the checkpoint has.
    fn session_map(&self, state: &State<'_>) -> Result<(Vec<u32>, usize), CheckpointError> {
        let (ni, na) = Engine::snapshot_counts(&state.engine)
            .map_err(|e| CheckpointError::Decode(e.to_string()))?;
        let mismatch = |why: String| {
            CheckpointError::ConfigMismatch(format!(
                "{why}: taken under {}, configured {} (instruments and accounts may be \
                 added after the others, sessions anywhere; none removed or changed)",
                state.setup,
                self.checkpoint_setup()
            ))
        };
        if ni > self.instruments.len() || na > self.account_names.len() {
            return Err(mismatch(format!(
                "it has {ni} instruments and {na} accounts, {} and {} are configured",
                self.instruments.len(),
                self.account_names.len()
            )));
        }
        let listed = state
            .setup
            .strip_prefix(self.setup_head(ni, na).as_str())
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or_else(|| mismatch("its instruments or accounts differ".into()))?;
        let theirs: Vec<String> = match (&state.config, listed) {
            // From the configuration it keeps (a CompID may hold ", ").
            (Some(config), _) => {
                let (cfg, sessions) =
                    Venue::parse_config_text(config).map_err(CheckpointError::Decode)?;
                sessions
                    .iter()
                    .map(|s| {
                        let acc = cfg.account_for_session(&s.comp_id);
                        let name = acc.and_then(|a| cfg.accounts.get(a as usize));
                        session_entry(&s.comp_id, name.map(|a| a.name.as_str()))
                    })
                    .collect()
            }
            (None, "") => Vec::new(),
            (None, list) => list.split(", ").map(str::to_string).collect(),
        };
        if theirs.len() != state.sessions.len() {
            return Err(CheckpointError::Decode(
                "session parts do not match its sessions".into(),
            ));
        }
        let ours = self.setup_sessions();
        let map = theirs
            .iter()
            .map(|t| {
                ours.iter()
                    .position(|o| o == t)
                    .map(|i| i as u32)
                    .ok_or_else(|| mismatch(format!("session {t} is not configured")))
            })
            .collect::<Result<_, _>>()?;
        Ok((map, ni))
    }

    /// The venue's state as checkpoint bytes. Take it between batches (after
    /// a commit, market data flushed): the state then equals a replay of
    /// every input journaled so far.
    pub fn checkpoint(&self) -> Vec<u8> {
        let state = State {
            magic: Cow::Borrowed(MAGIC),
            version: VERSION,
            setup: self.checkpoint_setup(),
            engine: Cow::Owned(self.engine.snapshot()),
            sessions: self
                .sessions
                .iter()
                .map(|s| SessionPart {
                    cl_ord_ids: s
                        .cl_ord_ids
                        .iter()
                        .map(|(c, &no)| (Cow::Borrowed(c.as_str()), no))
                        .collect(),
                    live: Cow::Borrowed(&s.live),
                })
                .collect(),
            orders: self
                .orders
                .iter()
                .map(|(no, o)| (no, Cow::Borrowed(o)))
                .collect(),
            by_engine_id: Cow::Borrowed(&self.by_engine_id),
            done: Cow::Borrowed(&self.done),
            next_order_id: self.next_order_id,
            next_exec_id: self.next_exec_id,
            next_request_ref: self.next_request_ref,
            rejects: self
                .rejects
                .iter()
                .map(|(&(kind, code), &n)| (Cow::Borrowed(kind), code, n))
                .collect(),
            md: self.md.checkpoint(),
            config: Some(Cow::Borrowed(self.config_text())),
        };
        // Serialising into a Vec fails only on types serde cannot write;
        // every field here is plain data.
        postcard::to_stdvec(&state).expect("venue state serialises")
    }

    /// A venue with a checkpoint's state, under the configuration it was
    /// taken under (this fresh venue's, from [`Venue::new`], for a
    /// checkpoint that does not record it): it then behaves exactly as the
    /// venue the checkpoint was taken of.
    pub fn restored(self, bytes: &[u8]) -> Result<Venue, CheckpointError> {
        let mut scratch = Vec::new();
        let state = decode_state(bytes, &mut scratch)?;
        let own = match &state.config {
            Some(c) => self.fresh_under(c).map_err(CheckpointError::Decode)?,
            None => self,
        };
        own.restore_state(state)
    }

    /// This venue, fresh from [`Venue::new`], with a checkpoint's state,
    /// under this venue's configuration (see [`Venue::reconfigure`]).
    pub(super) fn restored_onto_own_config(self, bytes: &[u8]) -> Result<Venue, CheckpointError> {
        let mut scratch = Vec::new();
        self.restore_state(decode_state(bytes, &mut scratch)?)
    }

    fn restore_state(self, state: State<'_>) -> Result<Venue, CheckpointError> {
        let decode = |e: &dyn std::fmt::Display| CheckpointError::Decode(e.to_string());
        let mut v = self;
        if v.next_order_id != 1 || v.next_exec_id != 1 {
            return Err(CheckpointError::NotFresh);
        }
        let (map, ni) = v.session_map(&state)?;
        let owners = |o: u32| map.get(o as usize).copied();
        v.engine
            .restore_onto(&state.engine, &owners)
            .map_err(|e| decode(&e))?;
        // Into the structures `Venue::new` sized up front (growing them
        // later would stall the core).
        for (&s, part) in map.iter().zip(state.sessions) {
            let s = &mut v.sessions[s as usize];
            s.cl_ord_ids
                .extend(part.cl_ord_ids.into_iter().map(|(c, no)| (c.into(), no)));
            s.live = part.live.into_owned();
        }
        for (no, o) in state.orders {
            let mut o = o.into_owned();
            match owners(o.owner) {
                Some(owner) if (o.instrument as usize) < ni => o.owner = owner,
                _ => {
                    return Err(decode(&format!(
                        "order {no} names an unknown session or instrument"
                    )))
                }
            }
            v.orders.insert(no, o);
        }
        v.by_engine_id.replace_with(&state.by_engine_id);
        v.done = state.done.into_owned();
        v.next_order_id = state.next_order_id;
        v.next_exec_id = state.next_exec_id;
        v.next_request_ref = state.next_request_ref;
        for (kind, code, n) in state.rejects {
            let kind = match &*kind {
                REJECT_ORDER => REJECT_ORDER,
                REJECT_CANCEL => REJECT_CANCEL,
                other => return Err(decode(&format!("unknown reject kind {other:?}"))),
            };
            v.rejects.insert((kind, code), n);
        }
        v.md.restore(state.md, &owners).map_err(|e| decode(&e))?;
        Ok(v)
    }
}

/// A session in the setup: `CompID=account` (`-` without one).
fn session_entry(comp_id: &str, account: Option<&str>) -> String {
    format!("{comp_id}={}", account.unwrap_or("-"))
}

/// A checkpoint's state, of either version (`scratch` holds a version 1
/// checkpoint's bytes while it is read).
fn decode_state<'a>(
    bytes: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<State<'a>, CheckpointError> {
    let decode = |e: &dyn std::fmt::Display| CheckpointError::Decode(e.to_string());
    let state: State = match postcard::from_bytes(bytes) {
        Ok(s) => s,
        // Version 1 ends before the configuration: read with it absent
        // (postcard's `None` is one zero byte).
        Err(e) => {
            scratch.clear();
            scratch.extend_from_slice(bytes);
            scratch.push(0);
            match postcard::from_bytes::<State>(scratch) {
                Ok(s) if s.version == 1 => s,
                _ => return Err(decode(&e)),
            }
        }
    };
    if state.magic != MAGIC || !(state.version == VERSION || state.version == 1) {
        return Err(decode(&"bad magic or version"));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::order_entry::tests::{setup, T};

    /// A checkpoint restores under the configuration it was taken under,
    /// whatever the venue it is restored onto was built with; the journal
    /// after it then switches as it did live.
    /// A venue with a resting order, and a fresh one under a configuration
    /// with a lower limit.
    fn taken_and_today() -> (T, Venue) {
        let (cfg, sessions) = setup();
        let mut tight = cfg.clone();
        tight.accounts[1].limits.max_order_qty = 100.into();
        let mut t = T::new();
        t.limit("CLIENT2", "b1", "1", "500", "150.00");
        (t, Venue::new(&tight, &sessions).unwrap())
    }

    #[test]
    fn a_checkpoint_restores_under_its_own_configuration() {
        let (t, today) = taken_and_today();
        let bytes = t.v.checkpoint();
        let restored = today.clone().restored(&bytes).unwrap();
        assert_eq!(restored.config_text(), t.v.config_text());
        assert_ne!(restored.config_text(), today.config_text());
        assert_eq!(restored.engine().snapshot(), t.v.engine().snapshot());
    }

    /// A checkpoint written before configurations were kept (version 1)
    /// restores under the configuration of the venue it is restored onto.
    #[test]
    fn a_version_1_checkpoint_restores_under_the_venue_s_configuration() {
        let (t, today) = taken_and_today();
        let mut scratch = Vec::new();
        let v2 = t.v.checkpoint();
        let mut state = decode_state(&v2, &mut scratch).unwrap();
        state.version = 1;
        state.config = None;
        let mut v1 = postcard::to_stdvec(&state).unwrap();
        assert_eq!(v1.pop(), Some(0), "version 1 ends where `config` begins");
        let restored = today.clone().restored(&v1).unwrap();
        assert_eq!(restored.config_text(), today.config_text());
        assert_eq!(restored.engine().snapshot(), t.v.engine().snapshot());
        // Damaged, it is refused.
        assert!(today.restored(&v1[..v1.len() - 3]).is_err());
    }
}

//! `fixgw sessions`, `fixgw store set-seq` and `fixgw store reset`: read and
//! change sessions' sequence numbers in a store no gateway is using. Changes
//! are written as one batch record through `BatchLog::commit_exact` (the
//! number set is the one used next, with no reservation), so a restarted
//! gateway recovers them like any other batch.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};

use crate::fix::time::now_utc;
use crate::session::batch_store::{BatchSessionStore, Recovered};
use crate::session::settings::GatewaySettings;
use crate::session::store::MessageStore;

use super::{iso_time, open_log, settings_and_data};

/// Where the store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreLocation {
    /// Settings file; gives the store directory (FileStorePath) and the
    /// configured sessions [default: sessions/gateway.cfg, which may be
    /// missing when --data is given].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Store directory (default: FileStorePath from the settings, else ./data).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Options of `fixgw store set-seq`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("seq").required(true).multiple(true).args(["sender", "target"])))]
pub struct SetSeqArgs {
    /// Session key (FIX.4.4:FIXGW->CLIENT1) or the client's CompID (CLIENT1).
    #[arg(long)]
    pub session: String,
    /// Next MsgSeqNum the gateway sends.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub sender: Option<u64>,
    /// Next MsgSeqNum the gateway expects from the client.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub target: Option<u64>,
    #[command(flatten)]
    pub location: StoreLocation,
}

/// Options of `fixgw store reset`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResetArgs {
    /// Session key (FIX.4.4:FIXGW->CLIENT1) or the client's CompID (CLIENT1).
    #[arg(long)]
    pub session: String,
    #[command(flatten)]
    pub location: StoreLocation,
}

/// Lists every stored or configured session with its sequence numbers.
pub fn sessions(location: &StoreLocation, out: &mut dyn Write) -> anyhow::Result<()> {
    let (settings, dir) = settings_and_data(location.config.as_deref(), location.data.as_deref())?;
    let (log, rec) = open_log(&dir)?;
    writeln!(
        out,
        "store {}: {} batch record(s)",
        dir.display(),
        log.next_batch() - 1
    )?;
    writeln!(
        out,
        "{:<32} {:>11} {:>11} {:>7}  {:<30} note",
        "SESSION", "NEXT SENDER", "NEXT TARGET", "STORED", "CREATED"
    )?;
    let configured = configured_keys(settings.as_ref());
    let mut stored: Vec<&String> = rec
        .sessions
        .keys()
        .filter(|k| !configured.contains(k))
        .collect();
    stored.sort();
    for key in configured.iter().chain(stored) {
        match rec.sessions.get(key) {
            Some(s) => {
                let mut notes = Vec::new();
                if !(configured.contains(key) || settings.is_none()) {
                    notes.push("not in the settings".to_string());
                }
                if let Some(last) = s.next_sender_before_unclean_stop() {
                    notes.push(format!(
                        "unclean stop: {last} was next; continues after its reservation"
                    ));
                }
                writeln!(
                    out,
                    "{:<32} {:>11} {:>11} {:>7}  {:<30} {}",
                    key,
                    s.next_sender_seq(),
                    s.next_target_seq(),
                    s.stored_messages(),
                    iso_time(s.creation_time()),
                    notes.join("; ")
                )?
            }
            None => writeln!(
                out,
                "{:<32} {:>11} {:>11} {:>7}  {:<30} no record yet",
                key, 1, 1, 0, "-"
            )?,
        }
    }
    Ok(())
}

/// Sets one session's next sender and/or target sequence number.
pub fn set_seq(args: &SetSeqArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    change(&args.session, &args.location, out, |store, out| {
        let (sender, target) = (store.next_sender_seq(), store.next_target_seq());
        if let Some(n) = args.sender {
            store.set_next_sender_seq(n);
            if n < sender {
                writeln!(
                    out,
                    "warning: next sender lowered from {sender} to {n}: the client will refuse our messages as MsgSeqNum too low unless it resets too"
                )?;
            }
        }
        if let Some(n) = args.target {
            store.set_next_target_seq(n);
        }
        Ok(format!(
            "next sender {sender} -> {}, next target {target} -> {}",
            store.next_sender_seq(),
            store.next_target_seq()
        ))
    })
}

/// Resets one session: sequence numbers 1/1, stored messages dropped.
pub fn reset(args: &ResetArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    change(&args.session, &args.location, out, |store, _| {
        let (sender, target) = (store.next_sender_seq(), store.next_target_seq());
        let dropped = store.stored_messages();
        store.reset(now_utc());
        Ok(format!(
            "reset: next sender {sender} -> 1, next target {target} -> 1, {dropped} stored message(s) dropped"
        ))
    })
}

/// Opens the store, applies `f` to the session and commits it as one batch.
fn change(
    session: &str,
    location: &StoreLocation,
    out: &mut dyn Write,
    f: impl FnOnce(&mut BatchSessionStore, &mut dyn Write) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let (settings, dir) = settings_and_data(location.config.as_deref(), location.data.as_deref())?;
    let (mut log, mut rec) = open_log(&dir)?;
    let key = resolve(session, settings.as_ref(), &rec)?;
    let mut store = match rec.sessions.remove(&key) {
        Some(s) => s,
        None => log.new_session(&key, now_utc()),
    };
    let what = f(&mut store, out)?;
    let batch = log.next_batch();
    log.commit_exact(&[], std::iter::once(&mut store))
        .map_err(|e| anyhow!("writing to the store in {}: {e}", dir.display()))?;
    writeln!(
        out,
        "{key}: {what} (recorded as batch {batch} in {})",
        dir.display()
    )?;
    Ok(())
}

fn configured_keys(settings: Option<&GatewaySettings>) -> Vec<String> {
    settings.map_or_else(Vec::new, |s| {
        s.sessions.iter().map(|(c, _)| c.id.to_string()).collect()
    })
}

/// The one session key `name` designates: a key, or a client CompID, among
/// the stored and the configured sessions.
fn resolve(
    name: &str,
    settings: Option<&GatewaySettings>,
    rec: &Recovered,
) -> anyhow::Result<String> {
    let mut known = configured_keys(settings);
    let mut stored: Vec<&String> = rec.sessions.keys().collect();
    stored.sort();
    for k in stored {
        if !known.contains(k) {
            known.push(k.clone());
        }
    }
    if known.iter().any(|k| k == name) {
        return Ok(name.to_string());
    }
    let matches: Vec<&String> = known
        .iter()
        .filter(|k| k.rsplit_once("->").is_some_and(|(_, t)| t == name))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "no session {name:?} in the store or the settings (known: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
        many => {
            let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            bail!(
                "{name:?} matches several sessions: {}; give the whole key",
                many.join(", ")
            )
        }
    }
}

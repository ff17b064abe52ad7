//! Assembling a running gateway from its settings: recover the batch log,
//! rebuild the venue by replaying the journal, start the core thread and
//! bind one listener per configured address and port.

pub mod core;
#[cfg(test)]
mod fault_tests;
pub mod harness;
pub mod message_log;
pub mod metrics;
#[cfg(test)]
mod resend_tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::admin::{AdminCall, AdminSettings, AdminState};
use crate::cpu_latency::CpuLatencyRequest;
use crate::engine::VenueConfig;
use crate::fix::time::now_utc;
use crate::session::acceptor::{Acceptor, AcceptorOptions, Listener, Route, SessionKey};
use crate::session::application::RejectAll;
use crate::session::batch_store::{BatchLog, FlushMode, Recovered};
use crate::session::settings::{Endpoint, GatewaySettings};
use crate::session::{Session, SessionConfig, SessionRole};
use crate::venue::echo::EchoApp;
use crate::venue::order_entry::{SessionInfo, Venue};

use self::core::{AppKind, Core, Entry};
use self::message_log::MessageLog;

/// Bound on messages queued from the connections to the core.
const CORE_QUEUE: usize = 65_536;
/// Bound on admin requests queued to the core.
const ADMIN_QUEUE: usize = 256;

/// Options of `fixgw run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Settings file (QuickFIX format).
    pub config: PathBuf,
    /// Venue file (instruments, accounts, limits).
    pub venue: PathBuf,
    /// Store directory; overrides FileStorePath.
    pub data: Option<PathBuf>,
    /// Durability of commits.
    pub flush_mode: FlushMode,
    /// CPU wake-up latency to request while running (µs), if any.
    pub cpu_wakeup_latency_us: Option<u32>,
    /// `fsync`: the least time between the starts of two flushes.
    pub commit_window: std::time::Duration,
}

/// A gateway bound to its ports, ready to serve.
pub struct Gateway {
    acceptor: Arc<Acceptor>,
    listeners: Vec<Listener>,
    core: Option<(Core, mpsc::Receiver<crate::session::acceptor::CoreMsg>)>,
    admin: Option<(TcpListener, AdminState)>,
    admin_rx: Option<mpsc::Receiver<AdminCall>>,
    ready: Arc<AtomicBool>,
    /// Held until the gateway is dropped (after `serve` returns).
    _cpu_latency: Option<CpuLatencyRequest>,
}

/// Longest wait for the core to log everyone out and commit at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time left to the connections' writers to send the last bytes.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(300);

/// Binds the admin HTTP listener: an explicitly configured address must
/// bind; the default one only warns (several gateways may share a host).
async fn bind_admin(settings: &AdminSettings) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = settings.address else {
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(l) => {
            tracing::info!(address = %l.local_addr()?, "admin HTTP listening");
            Ok(Some(l))
        }
        Err(e) if !settings.explicit => {
            tracing::warn!(%addr, error = %e, "admin HTTP not started (set AdminHttpAddress to choose another address, or off)");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot listen on AdminHttpAddress {addr}: {e}"
        )),
    }
}

fn app_for(cfg: &SessionConfig, venue: bool) -> AppKind {
    match cfg.role {
        SessionRole::Echo => AppKind::Echo(EchoApp::new(cfg.dictionary.clone())),
        _ if venue => AppKind::Venue,
        _ => AppKind::RejectAll(RejectAll),
    }
}

impl Gateway {
    /// Loads settings, recovers the store, rebuilds the venue and binds.
    pub async fn bind(opts: &RunOptions) -> anyhow::Result<Gateway> {
        let settings = load_settings(&opts.config)?;
        let cpu_latency = opts
            .cpu_wakeup_latency_us
            .map(CpuLatencyRequest::hold)
            .transpose()?;
        let venue = if needs_venue(&settings) {
            let cfg = VenueConfig::load(&opts.venue)?;
            Some(build_venue(&settings, &cfg)?)
        } else {
            None
        };
        let data_dir = data_dir(opts.data.as_deref(), &settings);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create store directory {}", data_dir.display()))?;
        tracing::info!(dir = %data_dir.display(), "reading the store");
        let (log, recovered) = BatchLog::open(&data_dir, opts.flush_mode)
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        let (core, known) = assemble(&settings, venue, log, recovered, now_utc())?;
        let core = core
            .with_checkpoints(settings.checkpoint_inputs)
            .context("cannot start the checkpoint thread")?;
        let mut endpoints = BTreeMap::new();
        for (_, endpoint) in &settings.sessions {
            endpoints.insert((endpoint.address.clone(), endpoint.port), endpoint);
        }
        let message_log = MessageLog::open(settings.sessions.iter().map(|(c, _)| &**c))
            .context("opening the message log")?;
        let mut listeners = Vec::new();
        for ((addr, port), endpoint) in endpoints {
            let l = TcpListener::bind((addr.as_str(), port))
                .await
                .with_context(|| format!("cannot listen on {addr}:{port}"))?;
            let tls = tls_acceptor_for(endpoint);
            tracing::info!(address = %l.local_addr()?, tls = tls.is_some(), "listening");
            listeners.push(Listener { tcp: l, tls });
        }
        let admin_settings =
            AdminSettings::from_settings(&settings.raw).map_err(anyhow::Error::msg)?;
        let ready = Arc::new(AtomicBool::new(false));
        let (admin, admin_rx) = match bind_admin(&admin_settings).await? {
            Some(l) => {
                let (atx, arx) = mpsc::channel(ADMIN_QUEUE);
                let state = AdminState::new(atx, ready.clone(), admin_settings.tokens.clone());
                (Some((l, state)), Some(arx))
            }
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel(CORE_QUEUE);
        let mut core = core.with_message_log(message_log);
        // fsync: the core goes on with the next batch while a flusher thread
        // makes the last one durable; writers wait for it.
        let (durable_tx, durable_rx) = tokio::sync::watch::channel(0);
        let pipelined = core
            .pipeline(durable_tx, opts.commit_window)
            .context("cannot start the store's flusher thread")?;
        let options = AcceptorOptions {
            max_message_size: settings.max_message_size,
            validate_length_and_checksum: settings.validate_length_and_checksum,
            nodelay: settings.socket_nodelay,
            logon_timeout: std::time::Duration::from_secs(u64::from(settings.logon_timeout_secs)),
            connection_rate_limit: settings.connection_rate_limit,
            max_failed_logons: settings.max_failed_logons,
            durable: pipelined.then_some(durable_rx),
        };
        Ok(Gateway {
            acceptor: Arc::new(Acceptor::new(known, tx, options)),
            listeners,
            core: Some((core, rx)),
            admin,
            admin_rx,
            ready,
            _cpu_latency: cpu_latency,
        })
    }

    /// Address of the admin HTTP server, if it runs.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Addresses actually bound.
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.tcp.local_addr().ok())
            .collect()
    }

    /// Starts the core thread, the listeners and the admin server, and
    /// serves until `shutdown` completes; then stops accepting, logs every
    /// session out, commits and closes (graceful shutdown).
    pub async fn serve(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let stop = Arc::new(AtomicBool::new(false));
        let mut core_thread = None;
        if let Some((core, rx)) = self.core.take() {
            let rt = tokio::runtime::Handle::current();
            let admin_rx = self.admin_rx.take();
            let stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name("fixgw-core".into())
                .spawn(move || core.run(rx, admin_rx, stop, rt));
            match spawned {
                Ok(h) => core_thread = Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the core thread");
                    return;
                }
            }
        }
        let mut tasks = Vec::new();
        for l in self.listeners {
            tasks.push(tokio::spawn(self.acceptor.clone().serve(l)));
        }
        if let Some((l, state)) = self.admin.take() {
            tasks.push(tokio::spawn(crate::admin::serve(l, state)));
        }
        self.ready.store(true, Ordering::Release);
        shutdown.await;
        self.ready.store(false, Ordering::Release);
        for t in &tasks {
            t.abort();
        }
        stop.store(true, Ordering::Release);
        if let Some(h) = core_thread {
            let joined = tokio::time::timeout(
                SHUTDOWN_TIMEOUT,
                tokio::task::spawn_blocking(move || h.join()),
            )
            .await;
            if joined.is_err() {
                tracing::error!("the core did not stop in time");
            }
        }
        tokio::time::sleep(SHUTDOWN_DRAIN).await;
    }
}

/// The TLS handshaker of an endpoint with SocketUseSSL=Y (its files were
/// loaded with the settings).
fn tls_acceptor_for(endpoint: &Endpoint) -> Option<tokio_rustls::TlsAcceptor> {
    endpoint
        .tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()))
}

/// Loads a settings file and checks that it defines at least one session.
pub fn load_settings(path: &Path) -> anyhow::Result<GatewaySettings> {
    let settings = GatewaySettings::load(path)?;
    if settings.sessions.is_empty() {
        anyhow::bail!("{}: no [SESSION] defined", path.display());
    }
    Ok(settings)
}

/// True when some session needs the venue (every role but `echo`).
pub fn needs_venue(settings: &GatewaySettings) -> bool {
    settings
        .sessions
        .iter()
        .any(|(c, _)| c.role != SessionRole::Echo)
}

/// Builds the venue for the configured sessions as `fixgw run` does. The
/// engine's `Owner` of a session is its index in `settings.sessions`.
pub fn build_venue(settings: &GatewaySettings, cfg: &VenueConfig) -> anyhow::Result<Venue> {
    let infos: Vec<SessionInfo> = settings
        .sessions
        .iter()
        .map(|(c, _)| SessionInfo::from_config(c))
        .collect();
    Venue::new(cfg, &infos).context("building the venue")
}

/// The store directory: `--data`, else the settings' FileStorePath, else `./data`.
pub fn data_dir(data: Option<&Path>, settings: &GatewaySettings) -> PathBuf {
    data.map(Path::to_path_buf)
        .or_else(|| settings.file_store_path.clone())
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// Builds the core from the settings and a recovered log: the venue (if
/// any) replays the journal, every configured session gets its recovered
/// store. Also returns the acceptor's routes. The gateway and the
/// in-process tests (fault injection, simulation) share this.
pub fn assemble(
    settings: &GatewaySettings,
    venue: Option<Venue>,
    mut log: BatchLog,
    mut recovered: Recovered,
    now: crate::fix::time::UtcNanos,
) -> anyhow::Result<(Core, HashMap<SessionKey, Route>)> {
    // While running: the checkpoint start-up restored, if it was the newest
    // (the next one makes it the fallback), and how far start-up compacted.
    let mut compaction = (None, 0);
    let (venue, replayed) = match venue {
        Some(v) => {
            let configured = v.config_text().to_string();
            let most = crate::venue::input::MAX_CONFIG_BYTES;
            if configured.len() > most {
                anyhow::bail!(
                    "the venue configuration is too large to journal: {} bytes, at most {most}",
                    configured.len()
                );
            }
            let (mut v, restored, replayed) = recover_venue(v, &log, &recovered)?;
            // From here on under the configuration given (journaled first
            // by `Core::start`).
            if v.config_text() != configured {
                tracing::info!("the venue configuration changed since the store was last run: the venue switches to it with its state");
            }
            v.reconfigure(&configured).map_err(|e| {
                anyhow::anyhow!(
                    "the venue configuration cannot take over from the one the store was last run under: {e}. \
                     Start with that configuration, or move the store aside to start empty"
                )
            })?;
            if let (Some(restored), true) = (restored, settings.compact_store) {
                let newest = recovered.checkpoints.first().map(|c| c.after);
                compaction = (
                    (newest == Some(restored)).then_some(restored),
                    compact(&mut log, &recovered, restored),
                );
            }
            (Some(v), replayed)
        }
        None => (None, 0),
    };
    tracing::info!(batches = recovered.batches, replayed, "store recovered");
    let mut entries = Vec::new();
    let mut known = HashMap::new();
    for (cfg, _) in &settings.sessions {
        let key = cfg.id.to_string();
        let store = recovered
            .sessions
            .remove(&key)
            .unwrap_or_else(|| log.new_session(&key, now));
        entries.push(Entry::new(
            Session::new(cfg.clone()),
            store,
            app_for(cfg, venue.is_some()),
        ));
        known.insert(
            (
                cfg.id.begin_string.clone(),
                cfg.id.sender_comp_id.clone(),
                cfg.id.target_comp_id.clone(),
            ),
            Route {
                queue: cfg.max_outbound_queue,
                allowed: cfg.allowed_remote_addresses.clone(),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                throttle: cfg.throttle,
            },
        );
    }
    // Sessions no longer configured keep their records: a later
    // configuration may bring them back.
    log.keep_for(recovered.sessions.values());
    let has_venue = venue.is_some();
    let mut core = Core::new(entries, log, venue);
    if settings.compact_store && has_venue {
        core = core.compacting(compaction.0, compaction.1);
    }
    Ok((core, known))
}

/// Rebuilds the venue, under the configuration the store was last run
/// under: the newest checkpoint that restores plus a replay of the inputs
/// after it; without one (none yet, or none can be read), a replay of
/// every journaled input, which a compacted journal no longer allows. Returns the
/// batch the restored checkpoint follows, if any, and the number of inputs
/// replayed.
fn recover_venue(
    fresh: Venue,
    log: &BatchLog,
    rec: &Recovered,
) -> anyhow::Result<(Venue, Option<u64>, usize)> {
    let mut refused = Vec::new();
    for c in &rec.checkpoints {
        // One before a compacted batch would need that batch's inputs.
        if let Some((_, last)) = rec.missing.filter(|(_, last)| c.after < *last) {
            refused.push(format!(
                "the one after batch {} is older than the compacted batch {last}",
                c.after
            ));
            continue;
        }
        // A spare stays for the next candidate, or a full replay. A
        // checkpoint that does not keep its configuration (version 1)
        // restores under the one its later inputs were replayed under.
        let later = &rec.inputs[c.first_input..];
        let base = fresh
            .clone()
            .for_journal(later.iter().map(|b| &b[..]))
            .map_err(|e| anyhow::anyhow!("the journal's first configuration: {e}"))?;
        match base.restored(&c.state) {
            Ok(mut v) => {
                let skipped = rec.inputs_before_checkpoint + c.first_input as u64;
                tracing::info!(
                    batch = c.after,
                    skipped,
                    replayed = rec.inputs.len() - c.first_input,
                    "venue restored from its checkpoint"
                );
                let replayed = replay(&mut v, later)?;
                return Ok((v, Some(c.after), replayed));
            }
            Err(e) => {
                tracing::warn!(batch = c.after, error = %e, "a venue checkpoint cannot be restored");
                refused.push(format!("the one after batch {}: {e}", c.after));
            }
        }
    }
    if let Some((missing, _)) = rec.missing {
        anyhow::bail!(
            "the store's journal was compacted (batch {missing} and others are gone), so the venue can only be rebuilt from a checkpoint, and {}. \
             Put back the checkpoint files (fixgw-venue-checkpoint, fixgw-venue-checkpoint.previous) from a copy of the store, \
             or move the store aside to start empty",
            if refused.is_empty() {
                "none can be read (see the warnings above)".to_string()
            } else {
                format!("none restores: {}", refused.join("; "))
            }
        );
    }
    let all;
    let inputs = if refused.is_empty() {
        &rec.inputs
    } else {
        tracing::warn!("replaying the whole journal");
        all = log.all_inputs()?;
        &all
    };
    let mut v = fresh
        .for_journal(inputs.iter().map(|b| &b[..]))
        .map_err(|e| anyhow::anyhow!("the journal's first configuration: {e}"))?;
    let replayed = replay(&mut v, inputs)?;
    Ok((v, None, replayed))
}

/// After the checkpoint after batch `restored` restored: deletes the
/// records nothing needs any more, up to its fallback (see
/// [`Recovered::compaction_bound`]). Returns that bound (0: none).
fn compact(log: &mut BatchLog, rec: &Recovered, restored: u64) -> u64 {
    let Some(covered) = rec.compaction_bound(restored) else {
        tracing::info!(
            "store not compacted: the venue checkpoint that restored has no intact older one to fall back on yet"
        );
        return 0;
    };
    let started = std::time::Instant::now();
    match log.compact(covered, &rec.sessions) {
        Ok(removed) => tracing::info!(
            up_to_batch = covered,
            removed,
            took_ms = started.elapsed().as_millis() as u64,
            "store compacted: records whose inputs a checkpoint holds and whose messages and session states are void or superseded"
        ),
        // A full disk, say: the records stay, for the next start.
        Err(e) => tracing::warn!(error = %e, "store not compacted"),
    }
    covered
}

/// Rebuilds the venue's state by applying every journaled input again;
/// returns how many.
fn replay(venue: &mut Venue, inputs: &[Bytes]) -> anyhow::Result<usize> {
    let mut discard = Vec::new();
    venue.set_replaying(true);
    let step = (inputs.len() / 10).max(100_000);
    for (n, raw) in inputs.iter().enumerate() {
        if n > 0 && n % step == 0 {
            tracing::info!("replaying the journal: {n} of {} inputs", inputs.len());
        }
        venue
            .replay_journaled(raw, &mut discard)
            .map_err(|e| anyhow::anyhow!("journal input {n}: {e:?}"))?;
    }
    venue.set_replaying(false);
    Ok(inputs.len())
}

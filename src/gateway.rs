//! Assembling a running gateway from a settings file: stores, applications by
//! session role, and one listener per configured address and port.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::fix::time::now_utc;
use crate::session::acceptor::{Acceptor, AcceptorOptions, SessionParts, SessionSlot};
use crate::session::application::RejectAll;
use crate::session::settings::GatewaySettings;
use crate::session::sled_store::{FlushMode, SledStoreFactory};
use crate::session::{Application, Session, SessionConfig, SessionRole};
use crate::venue::echo::EchoApp;

/// Options of `fixgw run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Settings file (QuickFIX format).
    pub config: PathBuf,
    /// Store directory; overrides FileStorePath.
    pub data: Option<PathBuf>,
    /// Durability of store flushes.
    pub flush_mode: FlushMode,
}

/// A gateway bound to its ports, ready to serve.
pub struct Gateway {
    acceptor: Arc<Acceptor>,
    listeners: Vec<TcpListener>,
}

fn application_for(cfg: &SessionConfig) -> Box<dyn Application + Send> {
    match cfg.role {
        SessionRole::Echo => Box::new(EchoApp::new(cfg.dictionary.clone())),
        _ => Box::new(RejectAll),
    }
}

impl Gateway {
    /// Loads settings, opens the store and binds every listening port.
    pub async fn bind(opts: &RunOptions) -> anyhow::Result<Gateway> {
        let settings = GatewaySettings::load(&opts.config)?;
        if settings.sessions.is_empty() {
            anyhow::bail!("{}: no [SESSION] defined", opts.config.display());
        }
        let data_dir = opts
            .data
            .clone()
            .or_else(|| settings.file_store_path.clone())
            .unwrap_or_else(|| PathBuf::from("data"));
        let stores = open_store(&data_dir, opts.flush_mode)?;
        let mut table = HashMap::new();
        let mut endpoints = BTreeSet::new();
        let now = now_utc();
        for (cfg, endpoint) in &settings.sessions {
            let store = stores
                .store(&cfg.id, now)
                .with_context(|| format!("opening the store of session {}", cfg.id))?;
            let parts = SessionParts {
                session: Session::new(cfg.clone()),
                store: Box::new(store),
                app: application_for(cfg),
            };
            let key = (
                cfg.id.begin_string.clone(),
                cfg.id.sender_comp_id.clone(),
                cfg.id.target_comp_id.clone(),
            );
            table.insert(key, Arc::new(SessionSlot::new(cfg.clone(), parts)));
            endpoints.insert((endpoint.address.clone(), endpoint.port));
        }
        let mut listeners = Vec::new();
        for (addr, port) in endpoints {
            let l = TcpListener::bind((addr.as_str(), port))
                .await
                .with_context(|| format!("cannot listen on {addr}:{port}"))?;
            tracing::info!(address = %l.local_addr()?, "listening");
            listeners.push(l);
        }
        let options = AcceptorOptions {
            max_message_size: settings.max_message_size,
            validate_length_and_checksum: settings.validate_length_and_checksum,
            nodelay: settings.socket_nodelay,
            logon_timeout: std::time::Duration::from_secs(u64::from(settings.logon_timeout_secs)),
        };
        Ok(Gateway {
            acceptor: Arc::new(Acceptor::new(table, options)),
            listeners,
        })
    }

    /// Addresses actually bound (port 0 resolves to an ephemeral port).
    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until the future is dropped.
    pub async fn serve(self) {
        let mut tasks = Vec::new();
        for l in self.listeners {
            tasks.push(tokio::spawn(self.acceptor.clone().serve(l)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn open_store(dir: &Path, mode: FlushMode) -> anyhow::Result<SledStoreFactory> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create store directory {}", dir.display()))?;
    SledStoreFactory::open(dir, mode)
        .with_context(|| format!("cannot open the store in {} (is another fixgw using it?)", dir.display()))
}

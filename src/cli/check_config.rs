//! `fixgw check-config`: loads the settings and the venue file exactly as
//! `fixgw run` does (without opening the store or binding a port) and prints
//! what the gateway would start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::engine::VenueConfig;
use crate::gateway::{build_venue, data_dir, load_settings, needs_venue};
use crate::session::settings::Endpoint;
use crate::session::SessionRole;

use super::{DEFAULT_CONFIG, DEFAULT_VENUE};

/// Options of `fixgw check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// QuickFIX-format settings file.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Venue file: instruments, accounts, limits, session-to-account mapping.
    #[arg(long, default_value = DEFAULT_VENUE)]
    pub venue: PathBuf,
}

/// Validates both files; writes the sessions, listeners and instruments.
pub fn check_config(args: &CheckConfigArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let settings = load_settings(&args.config)?;
    let venue = if needs_venue(&settings) {
        let cfg = VenueConfig::load(&args.venue)?;
        build_venue(&settings, &cfg)?;
        Some(cfg)
    } else {
        None
    };

    writeln!(
        out,
        "{}: OK, {} session(s)",
        args.config.display(),
        settings.sessions.len()
    )?;
    match &venue {
        Some(v) => writeln!(
            out,
            "{}: OK, {} instrument(s), {} account(s)",
            args.venue.display(),
            v.instruments.len(),
            v.accounts.len()
        )?,
        None => writeln!(
            out,
            "{}: not needed (every session is an echo session)",
            args.venue.display()
        )?,
    }
    writeln!(out, "store: {}", data_dir(None, &settings).display())?;

    writeln!(out, "\nsessions:")?;
    let mut warnings = Vec::new();
    for (cfg, endpoint) in &settings.sessions {
        let target = &cfg.id.target_comp_id;
        let account = venue
            .as_ref()
            .and_then(|v| v.sessions.iter().find(|s| &s.comp_id == target))
            .map(|s| s.account.as_str());
        if cfg.role == SessionRole::OrderEntry && venue.is_some() && account.is_none() {
            warnings.push(format!(
                "order-entry session {} has no account in {} ([[sessions]] comp_id = \"{target}\"): its orders will be rejected",
                cfg.id,
                args.venue.display()
            ));
        }
        writeln!(
            out,
            "  {:<32} role {:<11} port {:<5} account {}",
            cfg.id.to_string(),
            cfg.role.as_str(),
            endpoint.port,
            account.unwrap_or("-")
        )?;
    }

    let mut listeners: BTreeMap<(String, u16), (&Endpoint, Vec<&str>)> = BTreeMap::new();
    for (cfg, endpoint) in &settings.sessions {
        listeners
            .entry((endpoint.address.clone(), endpoint.port))
            .or_insert_with(|| (endpoint, Vec::new()))
            .1
            .push(&cfg.id.target_comp_id);
    }
    writeln!(out, "\nlisteners:")?;
    for ((address, port), (endpoint, targets)) in &listeners {
        let tls = match endpoint.tls.as_ref().map(|t| &t.settings) {
            None => String::new(),
            Some(t) => format!(
                "  TLS {}{}",
                t.certificate_file.display(),
                t.client_ca_file
                    .as_ref()
                    .map_or_else(String::new, |ca| format!(
                        ", client certificates required (CA {})",
                        ca.display()
                    ))
            ),
        };
        writeln!(out, "  {address}:{port}  {}{tls}", targets.join(", "))?;
    }

    if let Some(v) = &venue {
        writeln!(out, "\ninstruments:")?;
        for ins in &v.instruments {
            let band = ins
                .price_band_pct
                .map_or_else(|| "none".to_string(), |b| format!("±{b}%"));
            let reference = ins
                .reference_price
                .map_or_else(|| "-".to_string(), |r| r.to_string());
            writeln!(
                out,
                "  {:<12} tick {:<8} lot {:<6} band {:<6} reference {reference}",
                ins.symbol,
                ins.tick_size.to_string(),
                ins.lot_size.to_string(),
                band
            )?;
        }
        writeln!(out, "\naccounts:")?;
        for acc in &v.accounts {
            let comp_ids: Vec<&str> = v
                .sessions
                .iter()
                .filter(|s| s.account == acc.name)
                .map(|s| s.comp_id.as_str())
                .collect();
            writeln!(
                out,
                "  {:<12} sessions {}{}",
                acc.name,
                if comp_ids.is_empty() {
                    "-".to_string()
                } else {
                    comp_ids.join(", ")
                },
                if acc.blocked { "  (blocked)" } else { "" }
            )?;
        }
        for s in &v.sessions {
            if !settings
                .sessions
                .iter()
                .any(|(c, _)| c.id.target_comp_id == s.comp_id)
            {
                warnings.push(format!(
                    "{} maps session {} to account {}, but {} has no such session",
                    args.venue.display(),
                    s.comp_id,
                    s.account,
                    args.config.display()
                ));
            }
        }
    }
    for w in &warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

//! The operator commands of the `fixgw` binary other than `run` and `load`:
//! `check-config`, `sessions`, `store set-seq` / `store reset`,
//! `journal dump` / `journal verify` and `disk-check`. They live in the
//! library so tests can call them; `main.rs` only parses the command line
//! and dispatches. Each command writes its report to the `out` it is given
//! and returns an error (printed by `main` with a non-zero exit) on any
//! problem.

pub mod check_config;
pub mod disk_check;
pub mod journal;
pub mod store;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::gateway::{data_dir, load_settings};
use crate::session::batch_store::{is_locked, store_exists, BatchLog, BatchReader, Recovered};
use crate::session::settings::GatewaySettings;
use crate::session::store::StoreError;

/// Settings file every command uses unless told otherwise (as `fixgw run`).
pub const DEFAULT_CONFIG: &str = "sessions/gateway.cfg";
/// Venue file every command uses unless told otherwise (as `fixgw run`).
pub const DEFAULT_VENUE: &str = "sessions/venue.toml";

/// Settings and store directory of a store command. The settings give the
/// default store directory (FileStorePath) and the configured sessions; with
/// `--data` and no `--config`, a missing default settings file is no error.
pub(crate) fn settings_and_data(
    config: Option<&Path>,
    data: Option<&Path>,
) -> anyhow::Result<(Option<GatewaySettings>, PathBuf)> {
    let path = config.unwrap_or(Path::new(DEFAULT_CONFIG));
    match (config, data) {
        (None, Some(d)) if !path.exists() => Ok((None, d.to_path_buf())),
        _ => {
            let settings = load_settings(path)?;
            let dir = data_dir(data, &settings);
            Ok((Some(settings), dir))
        }
    }
}

/// Opens the batch log in `dir` to read or change it; refuses while a
/// gateway holds it, and never creates a store where there is none.
pub(crate) fn open_log(dir: &Path) -> anyhow::Result<(BatchLog, Recovered)> {
    require_store(dir)?;
    BatchLog::open_for_tool(dir).map_err(|e| store_error(dir, e))
}

/// Opens the raw records in `dir` (see [`open_log`] for the refusals).
pub(crate) fn open_reader(dir: &Path) -> anyhow::Result<BatchReader> {
    require_store(dir)?;
    BatchReader::open(dir).map_err(|e| store_error(dir, e))
}

fn require_store(dir: &Path) -> anyhow::Result<()> {
    if store_exists(dir) {
        Ok(())
    } else {
        Err(anyhow!(
            "no store in {} (the gateway creates it on its first start; use --data DIR for another one)",
            dir.display()
        ))
    }
}

fn store_error(dir: &Path, e: StoreError) -> anyhow::Error {
    if is_locked(&e) {
        anyhow!(
            "the store in {} is in use by a running gateway (stop it first)",
            dir.display()
        )
    } else {
        anyhow!("opening the store in {}: {e}", dir.display())
    }
}

/// A timestamp (ns since the epoch, UTC) in ISO 8601 / RFC 3339 with `Z`.
pub(crate) fn iso_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A progress line on stderr for long operations, redrawn at most every
/// 250 ms and only when stderr is a terminal (never in pipes or logs).
pub(crate) struct Progress {
    label: &'static str,
    total: u64,
    on: bool,
    shown: bool,
    last: Instant,
}

impl Progress {
    /// `total`: the number of the last batch (0 if unknown).
    pub(crate) fn new(label: &'static str, total: u64) -> Progress {
        Progress {
            label,
            total,
            on: std::io::stderr().is_terminal(),
            shown: false,
            last: Instant::now(),
        }
    }

    /// Reports that batch `batch` is being processed.
    pub(crate) fn update(&mut self, batch: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        match batch.saturating_mul(100).checked_div(self.total) {
            Some(pct) => eprint!("\r{}: batch {batch}/{} ({pct}%)", self.label, self.total),
            None => eprint!("\r{}: batch {batch}", self.label),
        }
    }

    /// Clears the line.
    pub(crate) fn finish(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

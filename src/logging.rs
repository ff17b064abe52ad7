//! Diagnostic logs (tracing) on stderr: a human format by default, or one
//! JSON object per line for log shippers. Levels come from `FIXGW_LOG`
//! (`info` when unset). The per-session FIX message log is
//! `gateway::message_log`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Environment variable holding the level filter (`EnvFilter` syntax).
pub const LEVEL_ENV: &str = "FIXGW_LOG";

/// How diagnostic log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2024-05-01T09:30:00.123456Z  INFO fixgw::gateway: listening address=0.0.0.0:9878`
    #[default]
    Human,
    /// `{"timestamp":"…","level":"INFO","fields":{"message":"listening","address":"…"},"target":"fixgw::gateway"}`
    Json,
}

/// Installs the global subscriber writing to stderr in `format`. Colours
/// only on a terminal: a file or a log collector gets plain text.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env(LEVEL_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

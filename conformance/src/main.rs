//! `fixgw-conformance`: command-line front end of the `.def` script runner.
//!
//! ```text
//! fixgw-conformance [--host 127.0.0.1] --port N [--expect-timeout-secs 20]
//!                   [--fields PATH] FILES...
//! ```
//!
//! Runs the files in the order given, prints `PASS <name>` or
//! `FAIL <name>: line <n>: <reason>` (with indented expected/received lines)
//! per script and finally `N passed, M failed`. Exit status 0 iff no script
//! failed, 1 if some failed, 2 on a usage error.

use clap::Parser;
use fixgw_conformance::{run_all, FieldPatterns, RunnerOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Runs QuickFIX-style .def acceptance scripts against a FIX acceptor.
#[derive(Parser, Debug)]
#[command(name = "fixgw-conformance", version)]
struct Cli {
    /// Acceptor host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Acceptor port.
    #[arg(long)]
    port: u16,
    /// Seconds an E line waits for a message.
    #[arg(long, default_value_t = 20.0)]
    expect_timeout_secs: f64,
    /// Seconds an e…DISCONNECT line waits for the acceptor to close.
    #[arg(long, default_value_t = 10.0)]
    disconnect_timeout_secs: f64,
    /// Seconds a whole script may take.
    #[arg(long, default_value_t = 300.0)]
    script_timeout_secs: f64,
    /// Probe connection attempts (1 s apart) before each script.
    #[arg(long, default_value_t = 29)]
    probe_attempts: u32,
    /// fields.fmt file with tag=regex value patterns (default: built-in
    /// equivalent of QuickFIX's fields.fmt).
    #[arg(long, value_name = "PATH")]
    fields: Option<PathBuf>,
    /// Script files, run in the order given.
    #[arg(required = true, value_name = "FILES")]
    files: Vec<PathBuf>,
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|e| format!("--{what}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut opts = RunnerOptions::new(cli.host, cli.port);
    let parsed = (|| -> Result<(), String> {
        opts.expect_timeout = secs(cli.expect_timeout_secs, "expect-timeout-secs")?;
        opts.disconnect_timeout = secs(cli.disconnect_timeout_secs, "disconnect-timeout-secs")?;
        opts.script_timeout = secs(cli.script_timeout_secs, "script-timeout-secs")?;
        opts.probe_attempts = cli.probe_attempts;
        if let Some(path) = &cli.fields {
            opts.fields = FieldPatterns::from_file(path)?;
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        eprintln!("fixgw-conformance: {e}");
        return ExitCode::from(2);
    }
    let summary = run_all(&cli.files, &opts, &mut std::io::stdout().lock());
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

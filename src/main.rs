//! The `fixgw` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use fixgw::gateway::{Gateway, RunOptions};
use fixgw::session::batch_store::FlushMode;

/// fixgw: a FIX 4.4 exchange gateway.
#[derive(Parser)]
#[command(name = "fixgw", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Flush {
    /// fsync every batch before sending (default)
    Fsync,
    /// hand data to the OS only
    Os,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway.
    ///
    /// Example: fixgw run --config sessions/acceptance.cfg
    Run {
        /// QuickFIX-format settings file.
        #[arg(long, default_value = "sessions/gateway.cfg")]
        config: PathBuf,
        /// Venue file: instruments, accounts, limits, session-to-account mapping.
        #[arg(long, default_value = "sessions/venue.toml")]
        venue: PathBuf,
        /// Store directory (default: FileStorePath from the settings, else ./data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// How store writes are made durable.
        #[arg(long, value_enum, default_value = "fsync")]
        flush: Flush,
    },

    /// Drive a FIX 4.4 acceptor (fixgw or any other) with NewOrderSingles and
    /// report sustained orders/s and ExecutionReport latency percentiles.
    ///
    /// Example: fixgw load --port 9878 --sender CLIENT1 --rate 10000 --duration 20
    Load(Box<fixgw::load::LoadOptions>),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIXGW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Run {
            config,
            venue,
            data,
            flush,
        } => {
            let opts = RunOptions {
                config,
                venue,
                data,
                flush_mode: match flush {
                    Flush::Fsync => FlushMode::Fsync,
                    Flush::Os => FlushMode::Os,
                },
            };
            run(opts)
        }
        Command::Load(opts) => load(*opts),
    }
}

fn load(opts: fixgw::load::LoadOptions) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fixgw: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(fixgw::load::run(&opts)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fixgw load: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: RunOptions) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fixgw: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let gw = match Gateway::bind(&opts).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("fixgw: {e:#}");
                return ExitCode::from(2);
            }
        };
        tokio::select! {
            _ = gw.serve() => ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted; exiting");
                ExitCode::SUCCESS
            }
        }
    })
}

//! The `fixgw` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use fixgw::cli;
use fixgw::gateway::{Gateway, RunOptions};
use fixgw::session::batch_store::FlushMode;

/// fixgw: a FIX 4.4 exchange gateway.
#[derive(Parser)]
#[command(name = "fixgw", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Format of the diagnostic log on stderr (levels from FIXGW_LOG, e.g. `info,fixgw::session=debug`).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FIXGW_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: fixgw::logging::LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum Flush {
    /// fdatasync every batch before sending (default)
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
        /// Keep idle CPUs able to wake within this many µs while the gateway
        /// runs (Linux PM QoS, /dev/cpu_dma_latency; needs root). 0 makes
        /// idle CPUs poll instead of halting: lower latency, idle CPUs spin.
        #[arg(long, value_name = "MICROS")]
        cpu_wakeup_latency: Option<u32>,
        /// With --flush fsync: begin a flush no sooner than this many µs
        /// after the previous one began, covering every batch written by
        /// then. Fewer, larger flushes cost the machine less per order; an
        /// order may wait up to the window longer. 0: flush as soon as the
        /// previous flush ends. At most 100000 (100 ms).
        #[arg(long, value_name = "MICROS", default_value_t = 0,
              value_parser = clap::value_parser!(u64).range(0..=100_000))]
        commit_window: u64,
    },

    /// Check the settings and venue files without starting anything: print
    /// the sessions (CompIDs, role, port), listeners, instruments and
    /// accounts the gateway would start, or the first error with its file
    /// and line, and exit non-zero.
    ///
    /// Example: fixgw check-config --config sessions/gateway.cfg --venue sessions/venue.toml
    CheckConfig(cli::check_config::CheckConfigArgs),

    /// List the stored sessions with their next sender and target sequence
    /// numbers, read from the store (the gateway must not be running).
    ///
    /// Example: fixgw sessions --data data
    Sessions(cli::store::StoreLocation),

    /// Change one session's stored sequence numbers while the gateway is
    /// stopped; the change is written as a batch record the gateway
    /// recovers on its next start.
    ///
    /// Example: fixgw store set-seq --session CLIENT1 --sender 120 --target 45
    #[command(subcommand)]
    Store(StoreCommand),

    /// Export or check the journal (every input the venue processed).
    ///
    /// Example: fixgw journal dump --symbol AAPL --from 2024-05-01T09:30:00Z > audit.jsonl
    #[command(subcommand)]
    Journal(JournalCommand),

    /// Measure the floor `--flush fsync` has on the store's disk, with no
    /// FIX and no venue: records paced at --rate, and one committer that
    /// writes what is due and fdatasyncs it, as the gateway's group commit.
    /// Prints the fdatasync times and each record's latency from its
    /// scheduled time to durable. Uses a scratch file in the store's
    /// directory (which must exist), removed afterwards; the store itself
    /// is not touched.
    ///
    /// Example: fixgw disk-check --data data --rate 10000 --seconds 5
    DiskCheck(cli::disk_check::DiskCheckArgs),

    /// Drive a FIX 4.4 acceptor (fixgw or any other) with NewOrderSingles and
    /// report sustained orders/s and ExecutionReport latency percentiles.
    ///
    /// Exit status: 0 for a clean run; 3 when the report shows requests left
    /// unanswered or sessions that failed (the report is printed anyway);
    /// 1 when no session could log on or the run could not start; 2 for a
    /// command-line mistake.
    ///
    /// Example: fixgw load --port 9878 --sender CLIENT1 --rate 10000 --duration 20
    Load(Box<fixgw::load::LoadOptions>),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Set the next MsgSeqNum the gateway sends (--sender) and/or expects
    /// (--target) for one session. Refused while a gateway holds the store.
    ///
    /// Example: fixgw store set-seq --session CLIENT1 --sender 120 --target 45
    SetSeq(cli::store::SetSeqArgs),
    /// Start one session over: sequence numbers 1/1 and its stored messages
    /// dropped, as a Logon with ResetSeqNumFlag=Y would. Refused while a
    /// gateway holds the store.
    ///
    /// Example: fixgw store reset --session FIX.4.4:FIXGW->CLIENT2
    Reset(cli::store::ResetArgs),
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Print every journaled input with the engine events it produced, one
    /// JSON object per line (batch, input kind, session, UTC time, the FIX
    /// message with Password masked, events with symbol/account names and
    /// decimal prices and quantities, messages sent). Filters combine (AND).
    ///
    /// Example: fixgw journal dump --session CLIENT1 --symbol AAPL --from 2024-05-01 --to 2024-05-02
    Dump(cli::journal::DumpArgs),
    /// Check every batch record (checksum, layout, contiguous numbers) and
    /// input, replay the journal twice and compare the results, and check
    /// the stored ExecutionReports against the replay. Prints a summary;
    /// exits non-zero naming the first bad batch.
    ///
    /// Example: fixgw journal verify --data data
    Verify(cli::journal::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    fixgw::logging::init(cli.log_format);
    match cli.command {
        Command::Run {
            config,
            venue,
            data,
            flush,
            cpu_wakeup_latency,
            commit_window,
        } => {
            let opts = RunOptions {
                config,
                venue,
                data,
                flush_mode: match flush {
                    Flush::Fsync => FlushMode::Fsync,
                    Flush::Os => FlushMode::Os,
                },
                cpu_wakeup_latency_us: cpu_wakeup_latency,
                commit_window: std::time::Duration::from_micros(commit_window),
            };
            run(opts)
        }
        Command::Load(opts) => load(*opts),
        Command::CheckConfig(args) => report("check-config", |out| {
            cli::check_config::check_config(&args, out)
        }),
        Command::Sessions(args) => report("sessions", |out| cli::store::sessions(&args, out)),
        Command::Store(StoreCommand::SetSeq(args)) => {
            report("store set-seq", |out| cli::store::set_seq(&args, out))
        }
        Command::Store(StoreCommand::Reset(args)) => {
            report("store reset", |out| cli::store::reset(&args, out))
        }
        Command::Journal(JournalCommand::Dump(args)) => {
            report("journal dump", |out| cli::journal::dump(&args, out))
        }
        Command::Journal(JournalCommand::Verify(args)) => {
            report("journal verify", |out| cli::journal::verify(&args, out))
        }
        Command::DiskCheck(args) => {
            report("disk-check", |out| cli::disk_check::disk_check(&args, out))
        }
    }
}

/// Runs an operator command writing to stdout; prints its error and exits 1.
/// A closed pipe (`fixgw journal dump | head`) is not an error.
fn report(name: &str, f: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = f(&mut out).and_then(|()| Ok(std::io::Write::flush(&mut out)?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::io::Write::flush(&mut out);
            eprintln!("fixgw {name}: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// An error with its causes, leaving out a cause its message already quotes
/// (e.g. a settings file's read error names the OS error itself).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
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
            match report.problems() {
                None => ExitCode::SUCCESS,
                Some(why) => {
                    eprintln!("fixgw load: not a clean run: {why}");
                    ExitCode::from(3)
                }
            }
        }
        Err(e) => {
            eprintln!("fixgw load: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
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
        gw.serve(async {
            shutdown_signal().await;
            tracing::info!("signal received: logging out every session and stopping (a second signal exits at once)");
            tokio::spawn(async {
                shutdown_signal().await;
                eprintln!("fixgw: second signal: exiting now");
                std::process::exit(130);
            });
        })
        .await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

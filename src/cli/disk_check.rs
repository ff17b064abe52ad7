//! `fixgw disk-check`: the floor that `--flush fsync` has on a disk, without
//! FIX or the venue. A pacer thread schedules records at a fixed rate and one
//! committer writes everything that is due and `fdatasync`s it, then takes
//! the next lot: the gateway's group commit with nothing else in it. Each
//! record's latency runs from its *scheduled* time to the end of the
//! `fdatasync` that made it durable, as `fixgw load` counts an order's.
//!
//! It writes to a scratch file in the store's directory (zero-filled and
//! synced first, as the gateway keeps its log file), never to the store,
//! and removes the file afterwards, also on an error. Run beside a loaded
//! gateway it measures the disk as that gateway leaves it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;

use super::settings_and_data;
use super::store::StoreLocation;
use crate::load::report::new_histogram;

/// Size of the scratch file; records wrap around inside it.
const SCRATCH_BYTES: u64 = 64 << 20;
/// Bytes per write while zero-filling the scratch file.
const FILL_CHUNK: usize = 1 << 20;

/// Options of `fixgw disk-check`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiskCheckArgs {
    /// Records scheduled per second; 0: one record per flush, back to back
    /// (the disk's bare write + fdatasync time).
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub rate: u64,
    /// How long to measure.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Bytes per record (the gateway writes about 2.4 KB per order at
    /// 10 000 orders/s: the order, its reports and the session stores).
    #[arg(long, default_value_t = 2400,
          value_parser = clap::value_parser!(u64).range(64..=1 << 20))]
    pub record_bytes: u64,
    #[command(flatten)]
    pub location: StoreLocation,
}

/// What one measurement found.
#[derive(Debug)]
pub struct DiskCheck {
    /// Directory measured.
    pub dir: PathBuf,
    /// Records scheduled per second (0: back to back).
    pub rate: u64,
    /// Bytes per record.
    pub record_bytes: usize,
    /// Measured interval.
    pub duration: Duration,
    /// Records made durable.
    pub records: u64,
    /// `write` + `fdatasync` pairs.
    pub flushes: u64,
    /// Duration of each `fdatasync`, ns.
    pub sync_ns: Histogram<u64>,
    /// Each record, scheduled time to durable, ns.
    pub record_ns: Histogram<u64>,
}

/// `fixgw disk-check`: measures and prints.
pub fn disk_check(args: &DiskCheckArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (_, dir) = settings_and_data(
        args.location.config.as_deref(),
        args.location.data.as_deref(),
    )?;
    let check = measure(
        &dir,
        args.rate,
        Duration::from_secs(args.seconds),
        args.record_bytes as usize,
    )?;
    write!(out, "{check}")?;
    Ok(())
}

/// The scratch file, removed when dropped.
struct Scratch {
    path: PathBuf,
    file: File,
}

impl Scratch {
    fn create(dir: &Path) -> anyhow::Result<Scratch> {
        if !dir.is_dir() {
            return Err(anyhow!(
                "no directory {} (disk-check measures the disk of an existing directory: create it, or give --data DIR)",
                dir.display()
            ));
        }
        let path = dir.join(format!(".fixgw-disk-check-{}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create a scratch file in {}", dir.display()))?;
        let scratch = Scratch { path, file };
        scratch.fill().with_context(|| {
            format!(
                "zero-filling a {} MiB scratch file in {}",
                SCRATCH_BYTES >> 20,
                dir.display()
            )
        })?;
        Ok(scratch)
    }

    /// Zero-fills and syncs the whole file, so that the measured
    /// `fdatasync`s flush data only (no new size or blocks), as the
    /// gateway's log file is kept.
    fn fill(&self) -> std::io::Result<()> {
        let zeros = vec![0_u8; FILL_CHUNK];
        let mut at = 0;
        while at < SCRATCH_BYTES {
            self.file.write_all_at(&zeros, at)?;
            at += FILL_CHUNK as u64;
        }
        self.file.sync_all()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records due, handed from the pacer to the committer.
struct Due {
    /// Scheduled times of the records not yet taken.
    pending: Vec<Instant>,
    /// The committer sleeps on the condition variable.
    waiting: bool,
    stop: bool,
}

/// Most bytes per `write`.
const WRITE_BYTES: usize = 1 << 20;

/// The committer's side of a measurement.
struct Committer {
    file: File,
    /// Bytes of one record.
    record_bytes: usize,
    /// [`WRITE_BYTES`] of non-zero bytes, written from.
    chunk: Vec<u8>,
    /// Next write offset; writes follow each other, wrapping at the end.
    at: u64,
    records: u64,
    flushes: u64,
    sync_ns: Histogram<u64>,
    record_ns: Histogram<u64>,
}

impl Committer {
    fn new(file: File, record_bytes: usize) -> Committer {
        Committer {
            file,
            record_bytes,
            chunk: (0..WRITE_BYTES).map(|i| b'a' + (i % 26) as u8).collect(),
            at: 0,
            records: 0,
            flushes: 0,
            sync_ns: new_histogram(),
            record_ns: new_histogram(),
        }
    }

    /// Writes `n` records and syncs them once; returns when they are
    /// durable. The file never grows: a write that would pass its end
    /// goes to its start.
    fn commit(&mut self, n: usize) -> std::io::Result<Instant> {
        let mut left = self.record_bytes * n;
        while left > 0 {
            let part = left.min(self.chunk.len());
            if self.at + part as u64 > SCRATCH_BYTES {
                self.at = 0;
            }
            self.file.write_all_at(&self.chunk[..part], self.at)?;
            self.at += part as u64;
            left -= part;
        }
        let sync_start = Instant::now();
        self.file.sync_data()?;
        let done = Instant::now();
        record(&mut self.sync_ns, done - sync_start);
        self.flushes += 1;
        self.records += n as u64;
        Ok(done)
    }
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// Measures `dir`'s disk for `duration`: see the module doc.
pub fn measure(
    dir: &Path,
    rate: u64,
    duration: Duration,
    record_bytes: usize,
) -> anyhow::Result<DiskCheck> {
    let scratch = Scratch::create(dir)?;
    let committer = Committer::new(scratch.file.try_clone()?, record_bytes);
    let started = Instant::now();
    let committer = if rate == 0 {
        back_to_back(committer, started + duration)
    } else {
        paced(committer, rate, started, duration)
    }
    .with_context(|| format!("writing to a scratch file in {}", dir.display()))?;
    drop(scratch);
    Ok(DiskCheck {
        dir: dir.to_path_buf(),
        rate,
        record_bytes,
        duration,
        records: committer.records,
        flushes: committer.flushes,
        sync_ns: committer.sync_ns,
        record_ns: committer.record_ns,
    })
}

/// One record per flush until `end`.
fn back_to_back(mut c: Committer, end: Instant) -> std::io::Result<Committer> {
    while Instant::now() < end {
        let scheduled = Instant::now();
        let done = c.commit(1)?;
        record(&mut c.record_ns, done - scheduled);
    }
    Ok(c)
}

/// `rate` records a second for `duration` from `start`, committed as they
/// come by a thread of their own; every scheduled record is made durable.
fn paced(
    mut c: Committer,
    rate: u64,
    start: Instant,
    duration: Duration,
) -> std::io::Result<Committer> {
    let due = Arc::new((
        Mutex::new(Due {
            pending: Vec::new(),
            waiting: false,
            stop: false,
        }),
        Condvar::new(),
    ));
    let committer = std::thread::Builder::new()
        .name("disk-check-commit".into())
        .spawn({
            let due = due.clone();
            move || -> std::io::Result<Committer> {
                let (lock, cv) = &*due;
                let mut taken = Vec::new();
                loop {
                    {
                        let mut d = lock.lock().unwrap_or_else(|p| p.into_inner());
                        while d.pending.is_empty() && !d.stop {
                            d.waiting = true;
                            d = cv.wait(d).unwrap_or_else(|p| p.into_inner());
                            d.waiting = false;
                        }
                        if d.pending.is_empty() {
                            return Ok(c);
                        }
                        std::mem::swap(&mut taken, &mut d.pending);
                    }
                    let done = c.commit(taken.len())?;
                    for &scheduled in &taken {
                        record(&mut c.record_ns, done.saturating_duration_since(scheduled));
                    }
                    taken.clear();
                }
            }
        })?;
    crate::cpu_latency::tighten_timer_slack();
    let total = (u128::from(rate) * duration.as_nanos() / 1_000_000_000) as u64;
    let (lock, cv) = &*due;
    let at = |i: u64| {
        start + Duration::from_nanos((u128::from(i) * 1_000_000_000 / u128::from(rate)) as u64)
    };
    let mut next = 0;
    while next < total {
        let now = Instant::now();
        if at(next) > now {
            std::thread::sleep(at(next) - now);
            continue;
        }
        let mut d = lock.lock().unwrap_or_else(|p| p.into_inner());
        if committer.is_finished() {
            break;
        }
        while next < total && at(next) <= now {
            d.pending.push(at(next));
            next += 1;
        }
        if d.waiting {
            cv.notify_one();
        }
    }
    lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
    cv.notify_one();
    committer
        .join()
        .map_err(|_| std::io::Error::other("the committer thread panicked"))?
}

/// "p50 …  p90 …  p99 …  p99.9 …  max …" in µs.
fn percentiles(h: &Histogram<u64>) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    format!(
        "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.9)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

impl std::fmt::Display for DiskCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pace = match self.rate {
            0 => "back to back, one per flush".to_string(),
            r => format!("{r}/s"),
        };
        writeln!(
            f,
            "fixgw disk-check: {} ({} MiB scratch file, removed), {}-byte records {pace} for {:.0} s",
            self.dir.display(),
            SCRATCH_BYTES >> 20,
            self.record_bytes,
            self.duration.as_secs_f64()
        )?;
        let secs = self.duration.as_secs_f64();
        writeln!(
            f,
            "  flushes       {} ({:.0}/s), {:.1} records each; {} records",
            self.flushes,
            self.flushes as f64 / secs,
            self.records as f64 / self.flushes.max(1) as f64,
            self.records
        )?;
        writeln!(f, "  fdatasync µs  {}", percentiles(&self.sync_ns))?;
        writeln!(
            f,
            "  record µs     {}  (scheduled time to durable)",
            percentiles(&self.record_ns)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_records_are_all_made_durable_in_fewer_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let c = measure(dir.path(), 2_000, Duration::from_millis(500), 512).unwrap();
        assert_eq!(c.records, 1_000, "every scheduled record is committed");
        assert_eq!(c.record_ns.len(), 1_000);
        assert_eq!(c.sync_ns.len(), c.flushes);
        assert!(c.flushes >= 1 && c.flushes <= c.records, "{c}");
        // A record waits at least for the fdatasync that made it durable.
        assert!(c.record_ns.min() >= c.sync_ns.min(), "{c}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the scratch file is removed"
        );
    }

    #[test]
    fn back_to_back_is_one_record_per_flush() {
        let dir = tempfile::tempdir().unwrap();
        let c = measure(dir.path(), 0, Duration::from_millis(200), 4096).unwrap();
        assert!(c.records > 0);
        assert_eq!(c.flushes, c.records);
        let text = c.to_string();
        assert!(text.contains("back to back"), "{text}");
        assert!(text.contains("fdatasync µs  p50 "), "{text}");
    }

    #[test]
    fn a_missing_directory_is_named_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = measure(&missing, 1_000, Duration::from_secs(1), 512).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("no directory") && text.contains("nope"),
            "{text}"
        );
        assert!(!missing.exists());
    }

    #[test]
    fn records_wrap_around_inside_the_scratch_file() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch::create(dir.path()).unwrap();
        let mut c = Committer::new(scratch.file.try_clone().unwrap(), 1 << 20);
        c.at = SCRATCH_BYTES - (1 << 19);
        c.commit(2).unwrap();
        assert_eq!(c.at, 2 << 20, "the write went to the start");
        // More than the whole file in one flush: it wraps, never grows.
        c.commit(100).unwrap();
        assert_eq!(c.records, 102);
        assert_eq!(scratch.file.metadata().unwrap().len(), SCRATCH_BYTES);
        let path = scratch.path.clone();
        drop(scratch);
        assert!(!path.exists());
    }
}

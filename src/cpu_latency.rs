//! A Linux PM QoS request on how long an idle CPU may take to wake up
//! (`/dev/cpu_dma_latency`), held for as long as the process wants it.
//!
//! An idle CPU normally halts; waking it for a thread that becomes runnable
//! costs a wake-up, which in a virtual machine is a round trip through the
//! hypervisor (tens of µs here). A request of 0 µs makes idle CPUs poll
//! instead, so every hand-off between the gateway's threads and the
//! network or disk completes sooner, at the price of idle CPUs spinning
//! (a whole host core each when the machine is otherwise idle). The
//! request lasts while its file stays open and is withdrawn when it closes,
//! also when the process dies. This is what `tuned`'s latency-performance
//! profile and `cyclictest` do.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The kernel's interface for CPU wake-up latency requests.
pub const DEVICE: &str = "/dev/cpu_dma_latency";

/// A held request; dropping it withdraws the request.
#[derive(Debug)]
pub struct CpuLatencyRequest {
    _file: File,
    micros: u32,
}

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot hold a CPU wake-up latency of {micros} µs: {path}: {source}{hint}")]
pub struct CpuLatencyError {
    micros: u32,
    path: PathBuf,
    source: std::io::Error,
    hint: &'static str,
}

impl CpuLatencyRequest {
    /// Asks the kernel to keep every CPU's wake-up latency at or under
    /// `micros` µs until the request is dropped.
    pub fn hold(micros: u32) -> Result<CpuLatencyRequest, CpuLatencyError> {
        let held = Self::hold_at(Path::new(DEVICE), micros)?;
        tracing::info!(micros, "holding a CPU wake-up latency request ({DEVICE})");
        Ok(held)
    }

    /// The same through another file (tests).
    pub fn hold_at(path: &Path, micros: u32) -> Result<CpuLatencyRequest, CpuLatencyError> {
        let fail = |source: std::io::Error| CpuLatencyError {
            micros,
            path: path.to_path_buf(),
            hint: hint(source.kind()),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(fail)?;
        // The device takes a native-endian 32-bit value in one write.
        let value = i32::try_from(micros).unwrap_or(i32::MAX);
        file.write_all(&value.to_ne_bytes()).map_err(fail)?;
        Ok(CpuLatencyRequest {
            _file: file,
            micros,
        })
    }

    /// The requested latency in µs.
    pub fn micros(&self) -> u32 {
        self.micros
    }
}

/// What to do about a request that failed this way.
fn hint(kind: std::io::ErrorKind) -> &'static str {
    match kind {
        std::io::ErrorKind::PermissionDenied => {
            " (the request needs root, or write access to that file; leave the option out to run without it)"
        }
        std::io::ErrorKind::NotFound => {
            " (this kernel has no PM QoS interface; leave the option out to run without it)"
        }
        _ => "",
    }
}

/// The latency the kernel currently grants (the lowest request held by any
/// process), in µs; `None` where it cannot be read.
pub fn current() -> Option<i32> {
    let bytes = std::fs::read(DEVICE).ok()?;
    Some(i32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// The latency the kernel grants now, if this process may make requests
/// (a request of 0 µs is made and withdrawn at once to find out); else why
/// not.
pub fn grantable() -> Result<i32, String> {
    let now = current().ok_or_else(|| format!("{DEVICE} cannot be read here"))?;
    CpuLatencyRequest::hold(0).map_err(|e| e.to_string())?;
    Ok(now)
}

/// Asks that the calling thread's sleeps end on time. Linux may end a
/// normal thread's sleep up to its timer slack late (50 µs by default, to
/// batch wake-ups), so a thread that must act at a given time (the load
/// generator's driver thread, the store's flusher after its commit window) would
/// act late. Writing one's own slack needs no privilege. Returns false where there is no such file
/// (other systems): the default slack stays.
pub fn tighten_timer_slack() -> bool {
    timer_slack_file().is_some_and(|f| std::fs::write(f, "1").is_ok())
}

/// The calling thread's timer slack file, `/proc/<tid>/timerslack_ns`
/// (`/proc/thread-self` links to `<pid>/task/<tid>`, which has none).
fn timer_slack_file() -> Option<std::path::PathBuf> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(
        std::path::Path::new("/proc")
            .join(link.file_name()?)
            .join("timerslack_ns"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_writes_the_latency_as_one_native_32_bit_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qos");
        std::fs::write(&path, b"").unwrap();
        let held = CpuLatencyRequest::hold_at(&path, 25).unwrap();
        assert_eq!(held.micros(), 25);
        assert_eq!(std::fs::read(&path).unwrap(), 25i32.to_ne_bytes());
    }

    #[test]
    fn a_request_that_cannot_be_made_names_the_file_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let err = CpuLatencyRequest::hold_at(&path, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot hold a CPU wake-up latency of 0 µs"),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("leave the option out"), "{err}");
    }

    /// On a machine where this process may make the request (root), the
    /// kernel grants it while it is held and withdraws it on drop.
    #[test]
    fn the_kernel_grants_a_held_request_and_withdraws_it_on_drop() {
        let before = match grantable() {
            Ok(v) => v,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        };
        let held = CpuLatencyRequest::hold(0).unwrap();
        assert_eq!(current(), Some(0));
        drop(held);
        // Another process may hold a request of its own; ours is gone.
        assert_eq!(current(), Some(before));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_can_ask_for_sleeps_that_end_on_time() {
        let slack = || std::fs::read_to_string(timer_slack_file().unwrap()).unwrap();
        let before = slack();
        assert_ne!(
            before.trim(),
            "1",
            "a new thread has the default slack (50 µs)"
        );
        std::thread::spawn(move || {
            assert!(tighten_timer_slack());
            assert_eq!(slack().trim(), "1");
        })
        .join()
        .unwrap();
        // Only the asking thread changed.
        assert_eq!(slack(), before);
    }
}

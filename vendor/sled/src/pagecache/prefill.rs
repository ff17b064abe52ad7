//! fixgw (FIXGW-PATCH.md change 6): keeps the log file zero-filled a few
//! segments beyond the segment accountant's tip, so that the log writes
//! land on blocks the file system has already allocated inside the file's
//! size. A synced write there (`fdatasync`) then flushes data only: no new
//! file size and no block allocation to commit to the file system journal.
//!
//! The filler thread appends zeros past the file's end, in small chunks,
//! each synced on its own so that a log write's `fdatasync` never has a
//! pile of dirty zeros to write out with it. It only ever writes at or
//! above the tip, under a lock the accountant takes whenever it moves the
//! tip: a segment the accountant hands out is never written by the filler
//! once it is handed out.
//!
//! Recovery: zero segments past the log are free segments; the accountant
//! cuts free segments at the end of the file off when it starts (see
//! `initialize_from_snapshot`), as it does for the tail a crash leaves.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{pwrite_all, LogOffset};

/// Bytes per zero write (and per sync).
const CHUNK: u64 = 128 * 1024;
/// Pause between chunks: bounds the filler to ~100 MiB/s so that catching
/// up (at start, or behind a fast log) does not monopolise the disk.
const PACE: Duration = Duration::from_millis(1);
/// How long the filler sleeps when an I/O error stopped it (disk full), and
/// at most between looks at the file when it has caught up.
const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    tip: LogOffset,
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The filler thread and the tip it works above. Dropping it stops the
/// thread and waits for it (it holds the file open).
#[derive(Debug)]
pub(crate) struct Prefiller {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Prefiller {
    /// Starts a filler keeping `ahead` bytes beyond `tip` zero-filled.
    pub(crate) fn start(
        file: crate::Arc<File>,
        tip: LogOffset,
        ahead: u64,
    ) -> std::io::Result<Prefiller> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { tip, stop: false }),
            wake: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("sled-prefill".into())
            .spawn({
                let shared = shared.clone();
                move || run(&file, &shared, ahead)
            })?;
        Ok(Prefiller { shared, thread: Some(thread) })
    }

    /// The accountant moved its tip. Returns once no zero write below the
    /// new tip is in flight, and none will start.
    pub(crate) fn set_tip(&self, tip: LogOffset) {
        let mut state = self.shared.state.lock().unwrap();
        state.tip = tip;
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Drop for Prefiller {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The next zero write: from the file's end (never below the tip) to the
/// next chunk boundary, while that is short of `tip + ahead`.
fn next_chunk(
    file_len: u64,
    tip: LogOffset,
    ahead: u64,
) -> Option<(LogOffset, u64)> {
    let start = file_len.max(tip);
    let end = (tip + ahead).min((start / CHUNK + 1) * CHUNK);
    (start < end).then(|| (start, end - start))
}

fn run(file: &File, shared: &Shared, ahead: u64) {
    let zeros = vec![0_u8; CHUNK as usize];
    let mut state = shared.state.lock().unwrap();
    loop {
        if state.stop {
            return;
        }
        let chunk = file
            .metadata()
            .map(|m| next_chunk(m.len(), state.tip, ahead));
        let (at, len) = match chunk {
            Ok(Some(chunk)) => chunk,
            // Caught up: until the tip moves, or a truncation (which the
            // accountant runs on its pool, after moving the tip) shortened
            // the file.
            Ok(None) => {
                state = shared.wake.wait_timeout(state, BACKOFF).unwrap().0;
                continue;
            }
            Err(_) => {
                state = shared.wake.wait_timeout(state, BACKOFF).unwrap().0;
                continue;
            }
        };
        // Written under the lock: the tip cannot pass `at` meanwhile.
        let written = pwrite_all(file, &zeros[..len as usize], at);
        drop(state);
        let pause = match written.and_then(|()| file.sync_data()) {
            Ok(()) => PACE,
            // Out of space (or a failing disk): the log reports its own
            // errors; the filler only stops adding to the file for a while.
            Err(_) => BACKOFF,
        };
        state = shared.state.lock().unwrap();
        if !state.stop {
            state = shared.wake.wait_timeout(state, pause).unwrap().0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 8 << 20;

    #[test]
    fn chunks_start_at_the_file_end_and_never_below_the_tip() {
        // File ends inside the active segment: zeros start at the tip.
        assert_eq!(next_chunk(100, SEG, 2 * SEG), Some((SEG, CHUNK)));
        // File already past the tip: continue from its end, to a boundary.
        assert_eq!(
            next_chunk(SEG + 1000, SEG, 2 * SEG),
            Some((SEG + 1000, CHUNK - 1000))
        );
        // The last chunk stops at tip + ahead.
        assert_eq!(
            next_chunk(3 * SEG - 10, SEG, 2 * SEG),
            Some((3 * SEG - 10, 10))
        );
        assert_eq!(next_chunk(3 * SEG, SEG, 2 * SEG), None);
        assert_eq!(next_chunk(5 * SEG, SEG, 2 * SEG), None);
    }

    #[test]
    fn fills_ahead_of_the_tip_and_follows_it() {
        let dir = std::env::temp_dir()
            .join(format!("sled-prefill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let file = crate::Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        );
        pwrite_all(&file, b"log data", 0).unwrap();
        let ahead = 4 * CHUNK;
        let wait_len = |want: u64| {
            for _ in 0..500 {
                if file.metadata().unwrap().len() == want {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("file length {} != {}", file.metadata().unwrap().len(), want);
        };
        let filler = Prefiller::start(file.clone(), CHUNK, ahead).unwrap();
        wait_len(CHUNK + ahead);
        // Log bytes below the tip are untouched; the hole up to the tip is
        // left to the log; zeros from the tip on.
        let all = std::fs::read(&path).unwrap();
        assert_eq!(&all[..8], b"log data");
        assert!(all[CHUNK as usize..].iter().all(|b| *b == 0));
        filler.set_tip(3 * CHUNK);
        wait_len(3 * CHUNK + ahead);
        drop(filler);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

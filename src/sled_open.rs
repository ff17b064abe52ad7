//! Opening a sled database whose previous owner may still be releasing it.

use std::time::{Duration, Instant};

/// How long an open waits for the previous owner's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens the database `config` builds (a fresh configuration per attempt),
/// waiting up to [`LOCK_WAIT`] for a lock still held by a previous owner that
/// is shutting down: sled releases it from a background thread, a little
/// after the owner dropped its handle.
pub fn open_waiting(config: impl Fn() -> sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config().open() {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

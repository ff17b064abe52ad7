//! The exchange core: order books, matching, risk, positions, journal and replay.
//! Pure and deterministic; knows nothing of FIX, sockets or clocks.

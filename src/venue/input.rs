//! `VenueInput`: the one sequenced stream the venue consumes (FIX application
//! messages, ticks, session drops) and its checksummed binary encoding. The
//! core journals these records before releasing their effects, so an input
//! must decode to exactly what was encoded, and a damaged record must be
//! refused, never half-applied.

use bytes::Bytes;

/// Record kind byte of `VenueInput::Fix`.
const KIND_FIX: u8 = 1;
/// Record kind byte of `VenueInput::Tick`.
const KIND_TICK: u8 = 2;
/// Record kind byte of `VenueInput::SessionDown`.
const KIND_SESSION_DOWN: u8 = 3;
const KIND_OPERATOR: u8 = 4;
/// Record kind byte of `VenueInput::Configure`.
const KIND_CONFIGURE: u8 = 5;
/// Kind byte + payload length.
const HEADER_BYTES: usize = 1 + 4;
/// CRC-32 trailer.
const TRAILER_BYTES: usize = 4;

/// Longest session CompID an input may carry.
pub const MAX_SESSION_BYTES: usize = 255;
/// Largest FIX frame an input may carry (far above any sane order message).
pub const MAX_RAW_BYTES: usize = 1 << 20;
/// Largest configuration a `Configure` input may carry (about 50 000
/// instruments).
pub const MAX_CONFIG_BYTES: usize = 16 << 20;

/// One input to the venue; journaled by the core before its effects are
/// released, so it must round-trip exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueInput {
    /// An application message from a session.
    Fix {
        /// The client's CompID (TargetCompID of our session).
        session: String,
        /// Ingress timestamp, ns since the Unix epoch.
        ts_ns: u64,
        /// The whole frame, 8=... through 10=...
        raw: Bytes,
    },
    /// Time passes (GTD expiry etc.).
    Tick {
        /// Timestamp, ns since the Unix epoch.
        ts_ns: u64,
    },
    /// A session's connection dropped (cancel-on-disconnect).
    SessionDown {
        /// The client's CompID.
        session: String,
        /// Timestamp, ns since the Unix epoch.
        ts_ns: u64,
    },
    /// An operator action (admin API), journaled with who did it: the
    /// venue applies halt / resume / kill / unblock; session actions (logout,
    /// sequence numbers) are recorded for audit only.
    Operator {
        /// Who: the token's name and the peer address.
        who: String,
        /// When.
        ts_ns: u64,
        /// What, as text: `halt AAPL`, `kill ACC1`, `logout CLIENT1`, ...
        action: String,
    },
    /// The configuration the venue runs under from here on (journaled at
    /// every start, before any other input): a replay switches to it at
    /// the same point, so every input is replayed under the configuration
    /// it was processed under.
    Configure {
        /// When.
        ts_ns: u64,
        /// The venue's configuration ([`crate::venue::Venue::config_text`]).
        config: String,
    },
}

/// Why bytes could not be decoded into a `VenueInput`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the record claims.
    #[error("venue input truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the record needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The CRC-32 does not match the record.
    #[error("venue input checksum mismatch")]
    Checksum,
    /// Unknown record kind.
    #[error("unknown venue input kind {0}")]
    UnknownKind(u8),
    /// The payload does not have the layout of its kind.
    #[error("malformed venue input: {0}")]
    Malformed(&'static str),
}

impl VenueInput {
    /// Whether the encoded input `raw` is a `Configure`, from its kind byte
    /// (without decoding it).
    pub fn is_configure(raw: &[u8]) -> bool {
        raw.first() == Some(&KIND_CONFIGURE)
    }

    /// The input's timestamp, ns.
    pub fn ts_ns(&self) -> u64 {
        match *self {
            VenueInput::Fix { ts_ns, .. }
            | VenueInput::Tick { ts_ns }
            | VenueInput::SessionDown { ts_ns, .. }
            | VenueInput::Operator { ts_ns, .. }
            | VenueInput::Configure { ts_ns, .. } => ts_ns,
        }
    }

    /// Appends `kind u8 | payload_len u32 | payload | crc32 u32` (little endian;
    /// the CRC covers kind, length and payload). Session names longer than
    /// `MAX_SESSION_BYTES` or frames longer than `MAX_RAW_BYTES` are a caller
    /// bug: the acceptor never produces them, and `decode` would refuse them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let kind = match self {
            VenueInput::Fix { .. } => KIND_FIX,
            VenueInput::Tick { .. } => KIND_TICK,
            VenueInput::SessionDown { .. } => KIND_SESSION_DOWN,
            VenueInput::Operator { .. } => KIND_OPERATOR,
            VenueInput::Configure { .. } => KIND_CONFIGURE,
        };
        out.push(kind);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.ts_ns().to_le_bytes());
        match self {
            VenueInput::Fix { session, raw, .. } => {
                debug_assert!(session.len() <= MAX_SESSION_BYTES && raw.len() <= MAX_RAW_BYTES);
                out.push(session.len() as u8);
                out.extend_from_slice(session.as_bytes());
                out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
                out.extend_from_slice(raw);
            }
            VenueInput::SessionDown { session, .. } => {
                debug_assert!(session.len() <= MAX_SESSION_BYTES);
                out.push(session.len() as u8);
                out.extend_from_slice(session.as_bytes());
            }
            VenueInput::Operator { who, action, .. } => {
                debug_assert!(who.len() <= MAX_SESSION_BYTES && action.len() <= MAX_SESSION_BYTES);
                for s in [who, action] {
                    out.push(s.len() as u8);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            VenueInput::Configure { config, .. } => {
                debug_assert!(config.len() <= MAX_CONFIG_BYTES);
                out.extend_from_slice(&(config.len() as u32).to_le_bytes());
                out.extend_from_slice(config.as_bytes());
            }
            VenueInput::Tick { .. } => {}
        }
        let payload_len = (out.len() - start - HEADER_BYTES) as u32;
        out[start + 1..start + HEADER_BYTES].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes one record from the front of `b`; returns it and the bytes it used.
    pub fn decode(b: &[u8]) -> Result<(VenueInput, usize), DecodeError> {
        let truncated = |need: usize| DecodeError::Truncated {
            need,
            have: b.len(),
        };
        if b.len() < HEADER_BYTES {
            return Err(truncated(HEADER_BYTES));
        }
        let kind = b[0];
        let payload_len = read_u32(&b[1..HEADER_BYTES]) as usize;
        let max_payload = match kind {
            KIND_CONFIGURE => MAX_CONFIG_BYTES,
            _ => MAX_RAW_BYTES + MAX_SESSION_BYTES,
        };
        if payload_len > max_payload + 32 {
            return Err(DecodeError::Malformed("payload length out of range"));
        }
        let total = HEADER_BYTES + payload_len + TRAILER_BYTES;
        if b.len() < total {
            return Err(truncated(total));
        }
        let body_end = HEADER_BYTES + payload_len;
        if crc32fast::hash(&b[..body_end]) != read_u32(&b[body_end..total]) {
            return Err(DecodeError::Checksum);
        }
        let mut cur = Cursor {
            b: &b[HEADER_BYTES..body_end],
        };
        let ts_ns = cur.u64()?;
        let input = match kind {
            KIND_FIX => {
                let session = cur.session()?;
                let raw_len = cur.u32()? as usize;
                if raw_len > MAX_RAW_BYTES {
                    return Err(DecodeError::Malformed("frame too long"));
                }
                let raw = Bytes::copy_from_slice(cur.take(raw_len)?);
                VenueInput::Fix {
                    session,
                    ts_ns,
                    raw,
                }
            }
            KIND_TICK => VenueInput::Tick { ts_ns },
            KIND_SESSION_DOWN => VenueInput::SessionDown {
                session: cur.session()?,
                ts_ns,
            },
            KIND_OPERATOR => VenueInput::Operator {
                who: cur.session()?,
                ts_ns,
                action: cur.session()?,
            },
            KIND_CONFIGURE => {
                let len = cur.u32()? as usize;
                if len > MAX_CONFIG_BYTES {
                    return Err(DecodeError::Malformed("configuration too long"));
                }
                let config = std::str::from_utf8(cur.take(len)?)
                    .map_err(|_| DecodeError::Malformed("configuration not UTF-8"))?;
                VenueInput::Configure {
                    ts_ns,
                    config: config.to_string(),
                }
            }
            k => return Err(DecodeError::UnknownKind(k)),
        };
        if !cur.b.is_empty() {
            return Err(DecodeError::Malformed("trailing bytes in payload"));
        }
        Ok((input, total))
    }
}

fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Reads fields off a checksummed payload.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(DecodeError::Malformed("field runs past the payload"));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take(4).map(read_u32)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn session(&mut self) -> Result<String, DecodeError> {
        let n = usize::from(self.take(1)?[0]);
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| DecodeError::Malformed("session is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_input() -> impl Strategy<Value = VenueInput> {
        prop_oneof![
            (
                "[A-Z0-9_]{0,40}",
                any::<u64>(),
                prop::collection::vec(any::<u8>(), 0..512)
            )
                .prop_map(|(session, ts_ns, raw)| VenueInput::Fix {
                    session,
                    ts_ns,
                    raw: Bytes::from(raw),
                }),
            any::<u64>().prop_map(|ts_ns| VenueInput::Tick { ts_ns }),
            ("\\PC{0,20}", any::<u64>())
                .prop_map(|(session, ts_ns)| VenueInput::SessionDown { session, ts_ns }),
            ("\\PC{0,20}", any::<u64>(), "[a-z]{1,8} [A-Z0-9]{0,12}")
                .prop_map(|(who, ts_ns, action)| VenueInput::Operator { who, ts_ns, action }),
            ("\\PC{0,300}", any::<u64>())
                .prop_map(|(config, ts_ns)| VenueInput::Configure { ts_ns, config }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(inputs in prop::collection::vec(arb_input(), 1..8)) {
            let mut buf = Vec::new();
            for i in &inputs {
                i.encode(&mut buf);
            }
            let mut at = 0;
            for i in &inputs {
                let (back, used) = VenueInput::decode(&buf[at..]).unwrap();
                prop_assert_eq!(&back, i);
                at += used;
            }
            prop_assert_eq!(at, buf.len());
        }

        #[test]
        fn any_single_byte_flip_is_refused(input in arb_input(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            input.encode(&mut buf);
            let i = pos.index(buf.len());
            buf[i] ^= 1 << bit;
            prop_assert!(VenueInput::decode(&buf).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = VenueInput::decode(&b);
        }
    }

    #[test]
    fn truncation_is_reported() {
        let mut buf = Vec::new();
        VenueInput::Tick { ts_ns: 7 }.encode(&mut buf);
        for n in 0..buf.len() {
            assert!(matches!(
                VenueInput::decode(&buf[..n]),
                Err(DecodeError::Truncated { .. })
            ));
        }
        assert_eq!(
            VenueInput::decode(&buf),
            Ok((VenueInput::Tick { ts_ns: 7 }, buf.len()))
        );
    }
}

//! Binary encoding of commands (for the journal and the gateway's batch
//! records) and the little-endian writer/reader that snapshots use too.
//! Fixed-width fields, a tag byte per command; decoding never panics on
//! arbitrary bytes and rejects trailing garbage.

use crate::engine::command::{Command, NewOrder};
use crate::engine::types::{OrdType, Side, Tif};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Input ended inside a value.
    #[error("truncated input")]
    Truncated,
    /// Unknown command tag.
    #[error("unknown command tag {0}")]
    BadTag(u8),
    /// An enum field had an unknown value.
    #[error("invalid {0} value {1}")]
    BadValue(&'static str, u8),
    /// Bytes left after the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Appends little-endian fixed-width values to a Vec.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Writes onto the end of `buf`.
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Writer { buf }
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// A bool as one byte.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    /// u32 LE.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// u64 LE.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// i64 LE.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Option<u32> as flag + value.
    pub fn opt_u32(&mut self, v: Option<u32>) {
        self.bool(v.is_some());
        self.u32(v.unwrap_or(0));
    }
    /// Option<i64> as flag + value.
    pub fn opt_i64(&mut self, v: Option<i64>) {
        self.bool(v.is_some());
        self.i64(v.unwrap_or(0));
    }
}

/// Reads little-endian fixed-width values from a slice.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }
    /// A bool (0 or 1).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadValue("bool", v)),
        }
    }
    /// u32 LE.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    /// u64 LE.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    /// i64 LE.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    /// Option<u32>.
    pub fn opt_u32(&mut self) -> Result<Option<u32>, DecodeError> {
        let some = self.bool()?;
        let v = self.u32()?;
        Ok(some.then_some(v))
    }
    /// Option<i64>.
    pub fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        let some = self.bool()?;
        let v = self.i64()?;
        Ok(some.then_some(v))
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// Fails unless everything was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

pub(crate) fn side_u8(s: Side) -> u8 {
    s as u8
}
pub(crate) fn side_from(v: u8) -> Result<Side, DecodeError> {
    match v {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        v => Err(DecodeError::BadValue("side", v)),
    }
}
pub(crate) fn ord_type_u8(t: OrdType) -> u8 {
    t as u8
}
pub(crate) fn ord_type_from(v: u8) -> Result<OrdType, DecodeError> {
    Ok(match v {
        0 => OrdType::Limit,
        1 => OrdType::Market,
        2 => OrdType::Stop,
        3 => OrdType::StopLimit,
        v => return Err(DecodeError::BadValue("ord_type", v)),
    })
}
pub(crate) fn tif_u8(t: Tif) -> u8 {
    t as u8
}
pub(crate) fn tif_from(v: u8) -> Result<Tif, DecodeError> {
    Ok(match v {
        0 => Tif::Day,
        1 => Tif::Gtc,
        2 => Tif::Ioc,
        3 => Tif::Fok,
        4 => Tif::Gtd,
        v => return Err(DecodeError::BadValue("tif", v)),
    })
}

fn opt_side_u8(s: Option<Side>) -> u8 {
    s.map_or(2, side_u8)
}
fn opt_side_from(v: u8) -> Result<Option<Side>, DecodeError> {
    if v == 2 {
        Ok(None)
    } else {
        side_from(v).map(Some)
    }
}

const T_NEW: u8 = 1;
const T_CANCEL: u8 = 2;
const T_REPLACE: u8 = 3;
const T_MASS: u8 = 4;
const T_HALT: u8 = 5;
const T_RESUME: u8 = 6;
const T_BLOCK: u8 = 7;
const T_REF: u8 = 8;
const T_EOD: u8 = 9;
const T_TICK: u8 = 10;

/// Appends the binary encoding of a command to `out`.
pub fn encode_command(cmd: &Command, out: &mut Vec<u8>) {
    let mut w = Writer::new(out);
    match *cmd {
        Command::NewOrder(ref n) => {
            w.u8(T_NEW);
            w.u64(n.ts_ns);
            w.u32(n.owner);
            w.u32(n.account);
            w.u32(n.instrument);
            w.u8(side_u8(n.side));
            w.u8(ord_type_u8(n.ord_type));
            w.i64(n.price);
            w.i64(n.stop_price);
            w.u64(n.qty);
            w.u8(tif_u8(n.tif));
            w.u64(n.expire_ts_ns);
            w.bool(n.post_only);
            w.u64(n.max_floor);
            w.u64(n.client_ref);
        }
        Command::Cancel {
            ts_ns,
            owner,
            account,
            order_id,
            client_ref,
        } => {
            w.u8(T_CANCEL);
            w.u64(ts_ns);
            w.u32(owner);
            w.u32(account);
            w.u64(order_id);
            w.u64(client_ref);
        }
        Command::Replace {
            ts_ns,
            owner,
            account,
            order_id,
            client_ref,
            new_qty,
            new_price,
            new_stop_price,
        } => {
            w.u8(T_REPLACE);
            w.u64(ts_ns);
            w.u32(owner);
            w.u32(account);
            w.u64(order_id);
            w.u64(client_ref);
            w.u64(new_qty);
            w.i64(new_price);
            w.i64(new_stop_price);
        }
        Command::MassCancel {
            ts_ns,
            owner,
            client_ref,
            account,
            instrument,
            side,
        } => {
            w.u8(T_MASS);
            w.u64(ts_ns);
            w.u32(owner);
            w.u64(client_ref);
            w.opt_u32(account);
            w.opt_u32(instrument);
            w.u8(opt_side_u8(side));
        }
        Command::Halt { ts_ns, instrument } => {
            w.u8(T_HALT);
            w.u64(ts_ns);
            w.u32(instrument);
        }
        Command::Resume { ts_ns, instrument } => {
            w.u8(T_RESUME);
            w.u64(ts_ns);
            w.u32(instrument);
        }
        Command::SetAccountBlocked {
            ts_ns,
            account,
            blocked,
            cancel_open,
        } => {
            w.u8(T_BLOCK);
            w.u64(ts_ns);
            w.u32(account);
            w.bool(blocked);
            w.bool(cancel_open);
        }
        Command::SetReferencePrice {
            ts_ns,
            instrument,
            price,
        } => {
            w.u8(T_REF);
            w.u64(ts_ns);
            w.u32(instrument);
            w.i64(price);
        }
        Command::EndOfDay { ts_ns } => {
            w.u8(T_EOD);
            w.u64(ts_ns);
        }
        Command::Tick { ts_ns } => {
            w.u8(T_TICK);
            w.u64(ts_ns);
        }
    }
}

/// Decodes one command from exactly `bytes`.
pub fn decode_command(bytes: &[u8]) -> Result<Command, DecodeError> {
    let mut r = Reader::new(bytes);
    let cmd = read_command(&mut r)?;
    r.finish()?;
    Ok(cmd)
}

/// Decodes one command from the front of a reader (for records holding several).
pub fn read_command(r: &mut Reader<'_>) -> Result<Command, DecodeError> {
    let tag = r.u8()?;
    Ok(match tag {
        T_NEW => Command::NewOrder(NewOrder {
            ts_ns: r.u64()?,
            owner: r.u32()?,
            account: r.u32()?,
            instrument: r.u32()?,
            side: side_from(r.u8()?)?,
            ord_type: ord_type_from(r.u8()?)?,
            price: r.i64()?,
            stop_price: r.i64()?,
            qty: r.u64()?,
            tif: tif_from(r.u8()?)?,
            expire_ts_ns: r.u64()?,
            post_only: r.bool()?,
            max_floor: r.u64()?,
            client_ref: r.u64()?,
        }),
        T_CANCEL => Command::Cancel {
            ts_ns: r.u64()?,
            owner: r.u32()?,
            account: r.u32()?,
            order_id: r.u64()?,
            client_ref: r.u64()?,
        },
        T_REPLACE => Command::Replace {
            ts_ns: r.u64()?,
            owner: r.u32()?,
            account: r.u32()?,
            order_id: r.u64()?,
            client_ref: r.u64()?,
            new_qty: r.u64()?,
            new_price: r.i64()?,
            new_stop_price: r.i64()?,
        },
        T_MASS => Command::MassCancel {
            ts_ns: r.u64()?,
            owner: r.u32()?,
            client_ref: r.u64()?,
            account: r.opt_u32()?,
            instrument: r.opt_u32()?,
            side: opt_side_from(r.u8()?)?,
        },
        T_HALT => Command::Halt {
            ts_ns: r.u64()?,
            instrument: r.u32()?,
        },
        T_RESUME => Command::Resume {
            ts_ns: r.u64()?,
            instrument: r.u32()?,
        },
        T_BLOCK => Command::SetAccountBlocked {
            ts_ns: r.u64()?,
            account: r.u32()?,
            blocked: r.bool()?,
            cancel_open: r.bool()?,
        },
        T_REF => Command::SetReferencePrice {
            ts_ns: r.u64()?,
            instrument: r.u32()?,
            price: r.i64()?,
        },
        T_EOD => Command::EndOfDay { ts_ns: r.u64()? },
        T_TICK => Command::Tick { ts_ns: r.u64()? },
        t => return Err(DecodeError::BadTag(t)),
    })
}

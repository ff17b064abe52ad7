//! Rendering of the order-entry replies: ExecutionReport (8), OrderCancelReject
//! (9) and OrderMassCancelReport (r). Bodies are written straight into one
//! buffer in ascending tag order; decimals never carry an exponent.

use std::io::Write as _;

use bytes::Bytes;
use rust_decimal::Decimal;

use crate::fix::encoder::push_int;
use crate::fix::tags;
use crate::fix::time::{format_utc, Precision, UtcNanos};
use crate::fix::SOH;
use crate::session::OutboundMessage;

/// Precision of TransactTime (60) and ExpireTime (126): FIX 4.4 allows milliseconds.
const TIME_PRECISION: Precision = Precision::Millis;

/// Value of OrderID (37) when no order exists (rejects, unknown orders).
pub(super) const NO_ORDER_ID: &[u8] = b"NONE";

/// Appends `d` as FIX writes a decimal: without trailing zeros and without
/// exponent, exactly as `d.normalize()` displays, but without the
/// formatter (prices and quantities are written several times per order).
pub(crate) fn push_decimal(buf: &mut Vec<u8>, d: Decimal) {
    let mut m = d.mantissa();
    let mut scale = d.scale();
    while scale > 0 && m % 10 == 0 {
        m /= 10;
        scale -= 1;
    }
    if m < 0 {
        buf.push(b'-');
    }
    let u = m.unsigned_abs();
    let p = 10u128.pow(scale);
    push_u128(buf, u / p);
    if scale > 0 {
        // Not zero: its trailing zeros are gone. Its leading zeros are written.
        let frac = u % p;
        let digits = frac.ilog10() + 1;
        buf.push(b'.');
        buf.extend(std::iter::repeat_n(b'0', (scale - digits) as usize));
        push_u128(buf, frac);
    }
}

fn push_u128(buf: &mut Vec<u8>, v: u128) {
    match u64::try_from(v) {
        Ok(small) if small <= i64::MAX as u64 => push_int(buf, small as i64),
        _ => {
            // Writing into a Vec cannot fail.
            let _ = write!(buf, "{v}");
        }
    }
}

/// A body under construction; tags must be written in ascending order.
pub(super) struct Fields {
    buf: Vec<u8>,
    last_tag: i32,
}

impl Fields {
    pub(super) fn new() -> Fields {
        Fields {
            buf: crate::arena::scratch(),
            last_tag: 0,
        }
    }

    fn tag(&mut self, tag: i32) {
        debug_assert!(tag > self.last_tag, "tag {tag} after {}", self.last_tag);
        self.last_tag = tag;
        push_int(&mut self.buf, i64::from(tag));
        self.buf.push(b'=');
    }

    pub(super) fn bytes(&mut self, tag: i32, v: &[u8]) -> &mut Self {
        self.tag(tag);
        self.buf.extend_from_slice(v);
        self.buf.push(SOH);
        self
    }

    pub(super) fn opt_bytes(&mut self, tag: i32, v: Option<&[u8]>) -> &mut Self {
        if let Some(v) = v {
            self.bytes(tag, v);
        }
        self
    }

    pub(super) fn char(&mut self, tag: i32, c: u8) -> &mut Self {
        self.bytes(tag, &[c])
    }

    pub(super) fn int(&mut self, tag: i32, v: i64) -> &mut Self {
        self.tag(tag);
        push_int(&mut self.buf, v);
        self.buf.push(SOH);
        self
    }

    pub(super) fn dec(&mut self, tag: i32, d: Decimal) -> &mut Self {
        self.tag(tag);
        push_decimal(&mut self.buf, d);
        self.buf.push(SOH);
        self
    }

    pub(super) fn val(&mut self, tag: i32, v: Option<Val<'_>>) -> &mut Self {
        match v {
            Some(Val::Raw(b)) => self.bytes(tag, b),
            Some(Val::Dec(d)) => self.dec(tag, d),
            None => self,
        }
    }

    pub(super) fn time(&mut self, tag: i32, t: UtcNanos) -> &mut Self {
        self.tag(tag);
        format_utc(t, TIME_PRECISION, &mut self.buf);
        self.buf.push(SOH);
        self
    }

    /// The message; its body goes into the thread's frame arena and the
    /// buffer is kept for the next message (no allocation either way).
    pub(super) fn into_message(self, msg_type: &'static [u8]) -> OutboundMessage {
        OutboundMessage {
            msg_type: Bytes::from_static(msg_type),
            header: Vec::new(),
            body: crate::arena::freeze(self.buf),
        }
    }
}

/// A field value: echoed from the request as sent, or computed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
    /// Bytes exactly as the client sent them.
    Raw(&'a [u8]),
    /// A computed decimal.
    Dec(Decimal),
}

/// The fill part of a trade ExecutionReport.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastFill {
    pub qty: Decimal,
    pub px: Decimal,
    pub trade_id: u64,
    /// LastLiquidityInd (851): 1 added liquidity (maker), 2 removed (taker).
    pub liquidity: u8,
}

/// Everything an ExecutionReport (35=8) carries.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExecReport<'a> {
    pub order_id: Option<u64>,
    pub cl_ord_id: &'a [u8],
    pub orig_cl_ord_id: Option<&'a [u8]>,
    pub exec_id: u64,
    pub exec_type: u8,
    pub ord_status: u8,
    pub account: Option<&'a [u8]>,
    pub symbol: Option<&'a [u8]>,
    pub side: Option<&'a [u8]>,
    pub ord_type: Option<&'a [u8]>,
    pub tif: Option<&'a [u8]>,
    pub order_qty: Option<Val<'a>>,
    pub price: Option<Val<'a>>,
    pub stop_px: Option<Val<'a>>,
    pub max_floor: Option<Val<'a>>,
    pub exec_inst: Option<&'a [u8]>,
    pub expire_time: Option<UtcNanos>,
    pub leaves_qty: Decimal,
    pub cum_qty: Decimal,
    pub avg_px: Decimal,
    pub last: Option<LastFill>,
    pub ord_rej_reason: Option<u32>,
    pub text: Option<&'a str>,
    pub ord_status_req_id: Option<&'a [u8]>,
    pub transact_time: UtcNanos,
}

impl ExecReport<'_> {
    /// Renders the report; `trd_match_id` adds TrdMatchID (880) on fills,
    /// `copy` marks a drop copy (CopyMsgIndicator 797=Y).
    pub(super) fn render(&self, trd_match_id: bool, copy: bool) -> OutboundMessage {
        let mut f = Fields::new();
        f.opt_bytes(tags::ACCOUNT, self.account)
            .dec(tags::AVG_PX, self.avg_px)
            .bytes(tags::CL_ORD_ID, self.cl_ord_id)
            .dec(tags::CUM_QTY, self.cum_qty)
            .int(tags::EXEC_ID, self.exec_id as i64)
            .opt_bytes(tags::EXEC_INST, self.exec_inst);
        if let Some(l) = &self.last {
            f.dec(tags::LAST_PX, l.px).dec(tags::LAST_QTY, l.qty);
        }
        write_order_id(&mut f, self.order_id);
        f.val(tags::ORDER_QTY, self.order_qty)
            .char(tags::ORD_STATUS, self.ord_status)
            .opt_bytes(tags::ORD_TYPE, self.ord_type)
            .opt_bytes(tags::ORIG_CL_ORD_ID, self.orig_cl_ord_id)
            .val(tags::PRICE, self.price)
            .opt_bytes(tags::SIDE, self.side)
            .opt_bytes(tags::SYMBOL, self.symbol)
            .opt_bytes(tags::TEXT, self.text.map(str::as_bytes))
            .opt_bytes(tags::TIME_IN_FORCE, self.tif)
            .time(tags::TRANSACT_TIME, self.transact_time)
            .val(tags::STOP_PX, self.stop_px);
        if let Some(r) = self.ord_rej_reason {
            f.int(tags::ORD_REJ_REASON, i64::from(r));
        }
        f.val(tags::MAX_FLOOR, self.max_floor);
        if let Some(t) = self.expire_time {
            f.time(tags::EXPIRE_TIME, t);
        }
        f.char(tags::EXEC_TYPE, self.exec_type)
            .dec(tags::LEAVES_QTY, self.leaves_qty)
            .opt_bytes(tags::ORD_STATUS_REQ_ID, self.ord_status_req_id);
        if copy {
            f.bytes(tags::COPY_MSG_INDICATOR, b"Y");
        }
        if let Some(l) = &self.last {
            f.int(tags::LAST_LIQUIDITY_IND, i64::from(l.liquidity));
            if trd_match_id {
                f.int(tags::TRD_MATCH_ID, l.trade_id as i64);
            }
        }
        f.into_message(b"8")
    }
}

/// Everything an OrderCancelReject (35=9) carries.
#[derive(Debug, Clone, Copy)]
pub(super) struct CancelReject<'a> {
    pub account: Option<&'a [u8]>,
    pub cl_ord_id: &'a [u8],
    pub order_id: Option<u64>,
    pub ord_status: u8,
    pub orig_cl_ord_id: &'a [u8],
    pub text: &'a str,
    pub transact_time: UtcNanos,
    pub reason: u32,
    /// CxlRejResponseTo (434): b'1' cancel, b'2' cancel/replace.
    pub response_to: u8,
}

impl CancelReject<'_> {
    pub(super) fn render(&self) -> OutboundMessage {
        let mut f = Fields::new();
        f.opt_bytes(tags::ACCOUNT, self.account)
            .bytes(tags::CL_ORD_ID, self.cl_ord_id);
        write_order_id(&mut f, self.order_id);
        f.char(tags::ORD_STATUS, self.ord_status)
            .bytes(tags::ORIG_CL_ORD_ID, self.orig_cl_ord_id)
            .bytes(tags::TEXT, self.text.as_bytes())
            .time(tags::TRANSACT_TIME, self.transact_time)
            .int(tags::CXL_REJ_REASON, i64::from(self.reason))
            .char(tags::CXL_REJ_RESPONSE_TO, self.response_to);
        f.into_message(b"9")
    }
}

/// Everything an OrderMassCancelReport (35=r) carries.
#[derive(Debug, Clone, Copy)]
pub(super) struct MassCancelReport<'a> {
    pub cl_ord_id: &'a [u8],
    /// OrderID (37): the venue's id of the mass cancel request.
    pub report_id: u64,
    pub side: Option<&'a [u8]>,
    pub symbol: Option<&'a [u8]>,
    pub text: Option<&'a str>,
    pub transact_time: UtcNanos,
    pub request_type: &'a [u8],
    /// MassCancelResponse (531): b'0' rejected, else the request type.
    pub response: &'a [u8],
    pub reject_reason: Option<u32>,
    pub total_affected: Option<u32>,
}

impl MassCancelReport<'_> {
    pub(super) fn render(&self) -> OutboundMessage {
        let mut f = Fields::new();
        f.bytes(tags::CL_ORD_ID, self.cl_ord_id);
        f.tag(tags::ORDER_ID);
        f.buf.extend_from_slice(b"MC");
        push_int(&mut f.buf, self.report_id as i64);
        f.buf.push(SOH);
        f.opt_bytes(tags::SIDE, self.side)
            .opt_bytes(tags::SYMBOL, self.symbol)
            .opt_bytes(tags::TEXT, self.text.map(str::as_bytes))
            .time(tags::TRANSACT_TIME, self.transact_time)
            .bytes(tags::MASS_CANCEL_REQUEST_TYPE, self.request_type)
            .bytes(tags::MASS_CANCEL_RESPONSE, self.response);
        if let Some(r) = self.reject_reason {
            f.int(tags::MASS_CANCEL_REJECT_REASON, i64::from(r));
        }
        if let Some(n) = self.total_affected {
            f.int(tags::TOTAL_AFFECTED_ORDERS, i64::from(n));
        }
        f.into_message(b"r")
    }
}

fn write_order_id(f: &mut Fields, id: Option<u64>) {
    match id {
        Some(id) => f.int(tags::ORDER_ID, id as i64),
        None => f.bytes(tags::ORDER_ID, NO_ORDER_ID),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_normalize_displays_them() {
        let mut samples: Vec<Decimal> = [
            "0",
            "-0",
            "0.000",
            "1",
            "-1",
            "150",
            "150.00",
            "150.25",
            "0.05",
            "-0.05",
            "1000000",
            "0.0000001",
            "12345678901234567890.123",
            "-79228162514264337593543950335",
            "7.9228162514264337593543950335",
            "100.10",
            "3.14159",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for i in -2000i64..2000 {
            for scale in 0..6 {
                samples.push(Decimal::new(i * 7919, scale));
            }
        }
        for d in samples {
            let mut buf = Vec::new();
            push_decimal(&mut buf, d);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                d.normalize().to_string(),
                "{d:?}"
            );
        }
    }
}

//! Secrets out of readable copies of a frame: the values of Password (554),
//! NewPassword (925) and any other tag named become `***`. Used for logs and
//! exports only; the wire bytes and the store keep the real values.

use std::borrow::Cow;

use super::SOH;

/// Tags whose values are always hidden: Password, NewPassword.
pub const SECRET_TAGS: [u32; 2] = [554, 925];

/// What a hidden value reads as.
pub const MASK: &[u8] = b"***";

/// `raw` with the value of every field whose tag is in [`SECRET_TAGS`] or
/// `extra` replaced by [`MASK`]; borrowed unchanged when there is none.
/// Fields are split at SOH (a RawData value holding SOH is split too).
pub fn redact<'a>(raw: &'a [u8], extra: &[u32]) -> Cow<'a, [u8]> {
    let secret =
        |tag: &[u8]| parse_tag(tag).is_some_and(|t| SECRET_TAGS.contains(&t) || extra.contains(&t));
    let mut out: Option<Vec<u8>> = None;
    let mut start = 0;
    while start < raw.len() {
        let end = memchr::memchr(SOH, &raw[start..]).map_or(raw.len(), |p| start + p);
        let field = &raw[start..end];
        if let Some(eq) = memchr::memchr(b'=', field).filter(|&eq| secret(&field[..eq])) {
            let buf = out.get_or_insert_with(|| {
                let mut v = Vec::with_capacity(raw.len());
                v.extend_from_slice(&raw[..start]);
                v
            });
            buf.extend_from_slice(&field[..=eq]);
            buf.extend_from_slice(MASK);
        } else if let Some(buf) = out.as_mut() {
            buf.extend_from_slice(field);
        }
        if let (Some(buf), true) = (out.as_mut(), end < raw.len()) {
            buf.push(SOH);
        }
        start = end + 1;
    }
    out.map_or(Cow::Borrowed(raw), Cow::Owned)
}

/// [`redact`] for a fixed set of tags, fast on the usual frame that holds
/// none of them: a SIMD search for each `SOH tag=` decides whether the
/// frame is looked at field by field.
pub struct Redactor {
    tags: Vec<u32>,
    needles: Vec<memchr::memmem::Finder<'static>>,
}

impl Redactor {
    /// Masks [`SECRET_TAGS`] and `extra`.
    pub fn new(extra: &[u32]) -> Redactor {
        let mut tags = SECRET_TAGS.to_vec();
        tags.extend(extra.iter().filter(|t| !SECRET_TAGS.contains(t)));
        let needles = tags
            .iter()
            .map(|t| memchr::memmem::Finder::new(format!("\x01{t}=").as_bytes()).into_owned())
            .collect();
        Redactor { tags, needles }
    }

    /// `raw` with the values of the tags masked (see [`redact`]).
    pub fn redact<'a>(&self, raw: &'a [u8]) -> Cow<'a, [u8]> {
        let present =
            |n: &memchr::memmem::Finder| raw.starts_with(&n.needle()[1..]) || n.find(raw).is_some();
        if self.needles.iter().any(present) {
            redact(raw, &self.tags)
        } else {
            Cow::Borrowed(raw)
        }
    }
}

fn parse_tag(tag: &[u8]) -> Option<u32> {
    if tag.is_empty() || tag.len() > 9 || !tag.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(tag.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(raw: &str, extra: &[u32]) -> String {
        String::from_utf8(redact(raw.as_bytes(), extra).into_owned())
            .unwrap()
            .replace('\x01', "|")
    }

    #[test]
    fn passwords_are_masked_and_nothing_else_changes() {
        assert_eq!(
            r(
                "8=FIX.4.4\x019=5\x0135=A\x01554=secret\x01925=new\x0110=000\x01",
                &[]
            ),
            "8=FIX.4.4|9=5|35=A|554=***|925=***|10=000|"
        );
        assert_eq!(
            r("35=A\x01553=user\x019001=k\x01", &[553, 9001]),
            "35=A|553=***|9001=***|"
        );
        // An empty value is masked too; no trailing SOH stays without one.
        assert_eq!(r("554=\x0110=1", &[]), "554=***|10=1");
    }

    #[test]
    fn redactor_masks_the_same_fields() {
        let r = Redactor::new(&[553, 554]);
        for raw in [
            &b"8=FIX.4.4\x01553=u\x01554=p\x01925=n\x01"[..],
            b"554=p\x0155=x",
            b"553=u",
            b"8=FIX.4.4\x0155=IBM\x015530=x\x01",
        ] {
            assert_eq!(r.redact(raw), redact(raw, &[553]), "{raw:?}");
        }
        assert!(matches!(
            r.redact(b"8=FIX.4.4\x0155=IBM\x01"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn frames_without_secrets_are_borrowed() {
        let raw = b"8=FIX.4.4\x0135=D\x015540=x\x0155=554\x01";
        assert!(matches!(redact(raw, &[]), Cow::Borrowed(_)));
        // Garbage never panics and is kept as it was.
        for raw in [
            &b""[..],
            b"\x01\x01",
            b"=",
            b"554",
            b"=554\x01",
            b"99999999999=1",
        ] {
            assert_eq!(&*redact(raw, &[]), raw);
        }
    }
}

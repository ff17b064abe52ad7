//! Message validation against a [`Dictionary`], reproducing QuickFIX's
//! checks and their order (the first error wins), and the canonical body
//! order QuickFIX re-serialises messages in.
//!
//! This file owns the split of a message into header, body, trailer and
//! repeating-group entries. It never allocates on the success path (for
//! messages of up to 64 top-level fields) and never panics on hostile input.
//!
//! # Repeating groups
//!
//! Entries are found as QuickFIX's `Message::setGroup` finds them; the count
//! field's value is not used to parse, only compared afterwards:
//! * after a count field, the first field that is a member of the group
//!   starts the first entry (normally the delimiter, the first field of the
//!   definition; an entry starting with another member is accepted, as in
//!   QuickFIX, and usually shows up as a count mismatch);
//! * within an entry, the delimiter, or a member already present in the
//!   entry, starts a new entry (so `386=2|336=A|625=x|625=y` has two entries);
//! * a field that is not a member ends the group and belongs to the parent;
//!   a nested count field parses its own group before the entry continues;
//! * a count of 0 followed by no member is valid (no entries).
//!
//! Required members of a group are checked in every entry present, whether
//! or not the group itself is required (QuickFIX only checks them inside
//! required groups; the FIX specification means them per entry).

use std::cell::{Cell, RefCell};

use super::dictionary::{
    in_byte_set, Dictionary, FieldDef, FieldType, GroupDef, Layout, BODY, GROUP_COUNT, HEADER,
    MAX_GROUP_MEMBERS, SECTION, TRAILER,
};
use super::message::{FieldSpan, Message};
use super::parser::zero_bytes;
use super::reject::{Rejection, SessionRejectReason as Reason};
use super::time;

/// First tag of the user-defined range (FIX `UserMin`).
pub const USER_DEFINED_MIN_TAG: i32 = 5000;

/// Which optional checks run (QuickFIX's `Validate*` / `AllowUnknownMsgFields`
/// session settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationOptions {
    /// `ValidateFieldsOutOfOrder`: header fields after the body, or body
    /// fields after the trailer, are rejected (373=14).
    pub check_fields_out_of_order: bool,
    /// `ValidateFieldsHaveValues`: empty values are rejected (373=4).
    pub check_fields_have_values: bool,
    /// `ValidateUserDefinedFields`: tags >= 5000 are checked against the
    /// dictionary like any other.
    pub check_user_defined_fields: bool,
    /// `AllowUnknownMsgFields`: tags < 5000 that are unknown, or not defined
    /// for the message type, are accepted.
    pub allow_unknown_msg_fields: bool,
}

impl Default for ValidationOptions {
    /// QuickFIX's defaults: true, true, true, false.
    fn default() -> Self {
        ValidationOptions {
            check_fields_out_of_order: true,
            check_fields_have_values: true,
            check_user_defined_fields: true,
            allow_unknown_msg_fields: false,
        }
    }
}

const NOT_GROUP: u32 = u32::MAX;
/// Top-level fields held on the stack; larger messages use a heap buffer.
const STACK_SLOTS: usize = 64;

/// A top-level field of the header, trailer or body.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Section, then QuickFIX's field order within it, then wire position.
    order: u64,
    section: u8,
    /// Index in the message's field list.
    idx: u32,
    /// Number of group entries parsed after it, or `NOT_GROUP`.
    entries: u32,
}

/// Members seen in the current group entry.
struct Seen([u64; MAX_GROUP_MEMBERS / 64]);

impl Seen {
    fn new() -> Seen {
        Seen([0; MAX_GROUP_MEMBERS / 64])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Validates `msg` against `dict`; the first problem found, in QuickFIX's
/// order, is returned as a session-level rejection. BeginString and the
/// session checks (CompIDs, SendingTime, MsgSeqNum) are not done here.
pub fn validate(
    dict: &Dictionary,
    msg: &Message,
    opts: &ValidationOptions,
) -> Result<(), Rejection> {
    let index = dict.msg_index(msg.msg_type());
    let body = index.map(|i| &dict.message_at(i).layout);
    if let (Some(index), Some(body)) = (index, body) {
        let key = ShapeKey {
            dict: dict.id(),
            opts: *opts,
            msg: index,
        };
        let v = Validator {
            dict,
            msg,
            fields: msg.fields(),
            opts,
            shape: &[],
        };
        let known = SHAPES.try_with(|shapes| {
            let mut shapes = shapes.try_borrow_mut().ok()?;
            Some(v.fast_ok_remembering(&mut shapes[index % SHAPE_SLOTS], key, body))
        });
        let ok = match known {
            Ok(Some(ok)) => ok,
            // Thread teardown: validate without remembering.
            _ => v.fast_ok(body),
        };
        if ok {
            return Ok(());
        }
    }
    validate_ordered(dict, msg, opts, body)
}

/// What a remembered [`Shape`] is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShapeKey {
    /// [`Dictionary::id`].
    dict: u64,
    opts: ValidationOptions,
    /// [`Dictionary::msg_index`] of the message type.
    msg: usize,
}

/// What [`Validator::value_error`] comes down to for a non-empty value of
/// a tag, decided once per dictionary from its type and enumeration
/// ([`TagInfo::kind`]), so that a remembered [`Shape`] checks values
/// without the type dispatch or a definition lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// Free text, or a tag the dictionary does not define: any value.
    Any,
    /// An integer type without enumeration: [`is_int`].
    Int,
    /// A decimal type without enumeration: [`is_decimal`].
    Decimal,
    /// A CHAR without enumeration: one byte.
    Char,
    /// A UTCTimestamp without enumeration.
    UtcTimestamp,
    /// A single-value type whose enumeration holds one-byte values only,
    /// each of the type's format: one byte of the set.
    OneByte,
    /// Anything else: [`Validator::value_error`] itself.
    General,
}

/// A test of a value's format. The value is the last `len` bytes (at least
/// one) of the slice, which runs from the frame's start: short values are
/// then read in place, a word at a time, the bytes before them filling the
/// word.
type FormatCheck = fn(&[u8], usize) -> bool;

/// The kinds whose check is a format test, with that test (of a non-empty
/// value): what [`format_ok`] does for their types.
const FORMAT_KINDS: [(ValueKind, FormatCheck); 4] = [
    (ValueKind::Int, int_at_end),
    (ValueKind::Decimal, decimal_at_end),
    (ValueKind::Char, |_, len| len == 1),
    (ValueKind::UtcTimestamp, utc_timestamp_at_end),
];

/// The [`ValueKind`] of a field defined as `def` (`None`: not defined).
pub(crate) fn value_kind(def: Option<&FieldDef>) -> ValueKind {
    use FieldType::*;
    let Some(def) = def else {
        return ValueKind::Any;
    };
    let t = def.field_type;
    if def.has_values() {
        let one_byte = def
            .one_byte_values()
            .is_some_and(|set| (0..=255u8).all(|b| !in_byte_set(set, b) || format_ok(t, &[b])));
        return if one_byte && !t.is_multiple_value() {
            ValueKind::OneByte
        } else {
            ValueKind::General
        };
    }
    match t {
        Int | Length | SeqNum | NumInGroup | TagNum | DayOfMonth => ValueKind::Int,
        Float | Qty | Price | PriceOffset | Amt | Percentage => ValueKind::Decimal,
        Char => ValueKind::Char,
        UtcTimestamp => ValueKind::UtcTimestamp,
        t if any_value_ok(t) => ValueKind::Any,
        _ => ValueKind::General,
    }
}

/// The tag sequence of a message that passed [`Validator::fast_ok`]. Every
/// check of the fast path except the value checks (format, enumeration,
/// empty value) and the group counts' values depends only on the dictionary,
/// the options, the message type and the tag sequence; so a later message
/// with the same key and tags passes them too, and only the checks that
/// depend on values are repeated (on every field, which covers those the
/// fast path makes). Anything that fails there goes through the whole
/// validation again, so results never depend on what was remembered.
///
/// The value checks are sorted by kind when the shape is recorded (field
/// indexes per [`ValueKind`]), so that repeating them is one loop per kind
/// and free-text fields cost nothing past the tag compare.
#[derive(Debug)]
struct Shape {
    key: Option<ShapeKey>,
    /// The tags, in wire order.
    tags: Vec<i32>,
    /// Indexes of the fields of each kind of [`FORMAT_KINDS`], in that order.
    formats: [Vec<u16>; FORMAT_KINDS.len()],
    /// Indexes of the fields of kind `General`.
    general: Vec<u16>,
    /// `kinds`, `one_byte` and `counts` are those of `tags`.
    compiled: bool,
    /// Fields of kind `OneByte`, with their enumeration as a 256-bit set.
    one_byte: Vec<OneByteField>,
    /// Group count fields, with the number of entries that followed them.
    counts: Vec<(u16, u32)>,
    /// The entries found after each field when the tags were recorded, or
    /// `NOT_GROUP` (see [`Validator::check_count`]).
    entries: Vec<Cell<u32>>,
}

/// A field of kind `OneByte` in a [`Shape`].
#[derive(Debug, Clone, Copy)]
struct OneByteField {
    /// The enumeration: bit `b % 64` of word `b / 64` for value `b`.
    set: [u64; 4],
    /// Index of the field in the message.
    idx: u16,
}

impl Shape {
    const EMPTY: Shape = Shape {
        key: None,
        tags: Vec::new(),
        compiled: false,
        formats: [const { Vec::new() }; FORMAT_KINDS.len()],
        general: Vec::new(),
        one_byte: Vec::new(),
        counts: Vec::new(),
        entries: Vec::new(),
    };

    /// Sorts the value checks of the recorded tags (`tags`, `entries`) by
    /// kind, and marks the shape compiled. Done when a second message with
    /// these tags comes, so that a stream of ever new tag sequences only
    /// pays for copying the tags. False when a tag has no [`TagInfo`]
    /// (beyond the dense range: only possible for group members), whose
    /// checks go through its definition and so are not remembered.
    fn compile(&mut self, dict: &Dictionary) -> bool {
        self.formats.iter_mut().for_each(Vec::clear);
        self.general.clear();
        self.one_byte.clear();
        self.counts.clear();
        for (idx, (&tag, entries)) in self.tags.iter().zip(&self.entries).enumerate() {
            let Some(info) = dict.tag_info(tag) else {
                return false;
            };
            let idx = idx as u16;
            let kind = match (entries.get(), info.kind) {
                (NOT_GROUP, kind) => kind,
                (n, _) => {
                    self.counts.push((idx, n));
                    continue;
                }
            };
            match kind {
                ValueKind::Any => {}
                ValueKind::OneByte => {
                    let Some(&set) = dict.field(tag).and_then(FieldDef::one_byte_values) else {
                        return false;
                    };
                    self.one_byte.push(OneByteField { set, idx });
                }
                ValueKind::General => self.general.push(idx),
                kind => {
                    let Some(k) = FORMAT_KINDS.iter().position(|&(f, _)| f == kind) else {
                        return false;
                    };
                    self.formats[k].push(idx);
                }
            }
        }
        self.compiled = true;
        true
    }
}

/// Shapes remembered per thread: one per message type (modulo the slots).
const SHAPE_SLOTS: usize = 32;
/// Longer messages are not remembered.
const SHAPE_MAX_FIELDS: usize = 256;

thread_local! {
    /// The last shape that passed the fast path, per message type slot.
    static SHAPES: RefCell<[Shape; SHAPE_SLOTS]> = const {
        RefCell::new([Shape::EMPTY; SHAPE_SLOTS])
    };
}

/// Bound of the tag bitset the fast path uses; messages with other tags take
/// the ordered path.
const FAST_TAG_LIMIT: i32 = 1024;
// The fast path decides `should_check_tag` once, for tags below UserMin.
const _: () = assert!(FAST_TAG_LIMIT <= USER_DEFINED_MIN_TAG);

/// The full check in QuickFIX's order (sorted sections), which finds the
/// error QuickFIX would report first.
fn validate_ordered(
    dict: &Dictionary,
    msg: &Message,
    opts: &ValidationOptions,
    body: Option<&Layout>,
) -> Result<(), Rejection> {
    let fields = msg.fields();

    if fields.len() >= 1 << 24 {
        // Beyond any frame the codec accepts; refuse rather than mis-sort.
        return Err(Rejection::message(Reason::Other));
    }
    let mut stack = [Slot::default(); STACK_SLOTS];
    let mut heap;
    let slots: &mut [Slot] = if fields.len() <= STACK_SLOTS {
        &mut stack[..]
    } else {
        heap = vec![Slot::default(); fields.len()];
        &mut heap[..]
    };
    let mut count = 0;
    let out_of_order = walk(dict, body, fields, |section, idx, _end, entries| {
        let tag = fields[idx].tag;
        let key = match section {
            HEADER => header_key(tag),
            TRAILER if tag == 10 => i32::MAX,
            _ => tag,
        };
        // Offsetting the i32 key makes it sort as unsigned; parser::MAX_FIELDS
        // keeps `idx` well inside 24 bits (checked above).
        let key = u64::from(key.wrapping_sub(i32::MIN) as u32);
        slots[count] = Slot {
            order: (u64::from(section) << 56) | (key << 24) | idx as u64,
            section,
            idx: idx as u32,
            entries,
        };
        count += 1;
    });
    if opts.check_fields_out_of_order {
        if let Some(tag) = out_of_order {
            return Err(Rejection::tag(Reason::TagSpecifiedOutOfRequiredOrder, tag));
        }
    }
    let Some(body) = body else {
        return Err(Rejection::message(Reason::InvalidMsgType));
    };
    let slots = &mut slots[..count];
    slots.sort_unstable_by_key(|s| s.order);
    let header_end = slots.partition_point(|s| s.section == HEADER);
    let trailer_end = slots.partition_point(|s| s.section <= TRAILER);
    let (header, rest) = slots.split_at(header_end);
    let (trailer, body_slots) = rest.split_at(trailer_end - header_end);

    let v = Validator {
        dict,
        msg,
        fields,
        opts,
        shape: &[],
    };
    v.check_required(header, &dict.header.required)?;
    v.check_required(trailer, &dict.trailer.required)?;
    v.check_required(body_slots, &body.required)?;
    for s in body_slots.iter().filter(|s| s.entries != NOT_GROUP) {
        if let Some(g) = body.group(fields[s.idx as usize].tag) {
            v.group_required(dict.group_at(g), s.idx as usize + 1)?;
        }
    }

    v.check_level(header, None)?;
    v.check_level(trailer, None)?;
    v.check_level(body_slots, Some(body))?;
    for (slots, layout) in [(header, &dict.header), (body_slots, body)] {
        for s in slots.iter().filter(|s| s.entries != NOT_GROUP) {
            if let Some(g) = layout.group(fields[s.idx as usize].tag) {
                v.group_fields(dict.group_at(g), s.idx as usize + 1)?;
            }
        }
    }
    Ok(())
}

/// The body fields of `msg` in the order QuickFIX re-serialises them:
/// top-level fields by ascending tag (stable for duplicates), each group
/// count field followed by its entries' fields in their original order.
/// Header and trailer fields are left out.
pub fn canonical_body(dict: &Dictionary, msg: &Message) -> Vec<FieldSpan> {
    let fields = msg.fields();
    let body = dict.message(msg.msg_type()).map(|m| &m.layout);
    let mut top: Vec<(i32, usize, usize)> = Vec::with_capacity(fields.len());
    walk(dict, body, fields, |section, idx, end, _| {
        if section == BODY {
            top.push((fields[idx].tag, idx, end));
        }
    });
    top.sort_unstable_by_key(|t| (t.0, t.1));
    let mut out = Vec::with_capacity(fields.len());
    for (_, idx, end) in top {
        out.extend_from_slice(&fields[idx..end]);
    }
    out
}

/// Header order: 8, 9, 35 first, then ascending tags.
fn header_key(tag: i32) -> i32 {
    match tag {
        8 => i32::MIN,
        9 => i32::MIN + 1,
        35 => i32::MIN + 2,
        t => t,
    }
}

/// Walks the message as QuickFIX's `Message::setString` does, calling
/// `visit(section, index, end, entries)` for every top-level field (`end` is
/// one past its group's last field, `entries` the number of group entries or
/// `NOT_GROUP`). Returns the first field out of its section's order: a header
/// field after a body or trailer field, or a body field after a trailer field.
fn walk(
    dict: &Dictionary,
    body: Option<&Layout>,
    fields: &[FieldSpan],
    mut visit: impl FnMut(u8, usize, usize, u32),
) -> Option<i32> {
    let mut current = HEADER;
    let mut out_of_order = None;
    let mut i = 0;
    while i < fields.len() {
        let tag = fields[i].tag;
        let class = dict.tag_class(tag);
        let section = class & SECTION;
        let layout = match section {
            HEADER => {
                if current != HEADER {
                    out_of_order.get_or_insert(tag);
                }
                Some(&dict.header)
            }
            TRAILER => {
                current = TRAILER;
                Some(&dict.trailer)
            }
            _ => {
                if current == TRAILER {
                    out_of_order.get_or_insert(tag);
                }
                current = BODY;
                body
            }
        };
        let idx = i;
        i += 1;
        let mut entries = NOT_GROUP;
        let group = layout.filter(|_| class & GROUP_COUNT != 0);
        if let Some(g) = group.and_then(|l| l.group(tag)) {
            let (end, n) = group_extent(dict, dict.group_at(g), fields, i);
            i = end;
            entries = n;
        }
        visit(section, idx, i, entries);
    }
    out_of_order
}

/// Parses the entries of `g` starting at `start` (just after the count
/// field); returns the index after the group and the number of entries.
fn group_extent(
    dict: &Dictionary,
    g: &GroupDef,
    fields: &[FieldSpan],
    start: usize,
) -> (usize, u32) {
    let mut j = start;
    let mut entries = 0u32;
    while j < fields.len() && g.member_index(fields[j].tag).is_some() {
        j = entry_end(dict, g, fields, j, &mut Seen::new());
        entries = entries.saturating_add(1);
    }
    (j, entries)
}

/// Finds the end of the entry whose first field (a member) is at `start`,
/// recording its members in `seen`.
fn entry_end(
    dict: &Dictionary,
    g: &GroupDef,
    fields: &[FieldSpan],
    start: usize,
    seen: &mut Seen,
) -> usize {
    let mut j = start;
    while j < fields.len() {
        let tag = fields[j].tag;
        let Some(m) = g.member_index(tag) else { break };
        if j > start && (tag == g.delimiter || seen.has(m)) {
            break;
        }
        seen.set(m);
        j += 1;
        if let Some(nested) = dict.nested_group(g, tag) {
            j = group_extent(dict, nested, fields, j).0;
        }
    }
    j
}

/// Field-level checks, shared by every level.
struct Validator<'a> {
    dict: &'a Dictionary,
    msg: &'a Message,
    fields: &'a [FieldSpan],
    opts: &'a ValidationOptions,
    /// The entries after each field of the shape being recorded, or empty.
    shape: &'a [Cell<u32>],
}

impl Validator<'_> {
    /// [`Validator::fast_ok`], through `shape`: when it holds this message's
    /// key and tag sequence, only the checks on values are made; otherwise
    /// the fast path runs and, if the message passes, `shape` is replaced
    /// by this message's.
    fn fast_ok_remembering(&self, shape: &mut Shape, key: ShapeKey, body: &Layout) -> bool {
        if shape.key == Some(key) {
            if !shape.compiled && self.same_tags(&shape.tags) && !shape.compile(self.dict) {
                shape.key = None;
                return self.fast_ok(body);
            }
            if shape.compiled && self.values_ok(shape) {
                return true;
            }
            if self.same_tags(&shape.tags) {
                // The shape stays: a message with these tags passed before.
                return self.fast_ok(body);
            }
        }
        shape.key = None;
        shape.compiled = false;
        shape.entries.clear();
        shape.tags.clear();
        let remember = self.fields.len() <= SHAPE_MAX_FIELDS;
        if remember {
            let entries = self.fields.iter().map(|_| Cell::new(NOT_GROUP));
            shape.entries.extend(entries);
        }
        let recording = Validator {
            shape: &shape.entries,
            ..*self
        };
        let ok = recording.fast_ok(body);
        if ok && remember {
            shape.tags.extend(self.fields.iter().map(|f| f.tag));
            shape.key = Some(key);
        }
        ok
    }

    /// True when the message's tags are `tags`, in that order.
    fn same_tags(&self, tags: &[i32]) -> bool {
        tags.len() == self.fields.len() && self.fields.iter().zip(tags).all(|(f, &t)| f.tag == t)
    }

    /// True when the message's tags are those of `shape` and its values
    /// pass the value checks and the group counts recorded there (false
    /// says neither which nor where).
    fn values_ok(&self, shape: &Shape) -> bool {
        let fields = self.fields;
        if shape.tags.len() != fields.len() {
            return false;
        }
        let mut empty = false;
        for (f, &tag) in fields.iter().zip(&shape.tags) {
            if f.tag != tag {
                return false;
            }
            empty |= f.start == f.end;
        }
        if empty && self.opts.check_fields_have_values {
            return false;
        }
        // Past here an empty value passes every check but a count's (what
        // `value_error` decides when empty values are allowed).
        let raw: &[u8] = self.msg.raw();
        let value = |idx: u16| {
            let f = fields.get(usize::from(idx))?;
            raw.get(f.start as usize..f.end as usize)
        };
        // The frame up to the value's end, and the value's length.
        let value_end = |idx: u16| {
            let f = fields.get(usize::from(idx))?;
            let len = f.end.checked_sub(f.start)?;
            Some((raw.get(..f.end as usize)?, len as usize))
        };
        FORMAT_KINDS
            .iter()
            .zip(&shape.formats)
            .all(|(&(_, ok), indexes)| {
                indexes
                    .iter()
                    .all(|&i| value_end(i).is_some_and(|(buf, len)| len == 0 || ok(buf, len)))
            })
            && shape.one_byte.iter().all(|f| match value(f.idx) {
                Some([]) => true,
                Some([b]) => in_byte_set(&f.set, *b),
                _ => false,
            })
            && shape.general.iter().all(|&i| {
                let tag = fields[usize::from(i)].tag;
                value(i).is_some_and(|v| self.check_value(tag, v).is_ok())
            })
            && shape.counts.iter().all(|&(i, entries)| {
                let tag = fields[usize::from(i)].tag;
                value(i).is_some_and(|v| {
                    self.check_value(tag, v).is_ok()
                        && self.check_count(usize::MAX, tag, v, entries).is_ok()
                })
            })
    }

    /// One pass in wire order, no sorting: true when the message is valid.
    /// Any doubt (an error, a tag outside the bitset) returns false and the
    /// ordered path decides, so the two always agree on valid messages.
    fn fast_ok(&self, body: &Layout) -> bool {
        let dict = self.dict;
        let raw: &[u8] = self.msg.raw();
        // Every tag past the range check below is under UserMin.
        let check_tags = self.should_check_tag(0);
        let mut seen = [0u64; FAST_TAG_LIMIT as usize / 64];
        let mut low = 0u64;
        let mut current = HEADER;
        let mut i = 0;
        while let Some(&field) = self.fields.get(i) {
            let tag = field.tag;
            if !(0..FAST_TAG_LIMIT).contains(&tag) {
                return false;
            }
            let bit = 1u64 << (tag % 64);
            // Tags below 64 (most of the header and of an order) are tracked
            // in a register: through the array, each field would wait for
            // the previous field's store to the same word.
            let word = if tag < 64 {
                &mut low
            } else {
                &mut seen[tag as usize / 64]
            };
            if *word & bit != 0 {
                return false;
            }
            *word |= bit;
            let Some(info) = dict.tag_info(tag) else {
                return false;
            };
            // Header, then body, then trailer; anything else is left to the
            // ordered path.
            let section = info.class & SECTION;
            let rank = match section {
                HEADER => 0,
                BODY => 1,
                _ => 2,
            };
            if rank < current {
                return false;
            }
            current = rank;
            if section == BODY && check_tags && !body.allowed.contains(tag) {
                return false;
            }
            let Some(value) = raw.get(field.start as usize..field.end as usize) else {
                return false;
            };
            if (check_tags && info.field_type.is_none())
                || self
                    .value_error(tag, info.field_type, info.has_values, value)
                    .is_some()
            {
                return false;
            }
            i += 1;
            if info.class & GROUP_COUNT == 0 {
                continue;
            }
            let layout = match section {
                HEADER => &dict.header,
                BODY => body,
                _ => &dict.trailer,
            };
            if let Some(g) = layout.group(tag) {
                let g = dict.group_at(g);
                let (end, n) = group_extent(dict, g, self.fields, i);
                if self.check_count(i - 1, tag, value, n).is_err()
                    || (section != HEADER && self.group_required(g, i).is_err())
                    || self.group_fields(g, i).is_err()
                {
                    return false;
                }
                i = end;
            }
        }
        seen[0] = low;
        let present = |t: i32| {
            (0..FAST_TAG_LIMIT).contains(&t) && seen[t as usize / 64] & (1 << (t % 64)) != 0
        };
        dict.header.required.iter().all(|&t| present(t))
            && dict.trailer.required.iter().all(|&t| present(t))
            && body.required.iter().all(|&t| present(t))
    }

    fn tag(&self, idx: usize) -> i32 {
        self.fields[idx].tag
    }

    fn value(&self, idx: usize) -> &[u8] {
        self.msg.value(&self.fields[idx])
    }

    /// Every tag of `required` (ascending) must be among `slots`.
    fn check_required(&self, slots: &[Slot], required: &[i32]) -> Result<(), Rejection> {
        for &r in required {
            if !slots.iter().any(|s| self.tag(s.idx as usize) == r) {
                return Err(Rejection::tag(Reason::RequiredTagMissing, r));
            }
        }
        Ok(())
    }

    /// Required members of every entry of `g` (entries' own members first,
    /// then their nested groups).
    fn group_required(&self, g: &GroupDef, start: usize) -> Result<(), Rejection> {
        let mut j = start;
        while j < self.fields.len() && g.member_index(self.tag(j)).is_some() {
            let mut seen = Seen::new();
            let end = entry_end(self.dict, g, self.fields, j, &mut seen);
            for &(tag, m) in g.required.iter() {
                if !seen.has(usize::from(m)) {
                    return Err(Rejection::tag(Reason::RequiredTagMissing, tag));
                }
            }
            let mut k = j;
            while k < end {
                let tag = self.tag(k);
                k += 1;
                if let Some(nested) = self.dict.nested_group(g, tag) {
                    self.group_required(nested, k)?;
                    k = group_extent(self.dict, nested, self.fields, k).0;
                }
            }
            j = end;
        }
        Ok(())
    }

    /// Checks the top-level fields of one section in QuickFIX's order.
    /// `body` is the message layout for the body (None for header/trailer).
    fn check_level(&self, slots: &[Slot], body: Option<&Layout>) -> Result<(), Rejection> {
        let mut prev = None;
        for s in slots {
            let idx = s.idx as usize;
            let tag = self.tag(idx);
            if prev == Some(tag) {
                return Err(Rejection::tag(Reason::TagAppearsMoreThanOnce, tag));
            }
            let def = self.check_value(tag, self.value(idx))?;
            if self.should_check_tag(tag) {
                if def.is_none() {
                    return Err(Rejection::tag(Reason::InvalidTagNumber, tag));
                }
                if body.is_some_and(|b| !b.allowed.contains(tag)) {
                    return Err(Rejection::tag(Reason::TagNotDefinedForMessageType, tag));
                }
            }
            if s.entries != NOT_GROUP {
                self.check_count(idx, tag, self.value(idx), s.entries)?;
            }
            prev = Some(tag);
        }
        Ok(())
    }

    /// Value checks and nested counts of every entry of `g`: each entry's
    /// own fields first, then its nested groups.
    fn group_fields(&self, g: &GroupDef, start: usize) -> Result<(), Rejection> {
        let mut j = start;
        while j < self.fields.len() && g.member_index(self.tag(j)).is_some() {
            let end = entry_end(self.dict, g, self.fields, j, &mut Seen::new());
            let mut k = j;
            while k < end {
                let tag = self.tag(k);
                let value = self.value(k);
                self.check_value(tag, value)?;
                k += 1;
                if let Some(nested) = self.dict.nested_group(g, tag) {
                    let (after, n) = group_extent(self.dict, nested, self.fields, k);
                    self.check_count(k - 1, tag, value, n)?;
                    k = after;
                }
            }
            let mut k = j;
            while k < end {
                let tag = self.tag(k);
                k += 1;
                if let Some(nested) = self.dict.nested_group(g, tag) {
                    self.group_fields(nested, k)?;
                    k = group_extent(self.dict, nested, self.fields, k).0;
                }
            }
            j = end;
        }
        Ok(())
    }

    /// Empty value, data format and enumeration checks; returns the field's
    /// definition if the dictionary has one.
    fn check_value(&self, tag: i32, value: &[u8]) -> Result<Option<&FieldDef>, Rejection> {
        let def = self.dict.field(tag);
        let field_type = def.map(|d| d.field_type);
        match self.value_error(
            tag,
            field_type,
            def.is_some_and(FieldDef::has_values),
            value,
        ) {
            Some(reason) => Err(Rejection::tag(reason, tag)),
            None => Ok(def),
        }
    }

    /// The empty value, data format and enumeration checks of
    /// [`Validator::check_value`] for a field of type `field_type` (`None`:
    /// not defined), given whether it has an enumeration.
    #[inline(always)]
    fn value_error(
        &self,
        tag: i32,
        field_type: Option<FieldType>,
        has_values: bool,
        value: &[u8],
    ) -> Option<Reason> {
        if value.is_empty() {
            return self
                .opts
                .check_fields_have_values
                .then_some(Reason::TagSpecifiedWithoutValue);
        }
        if !format_ok(field_type?, value) {
            return Some(Reason::IncorrectDataFormat);
        }
        if has_values && !self.dict.field(tag).is_some_and(|d| value_ok(d, value)) {
            return Some(Reason::ValueIsIncorrect);
        }
        None
    }

    /// The count field's value must equal the number of entries parsed.
    /// `idx` is the field's index (recorded in the shape being recorded).
    fn check_count(
        &self,
        idx: usize,
        tag: i32,
        value: &[u8],
        entries: u32,
    ) -> Result<(), Rejection> {
        if let Some(known) = self.shape.get(idx) {
            known.set(entries);
        }
        let declared = if value.is_empty() {
            Some(0)
        } else {
            super::message::parse_u64(value)
        };
        if declared != Some(u64::from(entries)) {
            return Err(Rejection::tag(Reason::IncorrectNumInGroupCount, tag));
        }
        Ok(())
    }

    /// QuickFIX's `shouldCheckTag`: whether the tag-number and
    /// defined-for-message checks apply to `tag`.
    fn should_check_tag(&self, tag: i32) -> bool {
        if self.opts.allow_unknown_msg_fields && tag < USER_DEFINED_MIN_TAG {
            false
        } else {
            self.opts.check_user_defined_fields || tag < USER_DEFINED_MIN_TAG
        }
    }
}

/// True when `value` is in the field's enumeration (every space-separated
/// element, for multiple-value types).
#[inline]
fn value_ok(def: &FieldDef, value: &[u8]) -> bool {
    if def.field_type.is_multiple_value() {
        value.split(|&b| b == b' ').all(|v| def.has_value(v))
    } else {
        def.has_value(value)
    }
}

/// True when `v` (non-empty) is well formed for type `t`.
#[inline(always)]
pub fn format_ok(t: FieldType, v: &[u8]) -> bool {
    use FieldType::*;
    match t {
        Int | Length | SeqNum | NumInGroup | TagNum | DayOfMonth => is_int(v),
        Float | Qty | Price | PriceOffset | Amt | Percentage => is_decimal(v),
        Char => v.len() == 1,
        Boolean => v == b"Y" || v == b"N",
        UtcTimestamp => time::is_utc_timestamp(v),
        UtcTimeOnly => time::is_time_of_day(v),
        UtcDateOnly | LocalMktDate => time::is_date(v),
        MonthYear => is_month_year(v),
        TzTimeOnly => is_tz_time(v),
        TzTimestamp => v.len() > 9 && v[8] == b'-' && time::is_date(&v[..8]) && is_tz_time(&v[9..]),
        MultipleCharValue => v.split(|&b| b == b' ').all(|e| e.len() == 1),
        String | MultipleValueString | MultipleStringValue | Country | Currency | Exchange
        | Data | XmlData | Language | Other => true,
    }
}

/// The types [`format_ok`] accepts any value of.
fn any_value_ok(t: FieldType) -> bool {
    use FieldType::*;
    matches!(
        t,
        String
            | MultipleValueString
            | MultipleStringValue
            | Country
            | Currency
            | Exchange
            | Data
            | XmlData
            | Language
            | Other
    )
}

#[inline]
fn all_digits(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(u8::is_ascii_digit)
}

/// `-?[0-9]+`
#[inline]
fn is_int(v: &[u8]) -> bool {
    all_digits(v.strip_prefix(b"-").unwrap_or(v))
}

/// `-?` digits with at most one `.`, at least one digit; no `+`, no exponent.
#[inline]
fn is_decimal(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    let mut digits = 0;
    let mut dots = 0;
    for &b in v {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1
}

/// [`is_int`] of the last `len` bytes of `buf`: one word test when they
/// are up to eight digits (no sign), the byte loop otherwise.
#[inline(always)]
fn int_at_end(buf: &[u8], len: usize) -> bool {
    match time::last_word_padded(buf, len) {
        Some(w) if time::all_digits8(w) => true,
        _ => is_int(&buf[buf.len() - len..]),
    }
}

/// [`is_decimal`] of the last `len` bytes of `buf`: one word test when they
/// are up to eight digits and dots (no sign), the byte loop otherwise.
#[inline(always)]
fn decimal_at_end(buf: &[u8], len: usize) -> bool {
    if let Some(w) = time::last_word_padded(buf, len) {
        // The dots become `0` digits ('.' ^ 0x1E == '0'); then every byte
        // must be a digit, with at most one dot and not only a dot.
        let dots = zero_bytes(w ^ 0x2E2E_2E2E_2E2E_2E2E);
        if dots & dots.wrapping_sub(1) == 0
            && (len > 1 || dots == 0)
            && time::all_digits8(w ^ ((dots >> 7) * 0x1E))
        {
            return true;
        }
    }
    is_decimal(&buf[buf.len() - len..])
}

/// [`time::is_utc_timestamp`] of the last `len` bytes of `buf`.
#[inline(always)]
fn utc_timestamp_at_end(buf: &[u8], len: usize) -> bool {
    time::is_utc_timestamp(&buf[buf.len() - len..])
}

fn two_digits(v: &[u8]) -> Option<u32> {
    match v {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// `YYYYMM`, `YYYYMMDD` or `YYYYMMwN` (week 1 to 5).
fn is_month_year(v: &[u8]) -> bool {
    if v.len() < 6
        || !all_digits(&v[..4])
        || !two_digits(&v[4..6]).is_some_and(|m| (1..=12).contains(&m))
    {
        return false;
    }
    match &v[6..] {
        [] => true,
        [b'w', w] => (b'1'..=b'5').contains(w),
        dd => two_digits(dd).is_some_and(|d| (1..=31).contains(&d)),
    }
}

/// `HH:MM[:SS[.f…]]` followed by nothing, `Z`, or `±hh[:mm]`.
fn is_tz_time(v: &[u8]) -> bool {
    let split = v
        .iter()
        .skip(5)
        .position(|&b| matches!(b, b'Z' | b'+' | b'-'))
        .map_or(v.len(), |p| p + 5);
    let (clock, zone) = v.split_at(split);
    let clock_ok = match clock.len() {
        5 => {
            clock[2] == b':'
                && two_digits(&clock[..2]).is_some_and(|h| h < 24)
                && two_digits(&clock[3..5]).is_some_and(|m| m < 60)
        }
        _ => time::is_time_of_day(clock),
    };
    let zone_ok = match zone {
        [] | [b'Z'] => true,
        [b'+' | b'-', rest @ ..] => match rest.len() {
            2 => two_digits(rest).is_some_and(|h| h <= 14),
            5 => {
                rest[2] == b':'
                    && two_digits(&rest[..2]).is_some_and(|h| h <= 14)
                    && two_digits(&rest[3..]).is_some_and(|m| m < 60)
            }
            _ => false,
        },
        _ => false,
    };
    clock_ok && zone_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const T: &str = "20240102-03:04:05.678";

    fn dict() -> &'static Dictionary {
        static D: OnceLock<Dictionary> = OnceLock::new();
        D.get_or_init(Dictionary::fix44)
    }

    /// Parses `|`-separated fields (BodyLength and CheckSum are not checked).
    fn m(s: &str) -> Message {
        let mut s = s.replace('|', "\x01");
        if !s.ends_with('\x01') {
            s.push('\x01');
        }
        Message::parse(Bytes::from(s)).unwrap()
    }

    /// A message from the acceptance client TW44: standard header, `body`
    /// (each field followed by `|`), trailer.
    fn client(msg_type: &str, body: &str) -> Message {
        m(&format!(
            "8=FIX.4.4|9=0|35={msg_type}|34=2|49=TW44|52={T}|56=ISLD|{body}10=000"
        ))
    }

    fn check(msg: &Message) -> Result<(), Rejection> {
        check_with(msg, ValidationOptions::default())
    }

    /// Validates, and asserts that the fast path agrees with the ordered one.
    fn check_with(msg: &Message, opts: ValidationOptions) -> Result<(), Rejection> {
        let result = validate(dict(), msg, &opts);
        let body = dict().message(msg.msg_type()).map(|m| &m.layout);
        assert_eq!(
            result,
            validate_ordered(dict(), msg, &opts, body),
            "{msg:?}"
        );
        result
    }

    fn rej(reason: Reason, tag: i32) -> Result<(), Rejection> {
        Err(Rejection::tag(reason, tag))
    }

    fn tags(msg: &Message, spans: &[FieldSpan]) -> Vec<String> {
        spans
            .iter()
            .map(|f| format!("{}={}", f.tag, String::from_utf8_lossy(msg.value(f))))
            .collect()
    }

    const ORDER: &str = "11=ID|21=1|40=1|54=1|38=002000.00|55=INTC|60=20240102-03:04:05|";

    // --- the acceptance scenarios -------------------------------------------------

    #[test]
    fn s14a_undefined_tags_are_invalid_tag_numbers() {
        for tag in ["999", "0", "-1", "5000"] {
            let msg = client("0", &format!("{tag}=HI|"));
            assert_eq!(
                check(&msg),
                rej(Reason::InvalidTagNumber, tag.parse().unwrap()),
                "{tag}"
            );
        }
    }

    #[test]
    fn s14b_required_tag_missing_header_then_body() {
        let hb = m(&format!("8=FIX.4.4|9=0|35=0|34=2|49=TW44|52={T}|10=000"));
        assert_eq!(check(&hb), rej(Reason::RequiredTagMissing, 56));
        let order = m(&format!(
            "8=FIX.4.4|9=0|35=D|49=TW44|34=3|56=ISLD|52={T}|40=1|60={T}|54=1|21=3|10=000"
        ));
        assert_eq!(check(&order), rej(Reason::RequiredTagMissing, 11));
    }

    #[test]
    fn s14c_tag_not_defined_for_message_type() {
        assert_eq!(
            check(&client("0", "55=MSFT|")),
            rej(Reason::TagNotDefinedForMessageType, 55)
        );
    }

    #[test]
    fn s14d_tag_without_value() {
        let hb = m(&format!(
            "8=FIX.4.4|9=0|35=0|34=2|49=TW44|52={T}|56=|10=000"
        ));
        assert_eq!(check(&hb), rej(Reason::TagSpecifiedWithoutValue, 56));
    }

    #[test]
    fn s14e_enum_values_and_echo_order() {
        let bad_handl = client("D", &ORDER.replace("21=1", "21=4"));
        assert_eq!(check(&bad_handl), rej(Reason::ValueIsIncorrect, 21));
        let boo = client("D", &format!("{ORDER}167=BOO|"));
        assert_eq!(check(&boo), rej(Reason::ValueIsIncorrect, 167));
        let cs = client(
            "D",
            &format!("11=ID|21=1|40=1|54=1|38=002000.00|55=INTC|60={T}|167=CS|"),
        );
        assert_eq!(check(&cs), Ok(()));
        let body = canonical_body(dict(), &cs);
        assert_eq!(
            tags(&cs, &body),
            [
                "11=ID",
                "21=1",
                "38=002000.00",
                "40=1",
                "54=1",
                "55=INTC",
                &format!("60={T}"),
                "167=CS"
            ]
        );
    }

    #[test]
    fn s14g_header_field_after_body_is_out_of_order() {
        let all_body_first = m(&format!(
            "8=FIX.4.4|9=0|35=D|11=id|21=3|40=1|54=1|55=MSFT|60={T}|34=2|49=TW44|52={T}|56=ISLD|10=000"
        ));
        assert_eq!(
            check(&all_body_first),
            rej(Reason::TagSpecifiedOutOfRequiredOrder, 34)
        );
        let one_body_first = m(&format!(
            "8=FIX.4.4|9=0|35=D|55=MSFT|34=3|49=TW44|52={T}|56=ISLD|11=id|21=3|40=1|54=1|60={T}|10=000"
        ));
        assert_eq!(
            check(&one_body_first),
            rej(Reason::TagSpecifiedOutOfRequiredOrder, 34)
        );
        let off = ValidationOptions {
            check_fields_out_of_order: false,
            ..Default::default()
        };
        assert_eq!(check_with(&all_body_first, off), Ok(()));
    }

    #[test]
    fn body_field_after_trailer_field_is_out_of_order() {
        let msg = client("1", "93=2|89=ab|112=HELLO|");
        assert_eq!(
            check(&msg),
            rej(Reason::TagSpecifiedOutOfRequiredOrder, 112)
        );
        assert_eq!(check(&client("1", "112=HELLO|93=2|89=ab|")), Ok(()));
    }

    #[test]
    fn s14i_group_count_mismatch() {
        let msg = client(
            "D",
            &format!(
                "11=ID|21=1|40=1|54=1|38=200.00|55=INTC|386=3|336=PRE-OPEN|336=AFTER-HOURS|60={T}|"
            ),
        );
        assert_eq!(check(&msg), rej(Reason::IncorrectNumInGroupCount, 386));
        let ok = client(
            "D",
            &format!("11=ID|21=1|40=1|54=1|386=2|336=PRE-OPEN|625=X|336=AFTER-HOURS|60={T}|"),
        );
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn s15_header_and_body_in_any_order_give_the_same_canonical_body() {
        let a = client("D", &format!("11=id|21=3|40=1|54=1|55=MSFT|60={T}|"));
        let b = m(&format!(
            "8=FIX.4.4|9=0|35=D|49=TW44|34=3|56=ISLD|52={T}|40=1|55=MSFT|60={T}|54=1|21=3|11=id|10=000"
        ));
        assert_eq!(check(&a), Ok(()));
        assert_eq!(check(&b), Ok(()));
        let ca = tags(&a, &canonical_body(dict(), &a));
        let cb = tags(&b, &canonical_body(dict(), &b));
        assert_eq!(ca, cb);
        assert_eq!(ca[0], "11=id");
    }

    #[test]
    fn s21_security_definition_with_zero_count() {
        let msg = m(&format!(
            "8=FIX.4.4|9=0|35=d|34=2|49=TW44|56=ISLD|52={T}|320=JCD1091-20021011|322=1034356488676|323=6|55=TBS|22=8|167=CS|336=ONE_MAIN|58=No Products found for this Class Symbol|454=0|10=000"
        ));
        assert_eq!(check(&msg), Ok(()));
        let order: Vec<i32> = canonical_body(dict(), &msg).iter().map(|f| f.tag).collect();
        assert_eq!(order, [22, 55, 58, 167, 320, 322, 323, 336, 454]);
        let missing = client("d", "320=A|322=B|");
        assert_eq!(check(&missing), rej(Reason::RequiredTagMissing, 323));
        let count_zero_with_entry = client("d", "320=A|322=B|323=1|454=0|455=X|456=4|");
        assert_eq!(
            check(&count_zero_with_entry),
            rej(Reason::IncorrectNumInGroupCount, 454)
        );
    }

    #[test]
    fn s2q_invalid_msg_type_has_no_ref_tag() {
        assert_eq!(
            check(&client("*", "")),
            Err(Rejection::message(Reason::InvalidMsgType))
        );
    }

    #[test]
    fn s2r_execution_report_from_the_client_is_valid() {
        let msg = client(
            "8",
            "37=id|17=id|150=0|39=0|55=WLRI|54=1|151=100|14=0|6=0.0|",
        );
        assert_eq!(check(&msg), Ok(()));
        let no_avg = client("8", "37=id|17=id|150=0|39=0|55=WLRI|54=1|151=100|14=0|");
        assert_eq!(check(&no_avg), rej(Reason::RequiredTagMissing, 6));
    }

    #[test]
    fn reject_resent_message_date_only_expire_time() {
        let msg = m(&format!(
            "8=FIX.4.4|9=0|35=D|34=2|43=Y|49=TW44|52={T}|56=ISLD|122={T}|11=ID|21=3|38=100|40=1|54=1|55=IVP|60={T}|126=20040415|10=000"
        ));
        assert_eq!(check(&msg), rej(Reason::IncorrectDataFormat, 126));
    }

    #[test]
    fn reverse_route_orders_with_bad_ord_type() {
        for routing in [
            "115=JCD|",
            "128=JCD|",
            "115=JCD|116=CS|144=CHI|",
            "128=JCD|129=CS|145=CHI|",
        ] {
            let msg = m(&format!(
                "8=FIX.4.4|9=0|35=D|34=2|49=TW44|52={T}|56=ISLD|{routing}11=ID|21=3|38=100|40=w|54=1|55=INTC|60={T}|10=000"
            ));
            assert_eq!(check(&msg), rej(Reason::ValueIsIncorrect, 40), "{routing}");
        }
    }

    #[test]
    fn check_fields_have_values_switch() {
        let tr = client("1", "112=|");
        assert_eq!(check(&tr), rej(Reason::TagSpecifiedWithoutValue, 112));
        let off = ValidationOptions {
            check_fields_have_values: false,
            ..Default::default()
        };
        assert_eq!(check_with(&tr, off), Ok(()));
        // An empty INT is not a format error when empty values are allowed.
        let hb = client("A", "98=|108=30|");
        assert_eq!(check_with(&hb, off), Ok(()));
    }

    #[test]
    fn remembered_shapes_still_check_values_counts_and_options() {
        let order = |body: &str| client("D", &format!("{body}60={T}|"));
        let good = order("11=ID|21=1|40=1|54=1|38=200|55=INTC|386=2|336=A|336=B|");
        // Twice: the second time through the remembered shape.
        assert_eq!(check(&good), Ok(()));
        assert_eq!(check(&good), Ok(()));
        // Same tags, bad values: the full validation decides.
        for (body, reason, tag) in [
            (
                "11=ID|21=1|40=1|54=Z|38=200|55=INTC|386=2|336=A|336=B|",
                Reason::ValueIsIncorrect,
                54,
            ),
            (
                "11=ID|21=1|40=1|54=1|38=2x0|55=INTC|386=2|336=A|336=B|",
                Reason::IncorrectDataFormat,
                38,
            ),
            (
                "11=|21=1|40=1|54=1|38=200|55=INTC|386=2|336=A|336=B|",
                Reason::TagSpecifiedWithoutValue,
                11,
            ),
            (
                "11=ID|21=1|40=1|54=1|38=200|55=INTC|386=3|336=A|336=B|",
                Reason::IncorrectNumInGroupCount,
                386,
            ),
        ] {
            assert_eq!(check(&order(body)), rej(reason, tag), "{body}");
            assert_eq!(check(&good), Ok(()));
        }
        // A shape remembered under one set of options is not used under another.
        let unknown = client("0", "55=MSFT|");
        let lenient = ValidationOptions {
            allow_unknown_msg_fields: true,
            ..Default::default()
        };
        assert_eq!(check_with(&unknown, lenient), Ok(()));
        assert_eq!(check_with(&unknown, lenient), Ok(()));
        assert_eq!(
            check(&unknown),
            rej(Reason::TagNotDefinedForMessageType, 55)
        );
        // Nor under another dictionary (here one where the order's Side is
        // a free string).
        let fix44 = crate::fix::dictionary::FIX44_XML;
        let xml = fix44.replace(
            r#"<field number="54" name="Side" type="CHAR">"#,
            r#"<field number="54" name="Side" type="STRING"><value enum="Z" description="Z"/>"#,
        );
        assert_ne!(xml, fix44, "the dictionary edit applies");
        let other = Dictionary::from_xml(&xml, "edited").unwrap();
        let side_z = order("11=ID|21=1|40=1|54=Z|38=200|55=INTC|386=2|336=A|336=B|");
        let opts = ValidationOptions::default();
        assert_eq!(validate(&other, &side_z, &opts), Ok(()));
        assert_eq!(check(&side_z), rej(Reason::ValueIsIncorrect, 54));
        assert_eq!(validate(&other, &side_z, &opts), Ok(()));
    }

    #[test]
    fn value_kinds_agree_with_the_value_checks() {
        // For every tag whose kind is not `General`, the kind's check of a
        // non-empty value decides what `value_error` decides.
        let d = dict();
        let msg = m("8=FIX.4.4|9=0|35=0|10=000|");
        let opts = ValidationOptions::default();
        let v = Validator {
            dict: d,
            msg: &msg,
            fields: msg.fields(),
            opts: &opts,
            shape: &[],
        };
        let mut values: Vec<Vec<u8>> = [
            "-1",
            "12",
            "007",
            "1.5",
            "-.5",
            ".",
            "1.",
            "1..2",
            "--1",
            "1-",
            "+1",
            "1e3",
            "AB",
            "1 2",
            "Y N",
            T,
            "20240102-03:04:05",
            "20240230-00:00:00",
            "20240102-24:00:00",
            "20240102",
            "20240102-03:04:05.",
            "202401",
            "12:30:00",
            "12:30:00Z",
            "abc",
        ]
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
        values.extend((0..=255u8).map(|b| vec![b]));
        let mut kinds = std::collections::HashSet::new();
        for tag in -1..2000 {
            let Some(info) = d.tag_info(tag) else {
                continue;
            };
            kinds.insert(format!("{:?}", info.kind));
            for value in &values {
                let want = v
                    .value_error(tag, info.field_type, info.has_values, value)
                    .is_none();
                let got = match info.kind {
                    ValueKind::Any => true,
                    ValueKind::General => continue,
                    ValueKind::OneByte => {
                        let set = d.field(tag).and_then(FieldDef::one_byte_values).unwrap();
                        matches!(&value[..], [b] if in_byte_set(set, *b))
                    }
                    kind => {
                        let check = FORMAT_KINDS.iter().find(|&&(k, _)| k == kind).unwrap().1;
                        // In place, after nothing, a few bytes and more
                        // than a word (digits, which must not count).
                        let got: Vec<bool> = [&b""[..], b"1=", b"0123456789\x0144="]
                            .iter()
                            .map(|before| check(&[before, &value[..]].concat(), value.len()))
                            .collect();
                        assert!(got.iter().all(|&g| g == got[0]), "{tag}={value:?}");
                        got[0]
                    }
                };
                assert_eq!(got, want, "{tag}={}", String::from_utf8_lossy(value));
            }
        }
        // Every kind occurs in FIX 4.4.
        assert_eq!(kinds.len(), 7, "{kinds:?}");
    }

    #[test]
    fn in_place_format_checks_agree_with_the_byte_loops() {
        use proptest::prelude::*;
        let byte = prop_oneof![
            8 => prop::sample::select(b"0123456789".to_vec()),
            3 => prop::sample::select(b".-+/:\x01 \x00\x7f\xff".to_vec()),
            1 => any::<u8>(),
        ];
        let bytes = |n| proptest::collection::vec(byte.clone(), n);
        proptest!(ProptestConfig::with_cases(20_000), |(before in bytes(0..12), value in bytes(1..12))| {
            let buf = [&before[..], &value[..]].concat();
            prop_assert_eq!(int_at_end(&buf, value.len()), is_int(&value));
            prop_assert_eq!(decimal_at_end(&buf, value.len()), is_decimal(&value));
        });
    }

    // --- one test per reason ---------------------------------------------------------

    #[test]
    fn tag_appears_more_than_once() {
        let order = client("D", &format!("11=A|{ORDER}"));
        assert_eq!(check(&order), rej(Reason::TagAppearsMoreThanOnce, 11));
        let header = m(&format!(
            "8=FIX.4.4|9=0|35=0|34=2|49=TW44|49=X|52={T}|56=ISLD|10=000"
        ));
        assert_eq!(check(&header), rej(Reason::TagAppearsMoreThanOnce, 49));
        // An error on the first occurrence wins over the repetition.
        let first_bad = client("D", &ORDER.replace("54=1", "54=Z|54=1"));
        assert_eq!(check(&first_bad), rej(Reason::ValueIsIncorrect, 54));
    }

    #[test]
    fn any_value_ok_types_accept_any_value() {
        let names = [
            "INT",
            "LENGTH",
            "SEQNUM",
            "NUMINGROUP",
            "TAGNUM",
            "DAYOFMONTH",
            "FLOAT",
            "QTY",
            "PRICE",
            "PRICEOFFSET",
            "AMT",
            "PERCENTAGE",
            "CHAR",
            "BOOLEAN",
            "STRING",
            "MULTIPLEVALUESTRING",
            "MULTIPLESTRINGVALUE",
            "MULTIPLECHARVALUE",
            "COUNTRY",
            "CURRENCY",
            "EXCHANGE",
            "MONTHYEAR",
            "UTCTIMESTAMP",
            "UTCTIMEONLY",
            "UTCDATEONLY",
            "LOCALMKTDATE",
            "TZTIMEONLY",
            "TZTIMESTAMP",
            "DATA",
            "XMLDATA",
            "LANGUAGE",
            "ODD",
        ];
        let free: Vec<&str> = names
            .into_iter()
            .filter(|n| any_value_ok(FieldType::from_name(n)))
            .collect();
        assert_eq!(free.len(), 10, "{free:?}");
        for name in free {
            for v in [&b"x"[..], b"-", b"\xff\x00 =", b"1.2.3", b"Y N"] {
                assert!(format_ok(FieldType::from_name(name), v), "{name} {v:?}");
            }
        }
    }

    #[test]
    fn incorrect_data_format_per_type() {
        let cases = [
            ("38=+100", 38),
            ("38=1e5", 38),
            ("38=1.2.3", 38),
            ("38=-", 38),
            ("44=12,5", 44),
            ("110=abc", 110),
            ("54=12", 54),
            ("114=y", 114),
            ("60=20040415", 60),
            ("432=20040230", 432),
            ("210=1 ", 210),
        ];
        for (field, tag) in cases {
            let body = if field.starts_with("60=") {
                ORDER.replace("60=20240102-03:04:05", field)
            } else if field.starts_with("54=") {
                ORDER.replace("54=1", field)
            } else {
                format!("{}{field}|", ORDER.replace("38=002000.00|", ""))
            };
            assert_eq!(
                check(&client("D", &body)),
                rej(Reason::IncorrectDataFormat, tag),
                "{field}"
            );
        }
        for ok in [
            "38=-5",
            "38=.5",
            "38=5.",
            "44=0001.2500",
            "432=20240229",
            "126=20240102-03:04:05.123456",
        ] {
            let body = format!("{}{ok}|", ORDER.replace("38=002000.00|", ""));
            assert_eq!(check(&client("D", &body)), Ok(()), "{ok}");
        }
        let hb = m(&format!(
            "8=FIX.4.4|9=0|35=0|34=x|49=TW44|52={T}|56=ISLD|10=000"
        ));
        assert_eq!(check(&hb), rej(Reason::IncorrectDataFormat, 34));
    }

    #[test]
    fn multiple_value_string_checks_each_element() {
        assert_eq!(check(&client("D", &format!("{ORDER}18=1 G|"))), Ok(()));
        assert_eq!(
            check(&client("D", &format!("{ORDER}18=1 ~|"))),
            rej(Reason::ValueIsIncorrect, 18)
        );
        assert_eq!(
            check(&client("D", &format!("{ORDER}18=1  G|"))),
            rej(Reason::ValueIsIncorrect, 18)
        );
    }

    #[test]
    fn first_error_in_ascending_tag_order_wins() {
        // 21 (enum) sorts before 38 (format) whatever the wire order.
        let msg = client("D", &format!("38=+1|{}", ORDER.replace("21=1", "21=9")));
        assert_eq!(check(&msg), rej(Reason::ValueIsIncorrect, 21));
        // Required fields are checked before any value.
        let msg = client("D", "21=9|40=1|54=1|60=x|");
        assert_eq!(check(&msg), rej(Reason::RequiredTagMissing, 11));
        // Header before body.
        let msg = m(&format!(
            "8=FIX.4.4|9=0|35=D|34=2|43=maybe|49=TW44|52={T}|56=ISLD|{}10=000",
            ORDER.replace("21=1", "21=9")
        ));
        assert_eq!(check(&msg), rej(Reason::IncorrectDataFormat, 43));
    }

    #[test]
    fn user_defined_and_unknown_field_switches() {
        let user = client("0", "5000=HI|");
        let unknown = client("0", "999=HI|");
        let foreign = client("0", "55=MSFT|");
        let no_user_check = ValidationOptions {
            check_user_defined_fields: false,
            ..Default::default()
        };
        assert_eq!(check_with(&user, no_user_check), Ok(()));
        assert_eq!(
            check_with(&unknown, no_user_check),
            rej(Reason::InvalidTagNumber, 999)
        );
        let allow_unknown = ValidationOptions {
            allow_unknown_msg_fields: true,
            ..Default::default()
        };
        assert_eq!(check_with(&unknown, allow_unknown), Ok(()));
        assert_eq!(check_with(&foreign, allow_unknown), Ok(()));
        assert_eq!(check_with(&client("0", "0=x|-1=y|"), allow_unknown), Ok(()));
        assert_eq!(
            check_with(&user, allow_unknown),
            rej(Reason::InvalidTagNumber, 5000)
        );
    }

    // --- groups ---------------------------------------------------------------------

    const PARTIES: &str = "453=2|448=A|447=D|452=1|802=1|523=desk|803=1|448=B|447=D|452=3|";

    #[test]
    fn nested_groups_in_components_validate() {
        assert_eq!(check(&client("D", &format!("{ORDER}{PARTIES}"))), Ok(()));
        let nested_count = PARTIES.replace("802=1", "802=2");
        assert_eq!(
            check(&client("D", &format!("{ORDER}{nested_count}"))),
            rej(Reason::IncorrectNumInGroupCount, 802)
        );
        let bad_role = PARTIES.replace("452=3", "452=999");
        assert_eq!(
            check(&client("D", &format!("{ORDER}{bad_role}"))),
            rej(Reason::ValueIsIncorrect, 452)
        );
        let bad_format = PARTIES.replace("803=1", "803=one");
        assert_eq!(
            check(&client("D", &format!("{ORDER}{bad_format}"))),
            rej(Reason::IncorrectDataFormat, 803)
        );
        let empty_member = PARTIES.replace("448=B", "448=");
        assert_eq!(
            check(&client("D", &format!("{ORDER}{empty_member}"))),
            rej(Reason::TagSpecifiedWithoutValue, 448)
        );
    }

    #[test]
    fn group_in_component_at_top_level() {
        // NoSecurityAltID comes with the Instrument component.
        let msg = client(
            "D",
            &format!("{ORDER}454=2|455=US4581401001|456=4|455=INTC.O|456=5|"),
        );
        assert_eq!(check(&msg), Ok(()));
        let member_outside = client("D", &format!("{ORDER}455=X|"));
        assert_eq!(
            check(&member_outside),
            rej(Reason::TagNotDefinedForMessageType, 455)
        );
    }

    #[test]
    fn required_group_members_per_entry() {
        let ok = client("X", "262=r1|268=1|279=0|269=0|270=10.5|271=100|");
        assert_eq!(check(&ok), Ok(()));
        // The second entry starts at the delimiter 279 and lacks nothing; the
        // first starts with a non-delimiter member and lacks 279.
        let missing = client("X", "262=r1|268=2|269=0|270=10.5|279=0|269=1|");
        assert_eq!(check(&missing), rej(Reason::RequiredTagMissing, 279));
        let required_group_absent = client("X", "262=r1|");
        assert_eq!(
            check(&required_group_absent),
            rej(Reason::RequiredTagMissing, 268)
        );
        let md_req = client("V", "262=r1|263=1|264=0|267=2|269=0|269=1|146=1|55=INTC|");
        assert_eq!(check(&md_req), Ok(()));
    }

    #[test]
    fn group_edge_cases() {
        // A member seen again in the entry starts a new entry (QuickFIX).
        let repeated = client("D", &format!("{ORDER}386=2|336=A|625=x|625=y|"));
        assert_eq!(check(&repeated), Ok(()));
        // An entry may start with a non-delimiter member; the delimiter then
        // starts another one.
        let late_delim = client("D", &format!("{ORDER}386=1|625=x|336=A|"));
        assert_eq!(
            check(&late_delim),
            rej(Reason::IncorrectNumInGroupCount, 386)
        );
        // A member after a non-member is outside the group.
        let after = client(
            "D",
            &format!("11=ID|21=1|40=1|54=1|386=1|336=A|60={T}|336=B|"),
        );
        assert_eq!(check(&after), rej(Reason::TagNotDefinedForMessageType, 336));
        // A count with no entries and a huge or negative count.
        assert_eq!(check(&client("D", &format!("{ORDER}386=0|"))), Ok(()));
        assert_eq!(
            check(&client(
                "D",
                &format!("{ORDER}386=99999999999999999999999|336=A|")
            )),
            rej(Reason::IncorrectNumInGroupCount, 386)
        );
        assert_eq!(
            check(&client("D", &format!("{ORDER}386=-1|"))),
            rej(Reason::IncorrectNumInGroupCount, 386)
        );
        // Header group NoHops.
        let hops = m(&format!(
            "8=FIX.4.4|9=0|35=0|34=2|49=TW44|52={T}|56=ISLD|627=2|628=A|629={T}|628=B|10=000"
        ));
        assert_eq!(check(&hops), Ok(()));
        let hops_bad = m(&format!(
            "8=FIX.4.4|9=0|35=0|34=2|49=TW44|52={T}|56=ISLD|627=3|628=A|10=000"
        ));
        assert_eq!(check(&hops_bad), rej(Reason::IncorrectNumInGroupCount, 627));
    }

    #[test]
    fn canonical_body_keeps_groups_together() {
        let msg = m(&format!(
            "8=FIX.4.4|9=0|35=D|34=2|49=TW44|60={T}|52={T}|56=ISLD|11=ID|{PARTIES}54=1|386=1|336=A|40=2|44=10|21=1|1=ACC|10=000"
        ));
        let out = tags(&msg, &canonical_body(dict(), &msg));
        let expected = [
            "1=ACC",
            "11=ID",
            "21=1",
            "40=2",
            "44=10",
            "54=1",
            &format!("60={T}"),
            "386=1",
            "336=A",
            "453=2",
            "448=A",
            "447=D",
            "452=1",
            "802=1",
            "523=desk",
            "803=1",
            "448=B",
            "447=D",
            "452=3",
        ];
        assert_eq!(out, expected);
        // Unknown message types: no groups, plain ascending order; header,
        // trailer and misplaced header fields are left out.
        let odd = m("8=FIX.4.4|9=0|35=ZZ|5=b|34=1|3=a|5=a|93=1|89=x|10=000");
        assert_eq!(
            tags(&odd, &canonical_body(dict(), &odd)),
            ["3=a", "5=b", "5=a"]
        );
    }

    #[test]
    fn big_messages_use_the_heap_path() {
        let mut body = String::from("11=ID|21=1|40=1|54=1|");
        body.push_str("386=100|");
        for i in 0..100 {
            body.push_str(&format!("336=S{i}|"));
        }
        body.push_str(&format!("60={T}|"));
        assert_eq!(check(&client("D", &body)), Ok(()));
        let mut many = String::from("11=ID|21=1|40=1|54=1|");
        for _ in 0..80 {
            many.push_str("58=x|");
        }
        many.push_str(&format!("60={T}|"));
        assert_eq!(
            check(&client("D", &many)),
            rej(Reason::TagAppearsMoreThanOnce, 58)
        );
    }

    #[test]
    fn format_helpers() {
        assert!(
            is_month_year(b"202401") && is_month_year(b"20240131") && is_month_year(b"202401w3")
        );
        assert!(
            !is_month_year(b"202413") && !is_month_year(b"202401w9") && !is_month_year(b"2024011")
        );
        assert!(
            is_tz_time(b"07:39Z") && is_tz_time(b"02:39-05") && is_tz_time(b"15:39:01.123+05:30")
        );
        assert!(!is_tz_time(b"25:00Z") && !is_tz_time(b"07:39+5") && !is_tz_time(b"07:39X"));
        assert!(format_ok(FieldType::TzTimestamp, b"20060901-07:39Z"));
        assert!(!format_ok(FieldType::TzTimestamp, b"20060901 07:39Z"));
        assert!(
            format_ok(FieldType::MultipleCharValue, b"A B C")
                && !format_ok(FieldType::MultipleCharValue, b"AB C")
        );
        assert!(
            format_ok(FieldType::UtcTimeOnly, b"23:59:60.5")
                && !format_ok(FieldType::UtcTimeOnly, b"24:00:00")
        );
        assert!(
            format_ok(FieldType::Int, b"-007")
                && !format_ok(FieldType::Int, b"+7")
                && !format_ok(FieldType::Int, b"7.0")
        );
    }

    // --- QuickFIX's own dictionary --------------------------------------------------

    /// Finds QuickFIX's FIX44.xml: `QUICKFIX_FIX44_XML`, the data directory
    /// of Python's `quickfix` package (`<prefix>/share/quickfix`), or Debian's.
    fn quickfix_fix44() -> Option<std::path::PathBuf> {
        if let Some(p) = std::env::var_os("QUICKFIX_FIX44_XML") {
            return Some(p.into());
        }
        let mut candidates = Vec::new();
        let script = "import sys, site, sysconfig\nprint(sys.prefix)\nprint(sysconfig.get_path('data'))\nprint(site.USER_BASE)";
        if let Ok(out) = std::process::Command::new("python3")
            .args(["-c", script])
            .output()
        {
            for prefix in String::from_utf8_lossy(&out.stdout).lines() {
                candidates
                    .push(std::path::Path::new(prefix.trim()).join("share/quickfix/FIX44.xml"));
            }
        }
        candidates.push("/usr/share/quickfix/FIX44.xml".into());
        candidates.push("/usr/local/share/quickfix/FIX44.xml".into());
        candidates.into_iter().find(|p| p.is_file())
    }

    #[test]
    fn quickfix_fix44_loads_and_agrees_on_the_scenarios() {
        let path = quickfix_fix44().unwrap_or_else(|| {
            panic!(
                "QuickFIX's FIX44.xml not found: run `bash .ci/install-quickfix` \
                 (or set QUICKFIX_FIX44_XML to its path)"
            )
        });
        let qf = Dictionary::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(qf.begin_string(), "FIX.4.4");
        assert!(qf.messages().len() > 80, "{} messages", qf.messages().len());
        let opts = ValidationOptions::default();
        let cases: Vec<(Message, Result<(), Rejection>)> = vec![
            (client("0", "999=HI|"), rej(Reason::InvalidTagNumber, 999)),
            (
                client("0", "55=MSFT|"),
                rej(Reason::TagNotDefinedForMessageType, 55),
            ),
            (
                client("D", &ORDER.replace("21=1", "21=4")),
                rej(Reason::ValueIsIncorrect, 21),
            ),
            (
                client("D", &format!("{ORDER}167=BOO|")),
                rej(Reason::ValueIsIncorrect, 167),
            ),
            (client("D", &format!("{ORDER}167=CS|")), Ok(())),
            (client("D", &format!("{ORDER}{PARTIES}")), Ok(())),
            (
                client("D", &format!("{ORDER}386=3|336=A|336=B|")),
                rej(Reason::IncorrectNumInGroupCount, 386),
            ),
            (
                client("D", &ORDER.replace("40=1", "40=w")),
                rej(Reason::ValueIsIncorrect, 40),
            ),
            (
                client("D", &format!("{ORDER}126=20040415|")),
                rej(Reason::IncorrectDataFormat, 126),
            ),
            (
                client("D", &ORDER.replace("38=002000.00", "38=+2000")),
                rej(Reason::IncorrectDataFormat, 38),
            ),
            (
                client("D", "21=1|40=1|54=1|60=20240102-03:04:05|"),
                rej(Reason::RequiredTagMissing, 11),
            ),
            (
                client(
                    "8",
                    "37=id|17=id|150=0|39=0|55=WLRI|54=1|151=100|14=0|6=0.0|",
                ),
                Ok(()),
            ),
            (
                client(
                    "d",
                    "320=A|322=B|323=6|55=TBS|22=8|167=CS|336=ONE_MAIN|58=x|454=0|",
                ),
                Ok(()),
            ),
            (
                client("*", ""),
                Err(Rejection::message(Reason::InvalidMsgType)),
            ),
        ];
        for (msg, expected) in &cases {
            assert_eq!(
                validate(&qf, msg, &opts),
                *expected,
                "QuickFIX dictionary: {msg:?}"
            );
            assert_eq!(
                validate(dict(), msg, &opts),
                *expected,
                "our dictionary: {msg:?}"
            );
        }
        // Our dictionary agrees with QuickFIX's on what each of our messages
        // requires and allows at the top level.
        for ours in dict().messages() {
            let theirs = qf
                .message(&ours.msg_type)
                .expect("QuickFIX defines our message types");
            assert_eq!(
                ours.required_tags(),
                theirs.required_tags(),
                "required tags of {}",
                ours.name
            );
            assert_eq!(
                dict().is_admin_msg_type(&ours.msg_type),
                qf.is_admin_msg_type(&ours.msg_type)
            );
        }
    }

    // --- robustness -------------------------------------------------------------------

    /// The fields of a valid order with a repeating group, in wire order.
    const TEMPLATE: [(i32, &str); 16] = [
        (34, "2"),
        (49, "TW44"),
        (52, T),
        (56, "ISLD"),
        (1, "ACCT"),
        (11, "ID"),
        (21, "1"),
        (38, "200"),
        (40, "2"),
        (44, "10.5"),
        (54, "1"),
        (55, "INTC"),
        (386, "2"),
        (336, "A"),
        (336, "B"),
        (60, T),
    ];

    proptest! {
        /// Messages with the tags of a remembered shape and arbitrary
        /// values get exactly the result of the full validation.
        #[test]
        fn remembered_shape_with_other_values_agrees_with_the_ordered_path(
            values in proptest::collection::vec(
                proptest::option::weighted(0.3, "[0-9A-Z.:-]{0,3}"),
                TEMPLATE.len(),
            ),
            lenient in any::<bool>(),
        ) {
            let opts = ValidationOptions {
                check_fields_have_values: !lenient,
                ..Default::default()
            };
            let build = |values: &[Option<String>]| {
                let mut s = String::from("8=FIX.4.4|9=0|35=D|");
                for ((tag, value), new) in TEMPLATE.iter().zip(values) {
                    s.push_str(&format!("{tag}={}|", new.as_deref().unwrap_or(value)));
                }
                m(&format!("{s}10=000|"))
            };
            let template = build(&vec![None; TEMPLATE.len()]);
            prop_assert_eq!(validate(dict(), &template, &opts), Ok(()));
            let msg = build(&values);
            let body = dict().message(msg.msg_type()).map(|m| &m.layout);
            let full = validate_ordered(dict(), &msg, &opts, body);
            // Right after the template (its shape remembered), then again
            // (this message's own shape remembered if it is valid).
            prop_assert_eq!(validate(dict(), &msg, &opts), full);
            prop_assert_eq!(validate(dict(), &msg, &opts), full);
        }
        #[test]
        fn never_panics_and_canonical_body_is_a_permutation(
            body in proptest::collection::vec((prop_oneof![
                Just(11), Just(21), Just(38), Just(40), Just(54), Just(55), Just(60), Just(34), Just(49),
                Just(386), Just(336), Just(625), Just(453), Just(448), Just(802), Just(523), Just(454),
                Just(455), Just(93), Just(89), Just(627), Just(628), Just(0), Just(-5), Just(5000), Just(999),
            ], "[0-9A-Z.+-]{0,3}"), 0..40),
            msg_type in prop_oneof![Just("D"), Just("0"), Just("X"), Just("ZZ")],
        ) {
            let mut s = format!("8=FIX.4.4|9=0|35={msg_type}|");
            for (tag, value) in &body {
                s.push_str(&format!("{tag}={value}|"));
            }
            s.push_str("10=000|");
            let msg = m(&s);
            for opts in [ValidationOptions::default(), ValidationOptions {
                check_fields_out_of_order: false,
                check_fields_have_values: false,
                check_user_defined_fields: false,
                allow_unknown_msg_fields: true,
            }] {
                // The fast path and the ordered path agree.
                let body = dict().message(msg.msg_type()).map(|m| &m.layout);
                prop_assert_eq!(
                    validate(dict(), &msg, &opts),
                    validate_ordered(dict(), &msg, &opts, body)
                );
            }
            let canon = canonical_body(dict(), &msg);
            let mut expected: Vec<_> = msg.fields().iter()
                .filter(|f| !dict().is_header_field(f.tag) && !dict().is_trailer_field(f.tag))
                .map(|f| f.start).collect();
            let mut got: Vec<_> = canon.iter().map(|f| f.start).collect();
            expected.sort_unstable();
            got.sort_unstable();
            // Header-group members (628) sit inside the header's group.
            let hop_members = msg.fields().iter().filter(|f| f.tag == 628).count();
            prop_assert!(got.len() + hop_members >= expected.len());
        }
    }
}

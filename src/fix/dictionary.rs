//! Data dictionary in QuickFIX's XML format: fields (number, name, type,
//! enumerated values), components, repeating groups (nested, and inside
//! components), messages with their required flags, header and trailer.
//!
//! This file owns loading and the lookup tables the validator uses on the hot
//! path (dense tag tables, message types mapped to small indices, per-message
//! and per-group tag sets). It never validates messages itself
//! (see `validate.rs`) and never allocates after loading.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::validate::{value_kind, ValueKind};

/// Tags below this bound live in dense tables (bitsets, index vectors); tags
/// at or above it (rare: private ranges of user dictionaries) in sorted or
/// hashed side tables.
pub const DENSE_TAG_LIMIT: i32 = 16_384;

/// Largest number of member fields (at one level) a repeating group may
/// have; the validator tracks the members seen in an entry in a fixed bitset.
pub const MAX_GROUP_MEMBERS: usize = 512;

/// What the validator needs to know about a tag before looking at its
/// definition, in one load (see [`Dictionary::tag_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagInfo {
    /// Section (`HEADER`, `TRAILER` or `BODY`) and the `GROUP_COUNT` flag.
    pub(crate) class: u8,
    /// The field's type; `None` when the dictionary does not define it.
    pub(crate) field_type: Option<FieldType>,
    /// The field has an enumeration.
    pub(crate) has_values: bool,
    /// What the value checks come down to (see [`value_kind`]).
    pub(crate) kind: ValueKind,
}

/// Section of a tag in [`Dictionary::tag_class`]: the standard header.
pub(crate) const HEADER: u8 = 0;
/// Section of a tag in [`Dictionary::tag_class`]: the standard trailer.
pub(crate) const TRAILER: u8 = 1;
/// Section of a tag in [`Dictionary::tag_class`]: a message body.
pub(crate) const BODY: u8 = 2;
/// The section bits of a [`Dictionary::tag_class`].
pub(crate) const SECTION: u8 = 3;
/// Flag of a [`Dictionary::tag_class`]: the tag may be the count field of a
/// repeating group (look it up in the layout); clear means it never is.
pub(crate) const GROUP_COUNT: u8 = 4;

/// Deepest nesting of components and groups the loader follows; deeper
/// nesting is reported as an error (it is almost certainly a cycle).
const MAX_NESTING: usize = 32;

/// Our own FIX 4.4 dictionary, compiled into the binary.
pub const FIX44_XML: &str = include_str!("../../dictionaries/FIX44.xml");

/// Why a dictionary could not be loaded. Every variant names the origin
/// (file path, or a label for in-memory XML).
#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    /// The file could not be read.
    #[error("{origin}: cannot read dictionary: {source}")]
    Io {
        /// Path of the file.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not well-formed XML.
    #[error("{origin}: not a well-formed XML document: {source}")]
    Xml {
        /// Path of the file.
        origin: String,
        /// The XML parser's error (it carries the position).
        source: roxmltree::Error,
    },
    /// The XML is well formed but not a valid QuickFIX dictionary.
    #[error("{origin}:{line}: {message}")]
    Invalid {
        /// Path of the file.
        origin: String,
        /// 1-based line of the offending element.
        line: u32,
        /// What is wrong.
        message: String,
    },
}

/// The type of a field, as named in the dictionary's `type` attribute. It
/// decides the format check applied to values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `INT` (also `LONG`).
    Int,
    /// `LENGTH`.
    Length,
    /// `SEQNUM`.
    SeqNum,
    /// `NUMINGROUP`.
    NumInGroup,
    /// `TAGNUM`.
    TagNum,
    /// `DAYOFMONTH`.
    DayOfMonth,
    /// `FLOAT`.
    Float,
    /// `QTY`.
    Qty,
    /// `PRICE`.
    Price,
    /// `PRICEOFFSET`.
    PriceOffset,
    /// `AMT`.
    Amt,
    /// `PERCENTAGE`.
    Percentage,
    /// `CHAR`.
    Char,
    /// `BOOLEAN`.
    Boolean,
    /// `STRING`.
    String,
    /// `MULTIPLEVALUESTRING`.
    MultipleValueString,
    /// `MULTIPLESTRINGVALUE`.
    MultipleStringValue,
    /// `MULTIPLECHARVALUE`.
    MultipleCharValue,
    /// `COUNTRY`.
    Country,
    /// `CURRENCY`.
    Currency,
    /// `EXCHANGE`.
    Exchange,
    /// `MONTHYEAR`.
    MonthYear,
    /// `UTCTIMESTAMP` (also FIX 4.0's `TIME`).
    UtcTimestamp,
    /// `UTCTIMEONLY`.
    UtcTimeOnly,
    /// `UTCDATEONLY` (also `UTCDATE`).
    UtcDateOnly,
    /// `LOCALMKTDATE`.
    LocalMktDate,
    /// `TZTIMEONLY`.
    TzTimeOnly,
    /// `TZTIMESTAMP`.
    TzTimestamp,
    /// `DATA`.
    Data,
    /// `XMLDATA`.
    XmlData,
    /// `LANGUAGE`.
    Language,
    /// Any other type name: accepted (as QuickFIX does), values not checked.
    Other,
}

impl FieldType {
    /// Maps a dictionary type name (case-insensitive) to a type.
    pub fn from_name(name: &str) -> FieldType {
        use FieldType::*;
        match name.to_ascii_uppercase().as_str() {
            "INT" | "LONG" => Int,
            "LENGTH" => Length,
            "SEQNUM" => SeqNum,
            "NUMINGROUP" => NumInGroup,
            "TAGNUM" => TagNum,
            "DAYOFMONTH" => DayOfMonth,
            "FLOAT" => Float,
            "QTY" | "QUANTITY" => Qty,
            "PRICE" => Price,
            "PRICEOFFSET" => PriceOffset,
            "AMT" => Amt,
            "PERCENTAGE" => Percentage,
            "CHAR" => Char,
            "BOOLEAN" => Boolean,
            "STRING" => String,
            "MULTIPLEVALUESTRING" => MultipleValueString,
            "MULTIPLESTRINGVALUE" => MultipleStringValue,
            "MULTIPLECHARVALUE" => MultipleCharValue,
            "COUNTRY" => Country,
            "CURRENCY" => Currency,
            "EXCHANGE" => Exchange,
            "MONTHYEAR" => MonthYear,
            "UTCTIMESTAMP" | "TIME" => UtcTimestamp,
            "UTCTIMEONLY" => UtcTimeOnly,
            "UTCDATEONLY" | "UTCDATE" => UtcDateOnly,
            "LOCALMKTDATE" => LocalMktDate,
            "TZTIMEONLY" => TzTimeOnly,
            "TZTIMESTAMP" => TzTimestamp,
            "DATA" => Data,
            "XMLDATA" => XmlData,
            "LANGUAGE" => Language,
            _ => Other,
        }
    }

    /// True for types whose enumerated values may be combined, separated by
    /// spaces, in one field value.
    pub fn is_multiple_value(self) -> bool {
        matches!(
            self,
            FieldType::MultipleValueString
                | FieldType::MultipleStringValue
                | FieldType::MultipleCharValue
        )
    }
}

/// One field of the `<fields>` section.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Tag number.
    pub tag: i32,
    /// Name, as referenced by messages and components.
    pub name: Box<str>,
    /// Declared type.
    pub field_type: FieldType,
    /// Enumerated values, sorted (empty when the field has no enumeration).
    values: Box<[Box<[u8]>]>,
    /// The same values packed into integers (see [`pack_value`]), sorted,
    /// when every value is short enough; the common case, searched without
    /// byte comparisons.
    packed: Option<Box<[u64]>>,
    /// When every value is one byte (Side, OrdType, TimeInForce …): the
    /// values as a 256-bit set, tested with one load.
    bytes: Option<[u64; 4]>,
}

/// True when byte `b` is in the 256-bit `set` (bit `b % 64` of word `b / 64`).
#[inline(always)]
pub(crate) fn in_byte_set(set: &[u64; 4], b: u8) -> bool {
    set[usize::from(b >> 6)] & (1 << (b & 63)) != 0
}

/// Packs a value of at most 7 bytes into a `u64` (bytes, then the length in
/// the low byte) so that equal packs mean equal values.
#[inline]
fn pack_value(v: &[u8]) -> Option<u64> {
    if v.len() > 7 {
        return None;
    }
    let mut k = 0u64;
    for &b in v {
        k = (k << 8) | u64::from(b);
    }
    Some((k << 8) | v.len() as u64)
}

impl FieldDef {
    /// True when the field has an enumeration.
    #[inline]
    pub fn has_values(&self) -> bool {
        !self.values.is_empty()
    }

    /// True when `v` is one of the enumerated values (a single value; the
    /// validator splits multiple-value fields itself).
    #[inline(always)]
    pub fn has_value(&self, v: &[u8]) -> bool {
        match &self.bytes {
            Some(bytes) => matches!(v, [b] if in_byte_set(bytes, *b)),
            None => self.has_long_value(v),
        }
    }

    /// When every enumerated value is one byte: the values as a 256-bit set
    /// (bit `b % 64` of word `b / 64`).
    #[inline]
    pub(crate) fn one_byte_values(&self) -> Option<&[u64; 4]> {
        self.bytes.as_ref()
    }

    /// [`FieldDef::has_value`] for enumerations with longer values.
    fn has_long_value(&self, v: &[u8]) -> bool {
        match &self.packed {
            Some(packed) => pack_value(v).is_some_and(|k| packed.binary_search(&k).is_ok()),
            None => self.values.binary_search_by(|e| (**e).cmp(v)).is_ok(),
        }
    }

    /// The enumerated values, sorted bytewise.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.values.iter().map(|v| &**v)
    }
}

/// A set of tags: a bitset for tags below [`DENSE_TAG_LIMIT`], a sorted list
/// for the others.
#[derive(Debug, Clone, Default)]
pub(crate) struct TagSet {
    bits: Box<[u64]>,
    sparse: Box<[i32]>,
}

impl TagSet {
    fn from_tags(tags: impl IntoIterator<Item = i32>) -> TagSet {
        let mut dense = Vec::new();
        let mut sparse = Vec::new();
        for t in tags {
            if (0..DENSE_TAG_LIMIT).contains(&t) {
                dense.push(t as usize);
            } else {
                sparse.push(t);
            }
        }
        let words = dense.iter().max().map_or(0, |&m| m / 64 + 1);
        let mut bits = vec![0u64; words];
        for t in dense {
            bits[t / 64] |= 1 << (t % 64);
        }
        sparse.sort_unstable();
        sparse.dedup();
        TagSet {
            bits: bits.into(),
            sparse: sparse.into(),
        }
    }

    /// True when `tag` is in the set.
    #[inline]
    pub(crate) fn contains(&self, tag: i32) -> bool {
        if (0..DENSE_TAG_LIMIT).contains(&tag) {
            let t = tag as usize;
            self.bits
                .get(t / 64)
                .is_some_and(|w| w & (1 << (t % 64)) != 0)
        } else {
            self.sparse.binary_search(&tag).is_ok()
        }
    }
}

/// The fields allowed at one level of a message (header, trailer, a message
/// body) with the required ones and the repeating groups starting there.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// Tags allowed at this level (fields of components included, group
    /// count fields included, group members excluded).
    pub(crate) allowed: TagSet,
    /// Required tags at this level, ascending.
    pub(crate) required: Box<[i32]>,
    /// Repeating groups at this level: (count tag, index into
    /// `Dictionary::groups`), sorted by count tag.
    pub(crate) groups: Box<[(i32, u32)]>,
}

impl Layout {
    /// The group whose count field is `tag`, if any.
    #[inline]
    pub(crate) fn group(&self, tag: i32) -> Option<u32> {
        if self.groups.is_empty() {
            return None;
        }
        self.groups
            .binary_search_by_key(&tag, |g| g.0)
            .ok()
            .map(|i| self.groups[i].1)
    }
}

/// A repeating group definition.
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// The NumInGroup field that introduces the group.
    pub count_tag: i32,
    /// The first field of the definition: it starts every entry.
    pub delimiter: i32,
    /// Members at the entry's own level, in definition order (fields of
    /// components flattened, nested count fields included).
    pub order: Box<[i32]>,
    /// (tag, position in `order`), sorted by tag.
    pub(crate) members: Box<[(i32, u16)]>,
    /// Required members: (tag, position in `order`), ascending by tag.
    pub(crate) required: Box<[(i32, u16)]>,
    /// Nested groups: (count tag, group index), sorted by count tag.
    pub(crate) groups: Box<[(i32, u32)]>,
}

impl GroupDef {
    /// Position of `tag` among the members, if it is one.
    #[inline]
    pub fn member_index(&self, tag: i32) -> Option<usize> {
        self.members
            .binary_search_by_key(&tag, |m| m.0)
            .ok()
            .map(|i| usize::from(self.members[i].1))
    }

    /// The nested group whose count field is `tag`, if any.
    #[inline]
    pub(crate) fn group(&self, tag: i32) -> Option<u32> {
        if self.groups.is_empty() {
            return None;
        }
        self.groups
            .binary_search_by_key(&tag, |g| g.0)
            .ok()
            .map(|i| self.groups[i].1)
    }

    /// Required member tags, ascending.
    pub fn required_tags(&self) -> impl Iterator<Item = i32> + '_ {
        self.required.iter().map(|r| r.0)
    }
}

/// One message of the `<messages>` section.
#[derive(Debug, Clone)]
pub struct MessageDef {
    /// Name (e.g. `NewOrderSingle`).
    pub name: Box<str>,
    /// MsgType (35) value.
    pub msg_type: Box<[u8]>,
    /// `msgcat="admin"` (session-level message).
    pub admin: bool,
    pub(crate) layout: Layout,
}

impl MessageDef {
    /// Required body tags (top level, components expanded), ascending.
    pub fn required_tags(&self) -> &[i32] {
        &self.layout.required
    }

    /// True when `tag` may appear at the top level of this message's body.
    pub fn allows(&self, tag: i32) -> bool {
        self.layout.allowed.contains(tag)
    }
}

const NO_MSG: u16 = u16::MAX;

/// A loaded data dictionary with lookup tables for validation.
#[derive(Debug, Clone)]
pub struct Dictionary {
    begin_string: String,
    field_defs: Vec<FieldDef>,
    /// tag -> index + 1 into `field_defs` (0: unknown), for 0 <= tag < len.
    dense_fields: Box<[u32]>,
    sparse_fields: HashMap<i32, u32>,
    by_name: HashMap<Box<str>, i32>,
    pub(crate) header: Layout,
    pub(crate) trailer: Layout,
    messages: Vec<MessageDef>,
    /// Single-byte MsgTypes -> message index.
    single_msg: [u16; 256],
    /// Longer MsgTypes, sorted, -> message index.
    multi_msg: Box<[(Box<[u8]>, u16)]>,
    groups: Vec<GroupDef>,
    has_msgcat: bool,
    /// tag -> [`TagInfo`] for the tags of the dense range the dictionary uses.
    tag_infos: Box<[TagInfo]>,
    /// Names this dictionary's content among those loaded by the process (a
    /// clone keeps it: a dictionary is never modified after loading).
    id: u64,
}

/// Source of [`Dictionary::id`].
static NEXT_DICTIONARY_ID: AtomicU64 = AtomicU64::new(0);

impl Dictionary {
    /// Loads a QuickFIX-format dictionary file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Dictionary, DictionaryError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DictionaryError::Io {
            origin: origin.clone(),
            source,
        })?;
        Dictionary::from_xml(&text, &origin)
    }

    /// Loads a dictionary from XML text; `origin` names it in errors.
    pub fn from_xml(xml: &str, origin: &str) -> Result<Dictionary, DictionaryError> {
        let doc = roxmltree::Document::parse(xml).map_err(|source| DictionaryError::Xml {
            origin: origin.to_string(),
            source,
        })?;
        Loader {
            doc: &doc,
            origin,
            groups: Vec::new(),
            names: HashMap::new(),
            components: HashMap::new(),
        }
        .load()
    }

    /// Our own FIX 4.4 dictionary (`dictionaries/FIX44.xml`, compiled in).
    pub fn fix44() -> Dictionary {
        // The embedded file is tested to load; failing here is a build defect.
        Dictionary::from_xml(FIX44_XML, "dictionaries/FIX44.xml")
            .expect("the embedded FIX44.xml is valid")
    }

    /// Identifies the content of this dictionary: two dictionaries with the
    /// same id (one is a clone of the other) validate alike. The validator
    /// keys the message shapes it remembers on it.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// BeginString this dictionary describes (e.g. `FIX.4.4`).
    pub fn begin_string(&self) -> &str {
        &self.begin_string
    }

    /// The definition of `tag`, if the dictionary defines it.
    #[inline]
    pub fn field(&self, tag: i32) -> Option<&FieldDef> {
        let idx = if tag >= 0 && (tag as usize) < self.dense_fields.len() {
            self.dense_fields[tag as usize]
        } else if tag >= DENSE_TAG_LIMIT {
            *self.sparse_fields.get(&tag)?
        } else {
            0
        };
        if idx == 0 {
            None
        } else {
            Some(&self.field_defs[idx as usize - 1])
        }
    }

    /// True when the dictionary defines `tag`.
    #[inline]
    pub fn has_field(&self, tag: i32) -> bool {
        self.field(tag).is_some()
    }

    /// The name of `tag` (e.g. `ClOrdID` for 11).
    pub fn field_name(&self, tag: i32) -> Option<&str> {
        self.field(tag).map(|f| &*f.name)
    }

    /// The tag of the field called `name`.
    pub fn field_tag(&self, name: &str) -> Option<i32> {
        self.by_name.get(name).copied()
    }

    /// True when `tag` belongs to the standard header. 8, 9 and 35 always do.
    #[inline]
    pub fn is_header_field(&self, tag: i32) -> bool {
        matches!(tag, 8 | 9 | 35) || self.header.allowed.contains(tag)
    }

    /// True when `tag` belongs to the standard trailer. 10 always does.
    #[inline]
    pub fn is_trailer_field(&self, tag: i32) -> bool {
        tag == 10 || self.trailer.allowed.contains(tag)
    }

    /// The section `tag` belongs to (`HEADER`, `TRAILER` or `BODY`, as
    /// [`Dictionary::is_header_field`] then [`Dictionary::is_trailer_field`]
    /// decide), with the `GROUP_COUNT` flag: one load for dense tags.
    #[inline]
    pub(crate) fn tag_class(&self, tag: i32) -> u8 {
        match self.tag_info(tag) {
            Some(info) => info.class,
            // Whether a sparse tag counts a group is left to the layout.
            None => self.section_of(tag) | GROUP_COUNT,
        }
    }

    /// Section, flags, type and enumeration flag of a dense tag; `None` for
    /// negative tags and tags above the dense range.
    #[inline]
    pub(crate) fn tag_info(&self, tag: i32) -> Option<TagInfo> {
        // Negative tags wrap far beyond any table.
        self.tag_infos.get(tag as u32 as usize).copied()
    }

    fn section_of(&self, tag: i32) -> u8 {
        if self.is_header_field(tag) {
            HEADER
        } else if self.is_trailer_field(tag) {
            TRAILER
        } else {
            BODY
        }
    }

    /// Fills `tag_infos` once the fields, layouts and groups are known.
    fn with_tag_infos(mut self) -> Dictionary {
        let len = self.dense_fields.len().max(36);
        let mut infos: Vec<TagInfo> = (0..len as i32)
            .map(|t| TagInfo {
                class: self.section_of(t),
                field_type: self.field(t).map(|d| d.field_type),
                has_values: self.field(t).is_some_and(FieldDef::has_values),
                kind: value_kind(self.field(t)),
            })
            .collect();
        let counts = [&self.header, &self.trailer]
            .into_iter()
            .chain(self.messages.iter().map(|m| &m.layout))
            .flat_map(|l| l.groups.iter())
            .chain(self.groups.iter().flat_map(|g| g.groups.iter()));
        for &(tag, _) in counts {
            if let Some(info) = usize::try_from(tag).ok().and_then(|t| infos.get_mut(t)) {
                info.class |= GROUP_COUNT;
            }
        }
        self.tag_infos = infos.into();
        self
    }

    /// Required header tags, ascending.
    pub fn header_required(&self) -> &[i32] {
        &self.header.required
    }

    /// Index of the message with this MsgType, if defined.
    #[inline]
    pub fn msg_index(&self, msg_type: &[u8]) -> Option<usize> {
        let i = match msg_type {
            [b] => self.single_msg[usize::from(*b)],
            _ => match self
                .multi_msg
                .binary_search_by(|(k, _)| (**k).cmp(msg_type))
            {
                Ok(i) => self.multi_msg[i].1,
                Err(_) => NO_MSG,
            },
        };
        (i != NO_MSG).then_some(usize::from(i))
    }

    /// True when the dictionary defines MsgType `msg_type`.
    pub fn has_msg_type(&self, msg_type: &[u8]) -> bool {
        self.msg_index(msg_type).is_some()
    }

    /// True for session-level (admin) message types: `msgcat="admin"` in
    /// the dictionary, or, for dictionaries without `msgcat`, QuickFIX's
    /// rule (one of `0 1 2 3 4 5 A`).
    pub fn is_admin_msg_type(&self, msg_type: &[u8]) -> bool {
        match self.msg_index(msg_type) {
            Some(i) if self.has_msgcat => self.messages[i].admin,
            _ => matches!(msg_type, [b'0'..=b'5'] | [b'A']),
        }
    }

    /// The message definition for `msg_type`.
    pub fn message(&self, msg_type: &[u8]) -> Option<&MessageDef> {
        self.msg_index(msg_type).map(|i| &self.messages[i])
    }

    /// The message definition at `index` (see [`Dictionary::msg_index`]).
    pub fn message_at(&self, index: usize) -> &MessageDef {
        &self.messages[index]
    }

    /// All messages, in dictionary order.
    pub fn messages(&self) -> &[MessageDef] {
        &self.messages
    }

    /// True when `tag` may appear at the top level of the body of `msg_type`.
    pub fn is_msg_field(&self, msg_type: &[u8], tag: i32) -> bool {
        self.message(msg_type).is_some_and(|m| m.allows(tag))
    }

    /// The repeating group that `count_tag` introduces at the top level of
    /// `msg_type`'s body (or of the header).
    pub fn group(&self, msg_type: &[u8], count_tag: i32) -> Option<&GroupDef> {
        let g = match self
            .message(msg_type)
            .and_then(|m| m.layout.group(count_tag))
        {
            Some(g) => g,
            None => self.header.group(count_tag)?,
        };
        Some(&self.groups[g as usize])
    }

    /// The group at `index` (indices come from layouts and group defs).
    #[inline]
    pub(crate) fn group_at(&self, index: u32) -> &GroupDef {
        &self.groups[index as usize]
    }

    /// The nested group `count_tag` inside `group`, if any.
    pub fn nested_group(&self, group: &GroupDef, count_tag: i32) -> Option<&GroupDef> {
        group.group(count_tag).map(|g| self.group_at(g))
    }
}

/// Accumulates one level (message body, header, trailer or group entry).
#[derive(Default)]
struct LevelBuilder {
    order: Vec<i32>,
    seen: HashSet<i32>,
    required: Vec<i32>,
    groups: Vec<(i32, u32)>,
}

impl LevelBuilder {
    fn add(&mut self, tag: i32, required: bool) {
        if self.seen.insert(tag) {
            self.order.push(tag);
        }
        if required {
            self.required.push(tag);
        }
    }

    fn into_layout(mut self) -> Layout {
        self.required.sort_unstable();
        self.required.dedup();
        self.groups.sort_unstable_by_key(|g| g.0);
        self.groups.dedup_by_key(|g| g.0);
        Layout {
            allowed: TagSet::from_tags(self.order.iter().copied()),
            required: self.required.into(),
            groups: self.groups.into(),
        }
    }
}

struct Loader<'a, 'input> {
    doc: &'a roxmltree::Document<'input>,
    origin: &'a str,
    groups: Vec<GroupDef>,
    names: HashMap<Box<str>, i32>,
    components: HashMap<&'a str, roxmltree::Node<'a, 'input>>,
}

type Node<'a, 'input> = roxmltree::Node<'a, 'input>;

impl<'a, 'input> Loader<'a, 'input> {
    fn err(&self, node: Node, message: impl Into<String>) -> DictionaryError {
        DictionaryError::Invalid {
            origin: self.origin.to_string(),
            line: self.doc.text_pos_at(node.range().start).row,
            message: message.into(),
        }
    }

    fn attr(&self, node: Node<'a, 'input>, name: &str) -> Result<&'a str, DictionaryError> {
        node.attribute(name).ok_or_else(|| {
            self.err(
                node,
                format!("<{}> has no `{name}` attribute", node.tag_name().name()),
            )
        })
    }

    fn section(&self, root: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
        root.children()
            .find(|n| n.is_element() && n.tag_name().name() == name)
    }

    fn load(mut self) -> Result<Dictionary, DictionaryError> {
        let root = self.doc.root_element();
        if root.tag_name().name() != "fix" {
            return Err(self.err(root, "root element must be <fix>"));
        }
        let begin_string = self.begin_string(root)?;
        let fields_node = self
            .section(root, "fields")
            .ok_or_else(|| self.err(root, "missing <fields> section"))?;
        let (field_defs, dense_fields, sparse_fields) = self.load_fields(fields_node)?;
        if let Some(comps) = self.section(root, "components") {
            for c in comps.children().filter(|n| n.is_element()) {
                if c.tag_name().name() != "component" {
                    return Err(self.err(c, "<components> may only contain <component>"));
                }
                let name = self.attr(c, "name")?;
                if self.components.insert(name, c).is_some() {
                    return Err(self.err(c, format!("component `{name}` defined twice")));
                }
            }
        }
        let header = match self.section(root, "header") {
            Some(h) => self.level(h, "header")?.into_layout(),
            None => Layout::default(),
        };
        let trailer = match self.section(root, "trailer") {
            Some(t) => self.level(t, "trailer")?.into_layout(),
            None => Layout::default(),
        };
        let messages_node = self
            .section(root, "messages")
            .ok_or_else(|| self.err(root, "missing <messages> section"))?;
        let mut messages = Vec::new();
        let mut single_msg = [NO_MSG; 256];
        let mut multi_msg: Vec<(Box<[u8]>, u16)> = Vec::new();
        let mut has_msgcat = false;
        for m in messages_node.children().filter(|n| n.is_element()) {
            if m.tag_name().name() != "message" {
                return Err(self.err(m, "<messages> may only contain <message>"));
            }
            let name = self.attr(m, "name")?;
            let msg_type = self.attr(m, "msgtype")?;
            if msg_type.is_empty() {
                return Err(self.err(m, format!("message `{name}` has an empty msgtype")));
            }
            let admin = match m.attribute("msgcat") {
                Some(c) => {
                    has_msgcat = true;
                    c.eq_ignore_ascii_case("admin")
                }
                None => false,
            };
            let index = u16::try_from(messages.len())
                .ok()
                .filter(|&i| i != NO_MSG)
                .ok_or_else(|| self.err(m, "too many messages"))?;
            let key = msg_type.as_bytes();
            let duplicate = if key.len() == 1 {
                std::mem::replace(&mut single_msg[usize::from(key[0])], index) != NO_MSG
            } else if multi_msg.iter().any(|(k, _)| &**k == key) {
                true
            } else {
                multi_msg.push((key.into(), index));
                false
            };
            if duplicate {
                return Err(self.err(m, format!("msgtype `{msg_type}` defined twice")));
            }
            let layout = self.level(m, &format!("message `{name}`"))?.into_layout();
            messages.push(MessageDef {
                name: name.into(),
                msg_type: key.into(),
                admin,
                layout,
            });
        }
        multi_msg.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Dictionary {
            begin_string,
            field_defs,
            dense_fields,
            sparse_fields,
            by_name: self.names,
            header,
            trailer,
            messages,
            single_msg,
            multi_msg: multi_msg.into(),
            groups: self.groups,
            has_msgcat,
            tag_infos: Box::default(),
            id: NEXT_DICTIONARY_ID.fetch_add(1, Ordering::Relaxed),
        }
        .with_tag_infos())
    }

    fn begin_string(&self, root: Node<'a, 'input>) -> Result<String, DictionaryError> {
        let major = self.attr(root, "major")?;
        let minor = self.attr(root, "minor")?;
        let kind = root.attribute("type").unwrap_or("FIX");
        Ok(format!("{kind}.{major}.{minor}"))
    }

    #[allow(clippy::type_complexity)]
    fn load_fields(
        &mut self,
        fields: Node<'a, 'input>,
    ) -> Result<(Vec<FieldDef>, Box<[u32]>, HashMap<i32, u32>), DictionaryError> {
        let mut defs: Vec<FieldDef> = Vec::new();
        let mut by_tag: HashMap<i32, usize> = HashMap::new();
        for f in fields.children().filter(|n| n.is_element()) {
            if f.tag_name().name() != "field" {
                return Err(self.err(f, "<fields> may only contain <field>"));
            }
            let name = self.attr(f, "name")?;
            let number = self.attr(f, "number")?;
            let tag: i32 = number.parse().ok().filter(|&t| t > 0).ok_or_else(|| {
                self.err(
                    f,
                    format!("field `{name}`: number `{number}` is not a positive integer"),
                )
            })?;
            let field_type = FieldType::from_name(self.attr(f, "type")?);
            if let Some(&prev) = by_tag.get(&tag) {
                return Err(self.err(
                    f,
                    format!(
                        "field number {tag} defined twice (`{}` and `{name}`)",
                        defs[prev].name
                    ),
                ));
            }
            if self.names.contains_key(name) {
                return Err(self.err(f, format!("field name `{name}` defined twice")));
            }
            let mut values: Vec<Box<[u8]>> = Vec::new();
            for v in f.children().filter(|n| n.is_element()) {
                if v.tag_name().name() != "value" {
                    return Err(self.err(
                        v,
                        format!("field `{name}`: unexpected <{}>", v.tag_name().name()),
                    ));
                }
                values.push(self.attr(v, "enum")?.as_bytes().into());
            }
            values.sort_unstable();
            values.dedup();
            by_tag.insert(tag, defs.len());
            self.names.insert(name.into(), tag);
            let packed = values
                .iter()
                .map(|v| pack_value(v))
                .collect::<Option<Vec<u64>>>()
                .map(|mut p| {
                    p.sort_unstable();
                    p.into_boxed_slice()
                });
            let bytes = (!values.is_empty() && values.iter().all(|v| v.len() == 1)).then(|| {
                let mut set = [0u64; 4];
                for v in &values {
                    set[usize::from(v[0] >> 6)] |= 1 << (v[0] & 63);
                }
                set
            });
            defs.push(FieldDef {
                tag,
                name: name.into(),
                field_type,
                values: values.into(),
                packed,
                bytes,
            });
        }
        let dense_len = defs
            .iter()
            .map(|d| d.tag)
            .filter(|&t| t < DENSE_TAG_LIMIT)
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut dense = vec![0u32; dense_len];
        let mut sparse = HashMap::new();
        for (i, d) in defs.iter().enumerate() {
            let idx = i as u32 + 1;
            if d.tag < DENSE_TAG_LIMIT {
                dense[d.tag as usize] = idx;
            } else {
                sparse.insert(d.tag, idx);
            }
        }
        Ok((defs, dense.into(), sparse))
    }

    fn tag_of(&self, node: Node<'a, 'input>, context: &str) -> Result<i32, DictionaryError> {
        let name = self.attr(node, "name")?;
        self.names.get(name).copied().ok_or_else(|| {
            self.err(
                node,
                format!("{context} references unknown field `{name}` (not in <fields>)"),
            )
        })
    }

    fn is_required(node: Node) -> bool {
        matches!(node.attribute("required"), Some("Y" | "y"))
    }

    /// Builds the level of a message, header or trailer from its children.
    fn level(
        &mut self,
        node: Node<'a, 'input>,
        context: &str,
    ) -> Result<LevelBuilder, DictionaryError> {
        let mut b = LevelBuilder::default();
        self.add_children(node, &mut b, true, context, 0)?;
        Ok(b)
    }

    /// Adds the children of `node` to `level`. A child is required when it
    /// says so and every enclosing component up to the level is required.
    fn add_children(
        &mut self,
        node: Node<'a, 'input>,
        level: &mut LevelBuilder,
        required: bool,
        context: &str,
        depth: usize,
    ) -> Result<(), DictionaryError> {
        if depth > MAX_NESTING {
            return Err(self.err(
                node,
                format!(
                    "{context}: components/groups nested more than {MAX_NESTING} deep (a cycle?)"
                ),
            ));
        }
        for child in node.children().filter(|n| n.is_element()) {
            let req = required && Self::is_required(child);
            match child.tag_name().name() {
                "field" => {
                    let tag = self.tag_of(child, context)?;
                    level.add(tag, req);
                }
                "component" => {
                    let name = self.attr(child, "name")?;
                    let comp = *self.components.get(name).ok_or_else(|| {
                        self.err(
                            child,
                            format!("{context} references unknown component `{name}`"),
                        )
                    })?;
                    self.add_children(comp, level, req, &format!("component `{name}`"), depth + 1)?;
                }
                "group" => {
                    let tag = self.tag_of(child, context)?;
                    level.add(tag, req);
                    let g = self.group(child, tag, context, depth + 1)?;
                    level.groups.push((tag, g));
                }
                other => {
                    return Err(self.err(child, format!("{context}: unexpected element <{other}>")))
                }
            }
        }
        Ok(())
    }

    /// Builds a group definition; returns its index. Members are required
    /// within every entry present when marked so, whether or not the group
    /// itself is required.
    fn group(
        &mut self,
        node: Node<'a, 'input>,
        count_tag: i32,
        context: &str,
        depth: usize,
    ) -> Result<u32, DictionaryError> {
        let name = self.attr(node, "name")?;
        let ctx = format!("{context}, group `{name}`");
        let mut level = LevelBuilder::default();
        self.add_children(node, &mut level, true, &ctx, depth)?;
        let Some(&delimiter) = level.order.first() else {
            return Err(self.err(node, format!("{ctx} has no fields")));
        };
        if level.order.len() > MAX_GROUP_MEMBERS {
            return Err(self.err(
                node,
                format!("{ctx} has more than {MAX_GROUP_MEMBERS} member fields"),
            ));
        }
        let pos = |t: i32, order: &[i32]| order.iter().position(|&o| o == t).unwrap_or(0) as u16;
        let mut members: Vec<(i32, u16)> = level
            .order
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, i as u16))
            .collect();
        members.sort_unstable();
        level.required.sort_unstable();
        level.required.dedup();
        let required = level
            .required
            .iter()
            .map(|&t| (t, pos(t, &level.order)))
            .collect::<Vec<_>>();
        level.groups.sort_unstable_by_key(|g| g.0);
        level.groups.dedup_by_key(|g| g.0);
        let index = self.groups.len() as u32;
        self.groups.push(GroupDef {
            count_tag,
            delimiter,
            order: level.order.into(),
            members: members.into(),
            required: required.into(),
            groups: level.groups.into(),
        });
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"<fix major="4" minor="4" type="FIX">
 <header>
  <field name="BeginString" required="Y"/>
  <field name="MsgType" required="Y"/>
 </header>
 <trailer><field name="CheckSum" required="Y"/></trailer>
 <messages>
  <message name="Order" msgtype="D" msgcat="app">
   <field name="ClOrdID" required="Y"/>
   <component name="Inst" required="Y"/>
   <group name="NoParties" required="N">
     <field name="PartyID" required="Y"/>
     <group name="NoSubs" required="N"><field name="SubID" required="N"/></group>
   </group>
  </message>
  <message name="Weird" msgtype="XY" msgcat="admin"><component name="Opt" required="N"/></message>
 </messages>
 <components>
  <component name="Inst"><field name="Symbol" required="Y"/><component name="Opt" required="N"/></component>
  <component name="Opt"><field name="Side" required="Y"/></component>
 </components>
 <fields>
  <field number="8" name="BeginString" type="STRING"/>
  <field number="35" name="MsgType" type="STRING"/>
  <field number="10" name="CheckSum" type="STRING"/>
  <field number="11" name="ClOrdID" type="STRING"/>
  <field number="55" name="Symbol" type="STRING"/>
  <field number="54" name="Side" type="CHAR"><value enum="2" description="SELL"/><value enum="1" description="BUY"/></field>
  <field number="453" name="NoParties" type="NUMINGROUP"/>
  <field number="448" name="PartyID" type="STRING"/>
  <field number="802" name="NoSubs" type="NUMINGROUP"/>
  <field number="523" name="SubID" type="STRING"/>
  <field number="20000" name="Private" type="WHATEVER"/>
 </fields>
</fix>"#;

    fn load_err(xml: &str) -> String {
        Dictionary::from_xml(xml, "test.xml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn loads_fields_components_and_groups() {
        let d = Dictionary::from_xml(MINI, "mini.xml").unwrap();
        assert_eq!(d.begin_string(), "FIX.4.4");
        assert_eq!(d.field_name(54), Some("Side"));
        assert_eq!(d.field_tag("ClOrdID"), Some(11));
        assert!(d.field(54).unwrap().has_value(b"1"));
        assert!(!d.field(54).unwrap().has_value(b"3"));
        assert!(
            !d.field(54).unwrap().has_value(b"") && !d.field(54).unwrap().has_value(b"12345678")
        );
        assert!(d.field(54).unwrap().packed.is_some());
        assert_eq!(d.field(20000).unwrap().field_type, FieldType::Other);
        assert!(d.field(0).is_none() && d.field(-1).is_none() && d.field(999).is_none());
        let m = d.message(b"D").unwrap();
        // Symbol is required through the required component; Side is not,
        // because its component is optional.
        assert_eq!(m.required_tags(), &[11, 55]);
        assert!(m.allows(54) && m.allows(453) && !m.allows(448));
        let g = d.group(b"D", 453).unwrap();
        assert_eq!(g.delimiter, 448);
        assert_eq!(g.required_tags().collect::<Vec<_>>(), vec![448]);
        let nested = d.nested_group(g, 802).unwrap();
        assert_eq!(nested.delimiter, 523);
        assert!(d.is_header_field(35) && d.is_header_field(9) && !d.is_header_field(11));
        assert!(d.is_trailer_field(10));
        assert!(d.is_admin_msg_type(b"XY") && !d.is_admin_msg_type(b"D"));
        assert!(d.has_msg_type(b"XY") && !d.has_msg_type(b"X") && !d.has_msg_type(b"XYZ"));
    }

    #[test]
    fn our_fix44_loads() {
        let d = Dictionary::fix44();
        assert_eq!(d.begin_string(), "FIX.4.4");
        for f in &d.field_defs {
            assert_ne!(
                f.field_type,
                FieldType::Other,
                "field {} has an unknown type",
                f.tag
            );
        }
        assert_eq!(d.header_required(), &[8, 9, 34, 35, 49, 52, 56]);
        assert_eq!(d.message(b"D").unwrap().required_tags(), &[11, 40, 54, 60]);
        assert_eq!(
            d.message(b"8").unwrap().required_tags(),
            &[6, 14, 17, 37, 39, 54, 150, 151]
        );
        assert_eq!(d.message(b"d").unwrap().required_tags(), &[320, 322, 323]);
        for t in [b"0", b"1", b"2", b"3", b"4", b"5", b"A"] {
            assert!(d.is_admin_msg_type(t));
        }
        for t in [
            "D", "F", "G", "H", "q", "r", "8", "9", "j", "V", "W", "X", "Y", "d", "C", "B",
        ] {
            assert!(d.has_msg_type(t.as_bytes()), "{t}");
            assert!(!d.is_admin_msg_type(t.as_bytes()), "{t}");
        }
        let hb = d.message(b"0").unwrap();
        assert!(hb.allows(112) && !hb.allows(55));
        assert!(d.group(b"D", 386).is_some_and(|g| g.delimiter == 336));
        assert!(d.group(b"d", 454).is_some_and(|g| g.delimiter == 455));
        assert!(d.group(b"D", 627).is_some(), "header group NoHops");
        let parties = d.group(b"D", 453).unwrap();
        assert!(d.nested_group(parties, 802).is_some());
        assert!(d.field(21).unwrap().has_value(b"3") && !d.field(21).unwrap().has_value(b"4"));
        assert!(d.field(167).unwrap().has_value(b"CS") && !d.field(167).unwrap().has_value(b"BOO"));
        assert!(!d.field(40).unwrap().has_value(b"w"));
        assert!(!d.has_field(999) && !d.has_field(5000));
    }

    #[test]
    fn tag_classes_match_the_layouts() {
        let d = Dictionary::fix44();
        for tag in (-2..1200).chain([5000, 16_383, 16_384, 20_000, i32::MAX, i32::MIN]) {
            let class = d.tag_class(tag);
            assert_eq!(class & SECTION, d.section_of(tag), "{tag}");
            if let Some(info) = d.tag_info(tag) {
                assert_eq!(info.field_type, d.field(tag).map(|f| f.field_type));
                assert_eq!(
                    info.has_values,
                    d.field(tag).is_some_and(|f| f.has_values())
                );
                assert_eq!(info.kind, value_kind(d.field(tag)));
            }
            let counts_a_group = d.messages().iter().any(|m| m.layout.group(tag).is_some())
                || d.header.group(tag).is_some()
                || d.trailer.group(tag).is_some()
                || d.groups.iter().any(|g| g.group(tag).is_some());
            if counts_a_group {
                assert!(class & GROUP_COUNT != 0, "{tag}");
            }
        }
        assert_eq!(d.tag_class(8), HEADER);
        assert_eq!(d.tag_class(627), HEADER | GROUP_COUNT);
        assert_eq!(d.tag_class(10), TRAILER);
        assert_eq!(d.tag_class(453), BODY | GROUP_COUNT);
        assert_eq!(d.tag_class(802), BODY | GROUP_COUNT);
        assert_eq!(d.tag_class(55), BODY);
        // Single-byte enumerations are a byte set, longer ones packed.
        let side = d.field(54).unwrap();
        assert!(side.bytes.is_some() && side.has_value(b"1") && !side.has_value(b"11"));
        assert!(!side.has_value(b"") && !side.has_value(b"Z"));
        assert!(d.field(167).unwrap().bytes.is_none());
    }

    #[test]
    fn error_unknown_field_reference() {
        let xml = MINI.replace(
            r#"<field name="ClOrdID" required="Y"/>"#,
            r#"<field name="ClOrdId" required="Y"/>"#,
        );
        let e = load_err(&xml);
        assert!(e.starts_with("test.xml:9:"), "{e}");
        assert!(
            e.contains("message `Order` references unknown field `ClOrdId`"),
            "{e}"
        );
    }

    #[test]
    fn error_duplicate_number_and_name() {
        let xml = MINI.replace(
            r#"<field number="11" name="ClOrdID" type="STRING"/>"#,
            r#"<field number="11" name="ClOrdID" type="STRING"/><field number="11" name="Other" type="STRING"/>"#,
        );
        assert!(load_err(&xml).contains("field number 11 defined twice (`ClOrdID` and `Other`)"));
        let xml = MINI.replace(
            r#"<field number="11" name="ClOrdID" type="STRING"/>"#,
            r#"<field number="11" name="ClOrdID" type="STRING"/><field number="12" name="ClOrdID" type="STRING"/>"#,
        );
        assert!(load_err(&xml).contains("field name `ClOrdID` defined twice"));
    }

    #[test]
    fn error_unknown_component_cycle_and_bad_xml() {
        let xml = MINI.replace(
            r#"<component name="Inst" required="Y"/>"#,
            r#"<component name="Nope" required="Y"/>"#,
        );
        assert!(load_err(&xml).contains("references unknown component `Nope`"));
        let xml = MINI.replace(
            r#"<component name="Opt"><field name="Side" required="Y"/></component>"#,
            r#"<component name="Opt"><component name="Inst" required="N"/></component>"#,
        );
        assert!(load_err(&xml).contains("a cycle?"));
        let e = load_err("<fix major=\"4\" minor=\"4\"><fields>");
        assert!(
            e.starts_with("test.xml: not a well-formed XML document"),
            "{e}"
        );
        assert!(load_err("<fox/>").contains("root element must be <fix>"));
        let xml = MINI.replace(r#"number="10""#, r#"number="ten""#);
        assert!(load_err(&xml).contains("number `ten` is not a positive integer"));
        let xml = MINI.replace(r#"msgtype="XY""#, r#"msgtype="D""#);
        assert!(load_err(&xml).contains("msgtype `D` defined twice"));
        let xml = MINI.replace(
            "<group name=\"NoSubs\" required=\"N\"><field name=\"SubID\" required=\"N\"/></group>",
            "<group name=\"NoSubs\"/>",
        );
        assert!(load_err(&xml).contains("group `NoSubs` has no fields"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Dictionary::from_file("/nonexistent/FIX44.xml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/FIX44.xml: cannot read dictionary"),
            "{e}"
        );
    }
}

//! SessionRejectReason (373) values and QuickFIX's Text (58) for each.

/// Why a message was rejected at session level (FIX 4.4 tag 373).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionRejectReason {
    /// 0
    InvalidTagNumber,
    /// 1
    RequiredTagMissing,
    /// 2
    TagNotDefinedForMessageType,
    /// 3
    UndefinedTag,
    /// 4
    TagSpecifiedWithoutValue,
    /// 5
    ValueIsIncorrect,
    /// 6
    IncorrectDataFormat,
    /// 7
    DecryptionProblem,
    /// 8
    SignatureProblem,
    /// 9
    CompIdProblem,
    /// 10
    SendingTimeAccuracyProblem,
    /// 11
    InvalidMsgType,
    /// 13
    TagAppearsMoreThanOnce,
    /// 14
    TagSpecifiedOutOfRequiredOrder,
    /// 15
    RepeatingGroupFieldsOutOfOrder,
    /// 16
    IncorrectNumInGroupCount,
    /// 17
    NonDataValueIncludesFieldDelimiter,
    /// 99
    Other,
}

impl SessionRejectReason {
    /// The numeric value for tag 373.
    pub fn code(self) -> u32 {
        use SessionRejectReason::*;
        match self {
            InvalidTagNumber => 0,
            RequiredTagMissing => 1,
            TagNotDefinedForMessageType => 2,
            UndefinedTag => 3,
            TagSpecifiedWithoutValue => 4,
            ValueIsIncorrect => 5,
            IncorrectDataFormat => 6,
            DecryptionProblem => 7,
            SignatureProblem => 8,
            CompIdProblem => 9,
            SendingTimeAccuracyProblem => 10,
            InvalidMsgType => 11,
            TagAppearsMoreThanOnce => 13,
            TagSpecifiedOutOfRequiredOrder => 14,
            RepeatingGroupFieldsOutOfOrder => 15,
            IncorrectNumInGroupCount => 16,
            NonDataValueIncludesFieldDelimiter => 17,
            Other => 99,
        }
    }

    /// QuickFIX's Text (58) for this reason, compared literally by the
    /// acceptance suite.
    pub fn text(self) -> &'static str {
        use SessionRejectReason::*;
        match self {
            InvalidTagNumber => "Invalid tag number",
            RequiredTagMissing => "Required tag missing",
            TagNotDefinedForMessageType => "Tag not defined for this message type",
            UndefinedTag => "Undefined Tag",
            TagSpecifiedWithoutValue => "Tag specified without a value",
            ValueIsIncorrect => "Value is incorrect (out of range) for this tag",
            IncorrectDataFormat => "Incorrect data format for value",
            DecryptionProblem => "Decryption problem",
            SignatureProblem => "Signature problem",
            CompIdProblem => "CompID problem",
            SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            InvalidMsgType => "Invalid MsgType",
            TagAppearsMoreThanOnce => "Tag appears more than once",
            TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            RepeatingGroupFieldsOutOfOrder => "Repeating group fields out of order",
            IncorrectNumInGroupCount => "Incorrect NumInGroup count for repeating group",
            NonDataValueIncludesFieldDelimiter => "Non Data Value includes Field Delimiter",
            Other => "Other",
        }
    }
}

/// A session-level rejection: reason plus the offending tag (371), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// SessionRejectReason (373).
    pub reason: SessionRejectReason,
    /// RefTagID (371), when the reason concerns one field.
    pub ref_tag: Option<i32>,
}

impl Rejection {
    /// A rejection concerning `tag`.
    pub fn tag(reason: SessionRejectReason, tag: i32) -> Rejection {
        Rejection {
            reason,
            ref_tag: Some(tag),
        }
    }

    /// A rejection not tied to one field.
    pub fn message(reason: SessionRejectReason) -> Rejection {
        Rejection {
            reason,
            ref_tag: None,
        }
    }
}

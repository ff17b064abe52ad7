//! Arbitrary bytes that parse as a message are validated against our
//! dictionary with every combination of the validation options, and put in
//! QuickFIX's canonical body order: neither may panic.
//!
//! Input layout: byte 0 = options (bits 0-3: the four `Validate*` switches),
//! then the message bytes.

#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

use fixgw::fix::dictionary::Dictionary;
use fixgw::fix::validate::{canonical_body, validate, ValidationOptions};
use fixgw::fix::Message;

fn dictionary() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(Dictionary::fix44)
}

fuzz_target!(|data: &[u8]| {
    let [opts, bytes @ ..] = data else {
        return;
    };
    let Ok(msg) = Message::parse(Bytes::copy_from_slice(bytes)) else {
        return;
    };
    let options = ValidationOptions {
        check_fields_out_of_order: opts & 1 != 0,
        check_fields_have_values: opts & 2 != 0,
        check_user_defined_fields: opts & 4 != 0,
        allow_unknown_msg_fields: opts & 8 != 0,
    };
    let dict = dictionary();
    let _ = validate(dict, &msg, &options);
    let body = canonical_body(dict, &msg);
    assert!(body.len() <= msg.fields().len());
});

//! Reading values the way Apache RocketMQ's Java broker reads them, so that every client's
//! spelling of a value parses.
//!
//! Clients disagree on how they write header fields and JSON bodies. The C++ client
//! (librocketmq, also behind the Python binding) writes booleans as `"0"`/`"1"`, numbers as
//! JSON numbers or as strings, and Java enums in heartbeats by ordinal (`"messageModel":1`);
//! Java and Go clients write `"true"`, quoted numbers and enum names. The Java broker
//! accepts all of them: header fields go through `Boolean.parseBoolean` and
//! `Integer.parseInt`, bodies through fastjson, which reads an enum from its name or its
//! ordinal and a number from a string. These helpers do the same.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A header boolean as `Boolean.parseBoolean` reads it ("true" in any case is true,
/// anything else false), except that `"1"` is also true: the C++ client writes `true`
/// as `"1"` (its batch flag among them), which Java would silently read as false.
pub fn java_bool(value: &str) -> bool {
    let value = value.trim();
    value.eq_ignore_ascii_case("true") || value == "1"
}

/// `consumeType`: `ConsumeType` by name or ordinal.
pub const CONSUME_TYPES: &[&str] = &["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"];
/// `messageModel`: `MessageModel` by name or ordinal (BROADCASTING is 0).
pub const MESSAGE_MODELS: &[&str] = &["BROADCASTING", "CLUSTERING"];
/// `consumeFromWhere`: `ConsumeFromWhere` by name or ordinal.
pub const CONSUME_FROM_WHERE: &[&str] = &[
    "CONSUME_FROM_LAST_OFFSET",
    "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    "CONSUME_FROM_MIN_OFFSET",
    "CONSUME_FROM_MAX_OFFSET",
    "CONSUME_FROM_FIRST_OFFSET",
    "CONSUME_FROM_TIMESTAMP",
];

/// A Java enum field given by name or by ordinal, as the enum's name.
fn enum_name<'de, D: Deserializer<'de>>(
    d: D,
    field: &str,
    names: &[&str],
) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Null => Ok(String::new()),
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map(|name| name.to_string())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "{field}: ordinal {n} is not one of 0..{} ({})",
                    names.len(),
                    names.join(", ")
                ))
            }),
        other => Err(D::Error::custom(format!(
            "{field}: expected a name or an ordinal, got {other}"
        ))),
    }
}

pub fn consume_type<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, "consumeType", CONSUME_TYPES)
}

pub fn message_model<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, "messageModel", MESSAGE_MODELS)
}

pub fn consume_from_where<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    enum_name(d, "consumeFromWhere", CONSUME_FROM_WHERE)
}

/// A number given as a JSON number or as a string holding one (fastjson reads both).
pub fn i64_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom(format!("{n} is not a 64-bit integer"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|e| D::Error::custom(format!("{s:?} is not an integer: {e}"))),
        Value::Null => Ok(0),
        other => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// A boolean given as a JSON boolean or as a string ([`java_bool`]) or number (non-zero).
pub fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) => Ok(java_bool(&s)),
        Value::Number(n) => Ok(n.as_i64() != Some(0)),
        Value::Null => Ok(false),
        other => Err(D::Error::custom(format!("expected a boolean, got {other}"))),
    }
}

/// A list of numbers, each a JSON number or a string holding one.
pub fn i32_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i32>, D::Error> {
    let values = match Value::deserialize(d)? {
        Value::Null => return Ok(Vec::new()),
        Value::Array(values) => values,
        other => return Err(D::Error::custom(format!("expected a list, got {other}"))),
    };
    values
        .into_iter()
        .map(|v| match &v {
            Value::Number(n) => n
                .as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| D::Error::custom(format!("{n} is not a 32-bit integer"))),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|e| D::Error::custom(format!("{s:?} is not an integer: {e}"))),
            other => Err(D::Error::custom(format!(
                "expected an integer, got {other}"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_java_does_plus_the_cpp_one() {
        for t in ["true", "TRUE", "True", " true ", "1"] {
            assert!(java_bool(t), "{t:?}");
        }
        for f in ["false", "0", "", "yes", "2", "tru"] {
            assert!(!java_bool(f), "{f:?}");
        }
    }

    #[derive(Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "message_model")]
        model: String,
        #[serde(deserialize_with = "i64_or_string")]
        version: i64,
        #[serde(deserialize_with = "bool_or_string")]
        flag: bool,
        #[serde(deserialize_with = "i32_list")]
        codes: Vec<i32>,
    }

    #[test]
    fn enums_by_ordinal_and_numbers_as_strings() {
        let p: Probe = serde_json::from_str(
            r#"{"model":0,"version":"1796402866958","flag":"1","codes":["7",-3]}"#,
        )
        .unwrap();
        assert_eq!(p.model, "BROADCASTING");
        assert_eq!(p.version, 1_796_402_866_958);
        assert!(p.flag);
        assert_eq!(p.codes, vec![7, -3]);
        let p: Probe =
            serde_json::from_str(r#"{"model":"CLUSTERING","version":5,"flag":false,"codes":[]}"#)
                .unwrap();
        assert_eq!(p.model, "CLUSTERING");
        assert!(!p.flag);
    }

    #[test]
    fn a_bad_ordinal_names_the_field_and_the_choices() {
        let e = serde_json::from_str::<Probe>(r#"{"model":7,"version":1,"flag":true,"codes":[]}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("messageModel: ordinal 7"), "{e}");
        assert!(e.contains("BROADCASTING, CLUSTERING"), "{e}");
    }
}

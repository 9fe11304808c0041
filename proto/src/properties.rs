//! Message properties: RocketMQ's `name \u{1} value \u{2}` string.
//!
//! Properties carry the tags, keys and unique id that the broker indexes, plus any user
//! properties. Order is kept as given so an encoded message round-trips byte for byte.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// Separates a property's name from its value (`MessageDecoder.NAME_VALUE_SEPARATOR`).
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends each property (`MessageDecoder.PROPERTY_SEPARATOR`).
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Well-known property names (`MessageConst` in RocketMQ).
pub mod keys {
    /// Tag of the message, one per message; hashed into the ConsumeQueue.
    pub const TAGS: &str = "TAGS";
    /// Business keys, separated by spaces; indexed for `query key`.
    pub const KEYS: &str = "KEYS";
    /// The producer-assigned unique id (client msgId); indexed for `query id`.
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    /// Separator between several keys in [`KEYS`].
    pub const KEY_SEPARATOR: char = ' ';
    /// The topic a retried message was first sent to (set on send-back).
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    /// The first message's id, kept across its retries.
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    /// A timer message's delivery time (epoch ms), set by the broker when it takes the
    /// message in; the ConsumeQueue of the timer topic holds it in place of a tag hash.
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    /// A delay level (1, 2, ...) of the broker's `message_delay_level`.
    pub const DELAY: &str = "DELAY";
    /// Where a message the broker keeps in a system queue of its own (delayed, timer,
    /// half) belongs: its topic and queue id.
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
}

/// An ordered list of properties, kept in its encoded form.
///
/// A message's properties are decoded once on the broker (from the send header) and
/// encoded once into the CommitLog, and read for a few names (tags, keys, unique id) in
/// between; holding the encoded string makes decoding one copy and encoding a memcpy,
/// not two allocations per property.
///
/// Invariant: `encoded` is a sequence of `name \u{1} value \u{2}` items with each name
/// once, as [`Properties::decode`] normalizes it. Names and values given to
/// [`Properties::insert`] must not hold the separators (the client refuses such a
/// message; the broker inserts only values it made): one that did would break its item
/// apart here as it would on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    encoded: String,
}

/// The well-formed items of an encoded property string, in order.
fn items(encoded: &str) -> impl Iterator<Item = (&str, &str)> {
    encoded.split(PROPERTY_SEPARATOR).filter_map(|item| {
        let (name, value) = item.split_once(NAME_VALUE_SEPARATOR)?;
        (!value.contains(NAME_VALUE_SEPARATOR)).then_some((name, value))
    })
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Byte range of the item named `name` (separators included) and of its value.
    fn find_item(&self, name: &str) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
        let mut start = 0;
        for item in self.encoded.split_inclusive(PROPERTY_SEPARATOR) {
            let end = start + item.len();
            let body = item.strip_suffix(PROPERTY_SEPARATOR).unwrap_or(item);
            if let Some((n, v)) = body.split_once(NAME_VALUE_SEPARATOR) {
                if n == name && !v.contains(NAME_VALUE_SEPARATOR) {
                    let value_start = start + n.len() + 1;
                    return Some((start..end, value_start..value_start + v.len()));
                }
            }
            start = end;
        }
        None
    }

    /// Sets `name` to `value`, replacing an earlier value in its place.
    pub fn insert(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        debug_assert!(
            !holds_separator(name) && !holds_separator(value),
            "property {name:?} = {value:?} holds a separator"
        );
        match self.find_item(name) {
            Some((_, value_range)) => self.encoded.replace_range(value_range, value),
            None => {
                self.encoded.reserve(name.len() + value.len() + 2);
                self.encoded.push_str(name);
                self.encoded.push(NAME_VALUE_SEPARATOR);
                self.encoded.push_str(value);
                self.encoded.push(PROPERTY_SEPARATOR);
            }
        }
    }

    /// Removes `name`; returns its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let (item, value) = self.find_item(name)?;
        let value = self.encoded[value].to_string();
        self.encoded.replace_range(item, "");
        Some(value)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        find(&self.encoded, name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        items(&self.encoded)
    }

    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    /// The encoded form.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    pub fn into_string(self) -> String {
        self.encoded
    }

    /// Appends the encoded form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.encoded.as_bytes());
    }

    /// Length of the encoded form in bytes.
    pub fn encoded_size(&self) -> usize {
        self.encoded.len()
    }

    /// Parses the encoded form. Items without exactly one separator are skipped, as
    /// RocketMQ's `string2messageProperties` does, and a repeated name keeps its first
    /// place and its last value. The string as clients write it is already in that form
    /// and is taken as it is.
    pub fn decode(s: &str) -> Self {
        if is_normal(s) {
            return Properties {
                encoded: s.to_string(),
            };
        }
        // Linear even for thousands of items (a property string may be 32 KiB).
        let mut list: Vec<(&str, &str)> = Vec::new();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, value) in items(s) {
            match index.entry(name) {
                Entry::Occupied(at) => list[*at.get()].1 = value,
                Entry::Vacant(at) => {
                    at.insert(list.len());
                    list.push((name, value));
                }
            }
        }
        let mut encoded = String::with_capacity(s.len());
        for (name, value) in list {
            encoded.push_str(name);
            encoded.push(NAME_VALUE_SEPARATOR);
            encoded.push_str(value);
            encoded.push(PROPERTY_SEPARATOR);
        }
        Properties { encoded }
    }
}

/// Whether `s` is already what [`Properties::decode`] would make of it: every item
/// well formed and ended by its separator, no name twice. One pass over the bytes,
/// without allocating, for up to [`NORMAL_ITEMS_MAX`] items (a message has a handful);
/// more take the slow path.
fn is_normal(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut names: [&[u8]; NORMAL_ITEMS_MAX] = [&[]; NORMAL_ITEMS_MAX];
    let (mut at, mut count) = (0, 0);
    while at < bytes.len() {
        let rest = &bytes[at..];
        let end = next_byte(rest, PROPERTY_SEPARATOR as u8);
        let item = &rest[..end];
        let split = next_byte(item, NAME_VALUE_SEPARATOR as u8);
        let unended = end == rest.len();
        if unended
            || split == item.len()
            || item[split + 1..].contains(&(NAME_VALUE_SEPARATOR as u8))
            || count == NORMAL_ITEMS_MAX
            || names[..count].contains(&&item[..split])
        {
            return false;
        }
        names[count] = &item[..split];
        count += 1;
        at += end + 1;
    }
    true
}

/// Index of the first `byte` in `bytes`, or its length.
fn next_byte(bytes: &[u8], byte: u8) -> usize {
    bytes.iter().position(|b| *b == byte).unwrap_or(bytes.len())
}

const NORMAL_ITEMS_MAX: usize = 16;

/// Whether `s` holds a property separator, and so cannot be a property's name or value.
pub fn holds_separator(s: &str) -> bool {
    s.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR])
}

/// Finds one property in an encoded property string without allocating: the value
/// after the first separator of the first item named `name`. A prefix test per item
/// (this runs for every stored message's tags, keys and unique id).
pub fn find<'a>(encoded: &'a str, name: &str) -> Option<&'a str> {
    let bytes = encoded.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let end = at + next_byte(&bytes[at..], PROPERTY_SEPARATOR as u8);
        let item = &bytes[at..end];
        if item.len() > name.len()
            && item[name.len()] == NAME_VALUE_SEPARATOR as u8
            && item.starts_with(name.as_bytes())
        {
            // Both bounds sit next to one-byte separators: char boundaries.
            return Some(&encoded[at + name.len() + 1..end]);
        }
        at = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order() {
        let mut p = Properties::new();
        p.insert(keys::TAGS, "TagA");
        p.insert(keys::KEYS, "k1 k2");
        p.insert("user", "v");
        let mut out = Vec::new();
        p.encode_into(&mut out);
        assert_eq!(out.len(), p.encoded_size());
        let s = std::str::from_utf8(&out).unwrap();
        assert_eq!(s, "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}user\u{1}v\u{2}");
        assert_eq!(Properties::decode(s), p);
        assert_eq!(find(s, keys::KEYS), Some("k1 k2"));
        assert_eq!(find(s, "missing"), None);
    }

    #[test]
    fn insert_replaces() {
        let mut p = Properties::new();
        p.insert("a", "1");
        p.insert("a", "2");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.iter().count(), 1);
        assert_eq!(p.remove("a"), Some("2".to_string()));
        assert_eq!(p.remove("a"), None);
        assert!(p.is_empty());
    }
}

#[cfg(test)]
mod model {
    //! The string-backed `Properties` against the plain list it replaced.
    use proptest::prelude::*;

    use super::*;

    /// A list of (name, value), as `Properties` was before it kept the encoded form.
    #[derive(Default)]
    struct Model(Vec<(String, String)>);

    impl Model {
        fn insert(&mut self, name: &str, value: &str) {
            match self.0.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = value.to_string(),
                None => self.0.push((name.to_string(), value.to_string())),
            }
        }
        fn decode(s: &str) -> Self {
            let mut m = Model::default();
            for item in s.split(PROPERTY_SEPARATOR) {
                let mut parts = item.split(NAME_VALUE_SEPARATOR);
                if let (Some(n), Some(v), None) = (parts.next(), parts.next(), parts.next()) {
                    m.insert(n, v);
                }
            }
            m
        }
        fn encode(&self) -> String {
            self.0
                .iter()
                .map(|(n, v)| format!("{n}\u{1}{v}\u{2}"))
                .collect()
        }
    }

    fn encoded() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof!["a", "b", "ab", "\u{1}", "\u{2}", ""], 0..24)
            .prop_map(|parts| parts.concat())
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof!["a", "b", "TAGS", ""]
    }

    #[test]
    fn many_items_with_repeats_decode_as_the_list_does() {
        // More items than the normal-form check looks at, names repeated.
        let s: String = (0..40)
            .map(|i| format!("n{}\u{1}v{i}\u{2}", i % 20))
            .collect();
        assert!(!is_normal(&s));
        let p = Properties::decode(&s);
        assert_eq!(p.as_str(), Model::decode(&s).encode());
        assert_eq!(p.iter().count(), 20);
        assert_eq!(p.get("n3"), Some("v23"));
    }

    proptest! {
        #[test]
        fn decode_matches_the_list(s in encoded()) {
            let p = Properties::decode(&s);
            let m = Model::decode(&s);
            prop_assert_eq!(p.as_str(), m.encode());
            let listed: Vec<(&str, &str)> = p.iter().collect();
            let expected: Vec<(&str, &str)> =
                m.0.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(listed, expected);
            for n in ["a", "b", "ab", "ba", "TAGS", ""] {
                let expected = m.0.iter().find(|(m, _)| m == n).map(|(_, v)| v.as_str());
                prop_assert_eq!(p.get(n), expected, "get({:?})", n);
            }
        }

        #[test]
        fn inserts_and_removes_match_the_list(
            start in encoded(),
            ops in proptest::collection::vec((any::<bool>(), name(), "[a-z]{0,3}"), 0..12),
        ) {
            let mut p = Properties::decode(&start);
            let mut m = Model::decode(&start);
            for (insert, name, value) in ops {
                if insert {
                    p.insert(&name, &value);
                    m.insert(&name, &value);
                } else {
                    let expected = m.0.iter().position(|(n, _)| *n == name).map(|i| m.0.remove(i).1);
                    prop_assert_eq!(p.remove(&name), expected);
                }
                prop_assert_eq!(p.as_str(), m.encode());
                prop_assert_eq!(p.encoded_size(), p.as_str().len());
            }
        }
    }
}

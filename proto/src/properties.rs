//! Message properties: RocketMQ's `name \u{1} value \u{2}` string.
//!
//! Properties carry the tags, keys and unique id that the broker indexes, plus any user
//! properties. Order is kept as given so an encoded message round-trips byte for byte.

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
}

/// An ordered list of properties.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, String)>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Removes `name`; returns its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(at).1)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the encoded form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.entries {
            out.extend_from_slice(name.as_bytes());
            out.push(NAME_VALUE_SEPARATOR as u8);
            out.extend_from_slice(value.as_bytes());
            out.push(PROPERTY_SEPARATOR as u8);
        }
    }

    /// Length of the encoded form in bytes.
    pub fn encoded_size(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum()
    }

    /// Parses the encoded form. Items without exactly one separator are skipped, as
    /// RocketMQ's `string2messageProperties` does.
    pub fn decode(s: &str) -> Self {
        let mut properties = Properties::new();
        for item in s.split(PROPERTY_SEPARATOR) {
            let mut parts = item.split(NAME_VALUE_SEPARATOR);
            if let (Some(name), Some(value), None) = (parts.next(), parts.next(), parts.next()) {
                properties.insert(name, value);
            }
        }
        properties
    }
}

/// Finds one property in an encoded property string without allocating.
pub fn find<'a>(encoded: &'a str, name: &str) -> Option<&'a str> {
    encoded.split(PROPERTY_SEPARATOR).find_map(|item| {
        let (n, v) = item.split_once(NAME_VALUE_SEPARATOR)?;
        (n == name).then_some(v)
    })
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

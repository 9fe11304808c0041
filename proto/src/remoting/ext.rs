//! `ExtFields`: a command's header fields (`extFields`), name → string value.
//!
//! Every send and pull carries about a dozen of them, built on one side and parsed on the
//! other, so their representation is on the hot path. A `Vec` searched linearly beats a
//! `BTreeMap` at this size (no nodes to allocate, no rebalancing), and names written in
//! code or known to the protocol are kept as `&'static str` rather than copied: a
//! request costs one allocation per field (its value), not three.

use std::borrow::Cow;

#[derive(Clone, Debug, Default)]
pub struct ExtFields(Vec<(Cow<'static, str>, String)>);

impl ExtFields {
    pub fn new() -> Self {
        ExtFields(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        ExtFields(Vec::with_capacity(n))
    }

    /// The value of `key`; the last one when a peer sent the name twice (as Java's
    /// `HashMap` decodes it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value`, replacing an earlier value: keys stay unique, as in the
    /// map the other side decodes them into.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: String) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// Appends `key`, which the caller knows is not set yet (a header built field by
    /// field): no search, unlike [`ExtFields::insert`].
    pub fn push(&mut self, key: &'static str, value: String) {
        debug_assert!(
            self.get(key).is_none(),
            "ExtFields::push of {key}, which is already set"
        );
        self.0.push((Cow::Borrowed(key), value));
    }

    /// Appends a field as read off the wire, sharing the name when the protocol knows
    /// it. No search for an earlier value: [`ExtFields::get`] finds the last one.
    pub fn insert_decoded(&mut self, key: &str, value: String) {
        let key = match known_name(key) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(key.to_string()),
        };
        self.0.push((key, value));
    }

    /// Fields held, counting a name a peer sent twice twice.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fields in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }
}

/// Equal when they hold the same fields, in any order (RocketMQ's header is a hash map,
/// and a JSON header comes back sorted by name).
impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Self, b: &Self| a.iter().all(|(k, _)| a.get(k) == b.get(k));
        same(self, other) && same(other, self)
    }
}

impl Eq for ExtFields {}

impl<K: Into<Cow<'static, str>>> FromIterator<(K, String)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, String)>>(iter: I) -> Self {
        let mut fields = ExtFields::new();
        for (k, v) in iter {
            fields.insert(k, v);
        }
        fields
    }
}

/// The protocol's name for `key` when it is one of the fields on every send, pull and
/// their responses.
fn known_name(key: &str) -> Option<&'static str> {
    macro_rules! names {
        ($($name:literal)*) => {
            match key {
                $($name => Some($name),)*
                _ => None,
            }
        };
    }
    names!(
        // SEND_MESSAGE_V2's one-letter names.
        "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n"
        "topic" "queueId" "queueOffset" "msgId" "producerGroup" "consumerGroup"
        "maxMsgNums" "sysFlag" "commitOffset" "suspendTimeoutMillis" "subscription"
        "subVersion" "expressionType" "nextBeginOffset" "minOffset" "maxOffset"
        "suggestWhichBrokerId" "MSG_REGION" "TRACE_ON"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_and_equality_ignores_order() {
        let mut a = ExtFields::new();
        a.insert("topic", "T".to_string());
        a.insert("queueId", "1".to_string());
        a.insert("topic", "U".to_string());
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("topic"), Some("U"));
        let mut b = ExtFields::new();
        b.insert_decoded("queueId", "1".to_string());
        b.insert_decoded("topic", "U".to_string());
        assert_eq!(a, b);
        b.insert_decoded("unknownField", "x".to_string());
        assert_ne!(a, b);
        assert_eq!(b.get("unknownField"), Some("x"));
        // A name sent twice: the last value counts, as in Java's HashMap.
        b.insert_decoded("topic", "V".to_string());
        assert_eq!(b.get("topic"), Some("V"));
        assert_eq!(b.iter().filter(|(k, _)| *k == "topic").count(), 2);
    }
}

//! `ExtFields`: a command's header fields (`extFields`), name → string value.
//!
//! Every send and pull carries about a dozen of them, built on one side and parsed on the
//! other, so their representation is on the hot path. A `Vec` searched linearly beats a
//! `BTreeMap` at this size (no nodes to allocate, no rebalancing), names written in
//! code or known to the protocol are kept as `&'static str` rather than copied, and the
//! values share one string: a header costs two allocations, not one or three per field.

use std::borrow::Cow;
use std::fmt::{Display, Write};
use std::ops::Range;

/// Names with the span of their value in one shared string: building or decoding a
/// header is one allocation for all its values (plus the name list), not one per value.
/// Replacing a value appends the new one and leaves the old bytes unused (headers are
/// short-lived; a field is replaced at most a few times).
#[derive(Clone, Debug, Default)]
pub struct ExtFields {
    /// Every value, back to back.
    values: String,
    fields: Vec<(Cow<'static, str>, Range<u32>)>,
}

impl ExtFields {
    pub fn new() -> Self {
        ExtFields::default()
    }

    /// Room for `n` fields of a typical size.
    pub fn with_capacity(n: usize) -> Self {
        ExtFields {
            values: String::with_capacity(n * 12),
            fields: Vec::with_capacity(n),
        }
    }

    /// The value of `key`; the last one when a peer sent the name twice (as Java's
    /// `HashMap` decodes it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, span)| self.value(span))
    }

    fn value(&self, span: &Range<u32>) -> &str {
        &self.values[span.start as usize..span.end as usize]
    }

    /// Appends `value` to the shared string and returns its span.
    fn store(&mut self, value: impl Display) -> Range<u32> {
        let start = self.values.len();
        write!(self.values, "{value}").expect("writing to a String cannot fail");
        span(start, self.values.len())
    }

    /// Appends a string to the shared string, as is, and returns its span.
    fn store_str(&mut self, value: &str) -> Range<u32> {
        let start = self.values.len();
        self.values.push_str(value);
        span(start, self.values.len())
    }

    /// Sets `key` to `value`, replacing an earlier value: keys stay unique, as in the
    /// map the other side decodes them into.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Display) {
        let key = key.into();
        let span = self.store(value);
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = span,
            None => self.fields.push((key, span)),
        }
    }

    /// Appends `key`, which the caller knows is not set yet (a header built field by
    /// field): no search, unlike [`ExtFields::insert`].
    pub fn push(&mut self, key: &'static str, value: impl Display) {
        debug_assert!(
            self.get(key).is_none(),
            "ExtFields::push of {key}, which is already set"
        );
        let span = self.store(value);
        self.fields.push((Cow::Borrowed(key), span));
    }

    /// [`ExtFields::push`] for a string: copied as is, without the formatter.
    pub fn push_str(&mut self, key: &'static str, value: &str) {
        debug_assert!(
            self.get(key).is_none(),
            "ExtFields::push_str of {key}, which is already set"
        );
        let span = self.store_str(value);
        self.fields.push((Cow::Borrowed(key), span));
    }

    /// [`ExtFields::push`] for an integer, by `itoa` (a send's header has eight: the
    /// formatter's generic path cost more than the rest of building the header).
    pub fn push_int(&mut self, key: &'static str, value: impl itoa::Integer) {
        self.push_str(key, itoa::Buffer::new().format(value));
    }

    /// Appends a field as read off the wire, sharing the name when the protocol knows
    /// it. No search for an earlier value: [`ExtFields::get`] finds the last one.
    pub fn insert_decoded(&mut self, key: &str, value: &str) {
        let key = match known_name(key) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(key.to_string()),
        };
        let span = self.store_str(value);
        self.fields.push((key, span));
    }

    /// Fields held, counting a name a peer sent twice twice.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Fields in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|(k, span)| (k.as_ref(), self.value(span)))
    }
}

/// A value's span. Values live in one frame's header (at most 16 MiB) or are built in
/// code, so an offset past `u32` is a bug, not input.
fn span(start: usize, end: usize) -> Range<u32> {
    let end = u32::try_from(end).expect("ext field values exceed 4 GiB");
    start as u32..end
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

impl<K: Into<Cow<'static, str>>, V: Display> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
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
        a.insert("topic", "T");
        a.insert("queueId", 1);
        a.insert("topic", "U");
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("topic"), Some("U"));
        let mut b = ExtFields::new();
        b.insert_decoded("queueId", "1");
        b.insert_decoded("topic", "U");
        assert_eq!(a, b);
        b.insert_decoded("unknownField", "x");
        assert_ne!(a, b);
        assert_eq!(b.get("unknownField"), Some("x"));
        // A name sent twice: the last value counts, as in Java's HashMap.
        b.insert_decoded("topic", "V");
        assert_eq!(b.get("topic"), Some("V"));
        assert_eq!(b.iter().filter(|(k, _)| *k == "topic").count(), 2);
    }
}

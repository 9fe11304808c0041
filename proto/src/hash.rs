//! Java's `String.hashCode`, as RocketMQ uses it for tag codes.
//!
//! RocketMQ stores `tags.hashCode()` in each ConsumeQueue unit and consumers send the
//! same codes in their subscription data, so the broker can filter without reading the
//! CommitLog. To interoperate with Java clients the hash must match Java bit for bit:
//! it runs over UTF-16 code units, not bytes.

/// `s.hashCode()` in Java, sign-extended to `i64` as RocketMQ's `tagsString2tagsCode` does.
pub fn java_string_hash(s: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    i64::from(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_values() {
        // Values computed with Java: "TagA".hashCode() etc.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Overflowing hash: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i64::from(i32::MIN));
    }
}

//! fastjson compatibility for remoting bodies.
//!
//! Java's name server serializes maps with numeric keys unquoted (`{0:"ip:port"}`), as
//! fastjson does, and Java, Go and Rust RocketMQ clients parse that form. Standard JSON
//! parsers do not, so bodies go through these two scanners: [`quote_numeric_keys`] before
//! parsing (accepting both forms) and [`unquote_numeric_keys`] after serializing
//! (producing what existing clients expect).

/// Rewrites `{0:"a",-1:"b"}` as `{"0":"a","-1":"b"}`; leaves strings and valid JSON alone.
pub fn quote_numeric_keys(input: &str) -> String {
    let bytes = input.as_bytes();
    // Only ASCII quotes are inserted, so the output stays valid UTF-8.
    let mut out = Vec::with_capacity(input.len() + 8);
    let mut i = 0;
    let mut in_string = false;
    let mut expect_key = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            out.push(c);
            if c == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 1;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                expect_key = false;
            }
            b'{' | b',' => expect_key = true,
            b'-' | b'0'..=b'9' if expect_key => {
                let mut end = i + 1;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                let mut after = end;
                while after < bytes.len() && bytes[after].is_ascii_whitespace() {
                    after += 1;
                }
                expect_key = false;
                if after < bytes.len() && bytes[after] == b':' {
                    out.push(b'"');
                    out.extend_from_slice(&bytes[i..end]);
                    out.push(b'"');
                    i = end;
                    continue;
                }
            }
            c if c.is_ascii_whitespace() => {}
            _ => expect_key = false,
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8(out).expect("only ASCII was inserted into UTF-8")
}

/// Rewrites object keys that are all digits from `"0":` to `0:`, as fastjson writes them.
pub fn unquote_numeric_keys(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut in_string = false;
    let mut expect_key = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\\' {
                out.push_str(&input[i..i + 2]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            if expect_key {
                // A key: unquote it if it is a (possibly negative) integer.
                let rest = &input[i + 1..];
                if let Some(close) = rest.find('"') {
                    let key = &rest[..close];
                    let digits = key.strip_prefix('-').unwrap_or(key);
                    let numeric = !digits.is_empty() && digits.bytes().all(|d| d.is_ascii_digit());
                    if numeric && rest[close + 1..].trim_start().starts_with(':') {
                        out.push_str(key);
                        i += close + 2;
                        expect_key = false;
                        continue;
                    }
                }
            }
            in_string = true;
            expect_key = false;
        } else if c == b'{' || c == b',' {
            expect_key = true;
        } else if !c.is_ascii_whitespace() {
            expect_key = false;
        }
        let ch = input[i..].chars().next().expect("valid UTF-8");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Whether `input` holds a map keyed by objects (`{{...}:...}`), which fastjson writes for
/// a Java map whose keys are objects (ConsumeStats' `offsetTable`, keyed by MessageQueue).
pub fn has_object_keys(input: &str) -> bool {
    let bytes = input.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'{' if !in_string => {
                let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if next == Some(&b'{') {
                    return true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Rewrites every map keyed by objects, `{{k1}:v1,{k2}:v2}` (not JSON), as a list of
/// pairs, `[[{k1},v1],[{k2},v2]]`, which a `Vec<(K, V)>` parses; leaves the rest alone.
pub fn object_keys_to_pairs(input: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Frame {
        Object,
        Array,
        /// A map keyed by objects, and where in an entry the scan is.
        Keyed(Entry),
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Entry {
        ExpectKey,
        InKey,
        AfterKey,
        InValue,
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len() + 16);
    let mut stack: Vec<Frame> = Vec::new();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\\' {
                out.push_str(&input[i..i + 2]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_string = false;
            }
            let ch = input[i..].chars().next().expect("valid UTF-8");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                out.push('"');
            }
            b'{' => {
                if let Some(Frame::Keyed(entry)) = stack.last_mut() {
                    if *entry == Entry::ExpectKey {
                        *entry = Entry::InKey;
                    }
                    out.push('{');
                    stack.push(Frame::Object);
                } else if bytes[i + 1..]
                    .iter()
                    .find(|c| !c.is_ascii_whitespace())
                    .is_some_and(|&n| n == b'{')
                {
                    out.push_str("[[");
                    stack.push(Frame::Keyed(Entry::ExpectKey));
                } else {
                    out.push('{');
                    stack.push(Frame::Object);
                }
            }
            b'}' => match stack.pop() {
                Some(Frame::Keyed(_)) => out.push_str("]]"),
                _ => {
                    out.push('}');
                    if let Some(Frame::Keyed(entry)) = stack.last_mut() {
                        if *entry == Entry::InKey {
                            *entry = Entry::AfterKey;
                        }
                    }
                }
            },
            b'[' => {
                out.push('[');
                stack.push(Frame::Array);
            }
            b']' => {
                out.push(']');
                stack.pop();
            }
            b':' => match stack.last_mut() {
                Some(Frame::Keyed(entry)) if *entry == Entry::AfterKey => {
                    *entry = Entry::InValue;
                    out.push(',');
                }
                _ => out.push(':'),
            },
            b',' => match stack.last_mut() {
                Some(Frame::Keyed(entry)) => {
                    *entry = Entry::ExpectKey;
                    out.push_str("],[");
                }
                _ => out.push(','),
            },
            _ => out.push(c as char),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_fastjson_keys_only_outside_strings() {
        let fast =
            r#"{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},"s":"{0:x}","n":[1,2]}"#;
        let quoted = quote_numeric_keys(fast);
        assert_eq!(
            quoted,
            r#"{"brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"},"s":"{0:x}","n":[1,2]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(v["brokerAddrs"]["1"], "127.0.0.1:10921");
        // Already-standard JSON passes through unchanged.
        assert_eq!(quote_numeric_keys(&quoted), quoted);
        assert_eq!(
            quote_numeric_keys(r#"{ -1 : "x", "é":"ü"}"#),
            r#"{ "-1" : "x", "é":"ü"}"#
        );
    }

    #[test]
    fn unquotes_numeric_keys_as_fastjson_writes_them() {
        let standard = r#"{"brokerAddrs":{"0":"a","12":"b"},"name":"0","x":{"k0":"1"}}"#;
        let fast = unquote_numeric_keys(standard);
        assert_eq!(
            fast,
            r#"{"brokerAddrs":{0:"a",12:"b"},"name":"0","x":{"k0":"1"}}"#
        );
        assert_eq!(quote_numeric_keys(&fast), standard);
    }

    /// As Apache RocketMQ's broker writes GET_CONSUME_STATS (fastjson, object keys).
    #[test]
    fn object_keyed_maps_become_lists_of_pairs() {
        let java = r#"{"consumeTps":0.3,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":1,"consumerOffset":1},{"brokerName":"b","queueId":1,"topic":"T:{x}"}:{"brokerOffset":2,"consumerOffset":0}},"s":"{{not:a map}}"}"#;
        assert!(has_object_keys(java));
        let pairs = object_keys_to_pairs(java);
        assert_eq!(
            pairs,
            r#"{"consumeTps":0.3,"offsetTable":[[{"brokerName":"b","queueId":0,"topic":"T"},{"brokerOffset":1,"consumerOffset":1}],[{"brokerName":"b","queueId":1,"topic":"T:{x}"},{"brokerOffset":2,"consumerOffset":0}]],"s":"{{not:a map}}"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&pairs).unwrap();
        assert_eq!(v["offsetTable"][1][0]["queueId"], 1);
        // Plain JSON is left alone, strings that look like maps too.
        let plain = r#"{"a":{"b":[1,{"c":"{{"}]},"d":{}}"#;
        assert!(!has_object_keys(plain));
        assert_eq!(object_keys_to_pairs(plain), plain);
    }
}

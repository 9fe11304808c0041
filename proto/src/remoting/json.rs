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
}

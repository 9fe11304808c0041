//! Name-server discovery over HTTP, as RocketMQ's clients do it: with no name server
//! addresses configured, a client GETs `http://{domain}:8080/rocketmq/nsaddr` (no `:8080`
//! when the domain names a port, RocketMQ's rule) and reads `host:port;host:port`.
//! A full `http://` URL is taken as it is (as the Go client's `NewHttpResolver`).
//!
//! A plain HTTP/1.0 GET over the runtime's TCP, as the C++ client does, so it also runs
//! under the simulator; the parsing is pure.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ClientError, Result};

/// RocketMQ's default subgroup (`rocketmq.namesrv.domain.subgroup`).
pub const DEFAULT_SUBGROUP: &str = "nsaddr";
/// How often a client asks again (RocketMQ: every 2 minutes).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(120);
/// Longest an address server's answer may be.
const RESPONSE_MAX_BYTES: usize = 64 * 1024;

/// The address server's URL for `domain`, split into (host:port, path).
pub fn endpoint(domain: &str) -> Result<(String, String)> {
    let invalid = |why: &str| ClientError::Invalid(format!("name server domain {domain:?}: {why}"));
    if let Some(rest) = domain.strip_prefix("http://") {
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let host = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        return Ok((host, path.to_string()));
    }
    if domain.contains("://") {
        return Err(invalid("only http:// is supported"));
    }
    if domain.is_empty() || domain.contains('/') {
        return Err(invalid("expected host or host:port, or an http:// URL"));
    }
    let host = if domain.contains(':') {
        domain.to_string()
    } else {
        format!("{domain}:8080")
    };
    Ok((host, format!("/rocketmq/{DEFAULT_SUBGROUP}")))
}

/// The name server addresses in an address server's HTTP response: a 200 whose body,
/// trimmed and cut at its first line break, is `host:port;host:port`.
pub fn parse_response(response: &[u8], url: &str) -> Result<Vec<String>> {
    let bad = |why: String| ClientError::Invalid(format!("address server {url}: {why}"));
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("not an HTTP response".into()))?;
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(bad(format!("answered {status:?}")));
    }
    let line = body.trim().lines().next().unwrap_or_default().trim();
    let addrs = crate::config::parse_addrs(line);
    if addrs.is_empty() {
        return Err(bad("answered no addresses".into()));
    }
    for addr in &addrs {
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(bad(format!("{addr:?} is not host:port")));
        }
    }
    Ok(addrs)
}

/// Asks the address server for `domain` (see the module doc), within `timeout`.
pub async fn fetch(domain: &str, timeout: Duration) -> Result<Vec<String>> {
    let (host, path) = endpoint(domain)?;
    let url = format!("http://{host}{path}");
    let io = |e: std::io::Error| ClientError::Invalid(format!("address server {url}: {e}"));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(host.as_str())
            .await
            .map_err(io)?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nClient-Version: V5_3_1\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut response = Vec::new();
        stream
            .take(RESPONSE_MAX_BYTES as u64)
            .read_to_end(&mut response)
            .await
            .map_err(io)?;
        parse_response(&response, &url)
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        ClientError::Invalid(format!("address server {url}: no answer in {timeout:?}"))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_map_to_rocketmqs_urls() {
        let ep = |d: &str| endpoint(d).unwrap();
        assert_eq!(
            ep("jmenv.tbsite.net"),
            ("jmenv.tbsite.net:8080".into(), "/rocketmq/nsaddr".into())
        );
        assert_eq!(
            ep("127.0.0.1:8081"),
            ("127.0.0.1:8081".into(), "/rocketmq/nsaddr".into())
        );
        assert_eq!(
            ep("http://a.example/rocketmq/nsaddr-unit?nofix=1"),
            (
                "a.example:80".into(),
                "/rocketmq/nsaddr-unit?nofix=1".into()
            )
        );
        assert!(endpoint("https://a.example/x")
            .unwrap_err()
            .to_string()
            .contains("http://"));
        assert!(endpoint("").is_err());
    }

    #[test]
    fn responses_are_read_as_rocketmqs_clients_read_them() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n 10.0.0.1:9876;10.0.0.2:9876\nignored\n";
        assert_eq!(
            parse_response(ok, "u").unwrap(),
            vec!["10.0.0.1:9876", "10.0.0.2:9876"]
        );
        let missing = b"HTTP/1.1 404 Not Found\r\n\r\n";
        assert!(parse_response(missing, "u")
            .unwrap_err()
            .to_string()
            .contains("404"));
        let empty = b"HTTP/1.1 200 OK\r\n\r\n\n";
        assert!(parse_response(empty, "u")
            .unwrap_err()
            .to_string()
            .contains("no addresses"));
        let bad = b"HTTP/1.1 200 OK\r\n\r\nnot-an-address";
        assert!(parse_response(bad, "u")
            .unwrap_err()
            .to_string()
            .contains("host:port"));
    }
}

//! What the binaries write to a log that is not a terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// A log redirected to a file or pipe holds plain text, no ANSI colour codes.
#[test]
fn a_redirected_log_has_no_colour_codes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq-namesrv"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("raftmq-namesrv starts");
    let mut line = String::new();
    let read = BufReader::new(child.stderr.take().unwrap()).read_line(&mut line);
    child.kill().unwrap();
    child.wait().unwrap();
    read.expect("a log line");
    assert!(!line.trim().is_empty(), "the name server logged nothing");
    assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
}

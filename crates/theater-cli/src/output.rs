//! How the CLI speaks: one `error:` line per failure, status lines on stderr.

use std::io::IsTerminal;

pub fn error(message: &str) {
    let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;31merror\x1b[0m: {first}");
    } else {
        eprintln!("error: {first}");
    }
    for line in rest.lines() {
        eprintln!("  {line}");
    }
}

pub fn status(message: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;32mtheater\x1b[0m: {message}");
    } else {
        eprintln!("theater: {message}");
    }
}

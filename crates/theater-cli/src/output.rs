//! How the CLI speaks: one `error:` line per failure, status lines on stderr. Messages may
//! carry text from guests or chain files, so control characters are escaped before they reach
//! the terminal.

use std::io::IsTerminal;

use theater::describe::escape;

pub fn error(message: &str) {
    let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
    let first = escape(first);
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;31merror\x1b[0m: {first}");
    } else {
        eprintln!("error: {first}");
    }
    for line in rest.lines() {
        eprintln!("  {}", escape(line));
    }
}

pub fn status(message: &str) {
    let message = escape(message);
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;32mtheater\x1b[0m: {message}");
    } else {
        eprintln!("theater: {message}");
    }
}

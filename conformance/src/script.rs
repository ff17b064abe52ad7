//! Lexical and line-level parsing of `.def` scripts (FORMAT.md §1–§2).
//!
//! A script is a sequence of bytes split on LF. One trailing CR is stripped
//! from each line; empty lines and lines starting with `#` are skipped. Every
//! other line must start with `i`, `e`, `I` or `E`, optionally followed by a
//! single-digit connection id **and a comma**; otherwise the connection id is
//! 1 and the payload starts right after the command byte.

use std::fmt;

/// The command byte at the start of a script line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `i`: runner-initiated action (`CONNECT` / `DISCONNECT`).
    Initiate,
    /// `e`: expected action (`DISCONNECT`; `CONNECT` is a no-op in initiator mode).
    ExpectAction,
    /// `I`: send a FIX message (or raw bytes) to the acceptor.
    Send,
    /// `E`: read the next message from the acceptor and compare it.
    Expect,
}

impl Command {
    fn from_byte(b: u8) -> Option<Command> {
        match b {
            b'i' => Some(Command::Initiate),
            b'e' => Some(Command::ExpectAction),
            b'I' => Some(Command::Send),
            b'E' => Some(Command::Expect),
            _ => None,
        }
    }

    /// The command byte as written in scripts.
    pub fn as_char(self) -> char {
        match self {
            Command::Initiate => 'i',
            Command::ExpectAction => 'e',
            Command::Send => 'I',
            Command::Expect => 'E',
        }
    }
}

/// One command line of a script, before macro expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLine {
    /// 1-based line number in the file.
    pub number: usize,
    /// The command.
    pub command: Command,
    /// Connection id (0–9; 1 when the line has no `N,` prefix).
    pub conn: u8,
    /// The raw payload (after the command byte and optional `N,` prefix).
    pub payload: Vec<u8>,
}

/// The execution mode of a script, decided by its first `CONNECT` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// First match is `^i\d*,?CONNECT`: the runner connects to the acceptor.
    Initiator,
    /// First match is `^e\d*,?CONNECT`: the runner would listen (client tests).
    Acceptor,
}

/// A syntax error: a non-comment, non-empty line with an unknown command byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// Human-readable description.
    pub reason: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for SyntaxError {}

/// Splits a script into lines (LF separated, one trailing CR stripped),
/// yielding `(1-based number, bytes)`.
pub fn split_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // A final LF produces one empty trailing element which is not a line.
    if bytes.ends_with(b"\n") {
        parts.pop();
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
}

/// Parses one line. Returns `Ok(None)` for empty and comment lines.
///
/// The connection id rule: if the line matches `^[IEie][0-9],` the digit is
/// the id and the payload starts at offset 3; otherwise the id is 1 and the
/// payload starts at offset 1 (so `I35=0|8=…` is id 1, payload `35=0|8=…`).
pub fn parse_line(number: usize, line: &[u8]) -> Result<Option<ScriptLine>, SyntaxError> {
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let command = Command::from_byte(line[0]).ok_or_else(|| SyntaxError {
        line: number,
        reason: format!(
            "syntax error: line must start with i, e, I or E: {}",
            crate::show_soh(line)
        ),
    })?;
    let (conn, payload) = if line.len() >= 3 && line[1].is_ascii_digit() && line[2] == b',' {
        (line[1] - b'0', &line[3..])
    } else {
        (1, &line[1..])
    };
    Ok(Some(ScriptLine {
        number,
        command,
        conn,
        payload: payload.to_vec(),
    }))
}

/// Parses a whole script into its command lines, failing on the first
/// syntax error.
pub fn parse_script(bytes: &[u8]) -> Result<Vec<ScriptLine>, SyntaxError> {
    let mut out = Vec::new();
    for (number, line) in split_lines(bytes) {
        if let Some(l) = parse_line(number, line)? {
            out.push(l);
        }
    }
    Ok(out)
}

/// Detects the script mode: the first line matching `^i\d*,?CONNECT` or
/// `^e\d*,?CONNECT` decides. `None` if there is no such line.
pub fn detect_mode(bytes: &[u8]) -> Option<Mode> {
    for (_, line) in split_lines(bytes) {
        let mode = match line.first() {
            Some(b'i') => Mode::Initiator,
            Some(b'e') => Mode::Acceptor,
            _ => continue,
        };
        let mut rest = &line[1..];
        while rest.first().is_some_and(u8::is_ascii_digit) {
            rest = &rest[1..];
        }
        if let Some(r) = rest.strip_prefix(b",") {
            rest = r;
        }
        if rest.starts_with(b"CONNECT") {
            return Some(mode);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Option<ScriptLine> {
        parse_line(7, &line.replace('|', "\x01").into_bytes()).unwrap()
    }

    #[test]
    fn comments_and_empty_lines_are_skipped() {
        assert_eq!(p(""), None);
        assert_eq!(p("# comment"), None);
        assert_eq!(p("#"), None);
    }

    #[test]
    fn connection_id_requires_digit_and_comma() {
        let l = p("i1,CONNECT").unwrap();
        assert_eq!(
            (l.command, l.conn, &l.payload[..]),
            (Command::Initiate, 1, &b"CONNECT"[..])
        );
        let l = p("iCONNECT").unwrap();
        assert_eq!((l.conn, &l.payload[..]), (1, &b"CONNECT"[..]));
        let l = p("e2,DISCONNECT").unwrap();
        assert_eq!(
            (l.command, l.conn, &l.payload[..]),
            (Command::ExpectAction, 2, &b"DISCONNECT"[..])
        );
        let l = p("E0,8=FIX.4.4|").unwrap();
        assert_eq!(
            (l.command, l.conn, &l.payload[..]),
            (Command::Expect, 0, &b"8=FIX.4.4\x01"[..])
        );
        let l = p("I2,8=FIX.4.4|35=A|").unwrap();
        assert_eq!((l.command, l.conn), (Command::Send, 2));
        assert_eq!(l.payload, b"8=FIX.4.4\x0135=A\x01");
    }

    #[test]
    fn digit_without_comma_is_payload() {
        // The 2t_FirstThreeFieldsOutOfOrder case.
        let l = p("I35=0|8=FIX.4.4|9=29|").unwrap();
        assert_eq!(l.command, Command::Send);
        assert_eq!(l.conn, 1);
        assert_eq!(l.payload, b"35=0\x018=FIX.4.4\x019=29\x01");
        // Multi-digit ids are not ids.
        let l = p("I12,8=FIX.4.4|").unwrap();
        assert_eq!(l.conn, 1);
        assert_eq!(l.payload, b"12,8=FIX.4.4\x01");
        // Bare command byte: empty payload, connection 1.
        let l = p("E").unwrap();
        assert_eq!((l.conn, l.payload.len()), (1, 0));
    }

    #[test]
    fn unknown_command_and_whitespace_lines_are_syntax_errors() {
        let e = parse_line(3, b"X8=FIX.4.4").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse_line(4, b"   ").is_err());
        assert!(parse_line(4, b" #x").is_err());
    }

    #[test]
    fn lines_split_on_lf_with_cr_stripped_and_numbered() {
        let s = b"# c\r\niCONNECT\n\nE8=FIX.4.4\x01\r\neDISCONNECT";
        let lines = parse_script(s).unwrap();
        let nums: Vec<usize> = lines.iter().map(|l| l.number).collect();
        assert_eq!(nums, vec![2, 4, 5]);
        assert_eq!(lines[1].payload, b"8=FIX.4.4\x01");
        assert_eq!(lines[2].payload, b"DISCONNECT");
        let with_final_lf = parse_script(b"iCONNECT\n").unwrap();
        assert_eq!(with_final_lf.len(), 1);
        let err = parse_script(b"iCONNECT\n\nfoo\n").unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn mode_detection() {
        assert_eq!(detect_mode(b"# x\niCONNECT\n"), Some(Mode::Initiator));
        assert_eq!(detect_mode(b"i12,CONNECT\n"), Some(Mode::Initiator));
        assert_eq!(detect_mode(b"e1,CONNECT\niCONNECT"), Some(Mode::Acceptor));
        assert_eq!(detect_mode(b"eDISCONNECT\nI8=FIX.4.4"), None);
    }
}

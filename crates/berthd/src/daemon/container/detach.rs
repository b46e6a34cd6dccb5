//! Detach keys (`--detach-keys`, default ctrl-p,ctrl-q): parsing Docker's spelling,
//! and scanning an attach's input for the sequence, holding back a partial match
//! the way Docker's escape proxy does.

use crate::error::{ApiError, ApiResult};

pub const DEFAULT: &[u8] = &[16, 17];

/// Parses "ctrl-p,ctrl-q" / "a,ctrl-@" into bytes.
pub fn parse(spec: &str) -> ApiResult<Vec<u8>> {
    let bad = || ApiError::invalid(format!("Invalid detach keys ({spec}) provided"));
    let mut out = Vec::new();
    for key in spec.split(',') {
        let key = key.trim();
        let b = match key.strip_prefix("ctrl-") {
            Some(rest) if rest.len() == 1 => {
                let c = rest.as_bytes()[0].to_ascii_lowercase();
                match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                }
            }
            None if key.len() == 1 => key.as_bytes()[0],
            _ => return Err(bad()),
        };
        out.push(b);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

pub struct EscapeProxy {
    keys: Vec<u8>,
    matched: usize,
}

impl EscapeProxy {
    pub fn new(keys: Vec<u8>) -> EscapeProxy {
        EscapeProxy { keys, matched: 0 }
    }

    /// Returns the bytes to pass on, and whether the whole sequence was typed (the
    /// sequence itself is never passed on; bytes after it are dropped).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                // A broken partial match is released as typed.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockers_spelling() {
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), DEFAULT);
        assert_eq!(parse("a,ctrl-@,ctrl-_").unwrap(), [b'a', 0, 31]);
        assert_eq!(
            parse("ctrl-pq").unwrap_err().message,
            "Invalid detach keys (ctrl-pq) provided"
        );
        assert!(parse("").is_err());
    }

    #[test]
    fn holds_partial_matches_and_detaches() {
        let mut p = EscapeProxy::new(DEFAULT.to_vec());
        assert_eq!(p.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(p.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(p.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(p.feed(b"\x11after"), (vec![], true));
    }
}

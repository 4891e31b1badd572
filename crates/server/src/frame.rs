//! Reading requests: RESP multibulk arrays of bulk strings, and inline
//! commands, as clients send them. Limits are checked before anything is
//! allocated, and a request's arguments are zero-copy slices of the read
//! buffer.

use bytes::{Bytes, BytesMut};
use memchr::memchr;

/// Longest inline command, and longest `*N` / `$N` header line, as Redis.
pub const INLINE_MAX: usize = 64 * 1024;
/// Most arguments in one request.
pub const MAX_ARGS: i64 = 1024 * 1024;
/// Before AUTH, requests are kept small, as Redis keeps them: a client
/// that has not authenticated cannot make the server buffer much.
pub const UNAUTH_MAX_ARGS: i64 = 10;
pub const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// The limits a request is parsed under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk: i64,
    pub max_args: i64,
}

impl Limits {
    pub fn for_client(authenticated: bool, proto_max_bulk_len: u64) -> Limits {
        if authenticated {
            Limits {
                max_bulk: proto_max_bulk_len.min(i64::MAX as u64) as i64,
                max_args: MAX_ARGS,
            }
        } else {
            Limits {
                max_bulk: UNAUTH_MAX_BULK,
                max_args: UNAUTH_MAX_ARGS,
            }
        }
    }
}

/// A malformed request. The text is Redis's, after `-ERR Protocol error: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl ProtocolError {
    pub fn reply_text(&self) -> String {
        format!("Protocol error: {}", self.0)
    }
}

/// What the start of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request of `len` bytes, its arguments at these ranges.
    Request {
        len: usize,
        args: Vec<(usize, usize)>,
    },
    /// An inline command of `len` bytes, its words unquoted.
    Inline { len: usize, args: Vec<Vec<u8>> },
    /// A request to skip (an empty line, `*0`): `len` bytes.
    Empty(usize),
    /// Not enough bytes yet; at least `need` in all, if known.
    Incomplete { need: Option<usize> },
}

/// Parses the request at the start of `buf`.
pub fn parse(buf: &[u8], limits: Limits) -> Result<Parsed, ProtocolError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete { need: None }),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf),
    }
}

/// Takes the request `parse` found off the front of `buf`: its arguments
/// share the buffer's memory.
pub fn take(buf: &mut BytesMut, len: usize, args: &[(usize, usize)]) -> Vec<Bytes> {
    let frame = buf.split_to(len).freeze();
    args.iter().map(|&(s, e)| frame.slice(s..e)).collect()
}

/// The line starting at `from`, without its CRLF, and where the next
/// starts. None if no CRLF has arrived yet.
fn line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = &buf[from..];
    let mut at = 0;
    loop {
        let nl = memchr(b'\r', &rest[at..])? + at;
        if nl + 1 >= rest.len() {
            return None;
        }
        if rest[nl + 1] == b'\n' {
            return Some((from + nl, from + nl + 2));
        }
        at = nl + 1;
    }
}

/// A decimal integer as Redis's string2ll reads it: an optional minus,
/// digits, no leading zeros, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

fn parse_multibulk(buf: &[u8], limits: Limits) -> Result<Parsed, ProtocolError> {
    let Some((end, mut pos)) = line(buf, 0) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError("too big mbulk count string"));
        }
        return Ok(Parsed::Incomplete { need: None });
    };
    let count = parse_i64(&buf[1..end]).ok_or(ProtocolError("invalid multibulk length"))?;
    if count > limits.max_args {
        return Err(ProtocolError("invalid multibulk length"));
    }
    if count <= 0 {
        return Ok(Parsed::Empty(pos));
    }
    // Capacity for the ranges is bounded by what has arrived, not by what
    // the header claims.
    let mut args = Vec::with_capacity((count as usize).min(buf.len() / 4 + 1));
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(Parsed::Incomplete { need: None }),
            Some(b'$') => {}
            Some(_) => return Err(ProtocolError("expected '$'")),
        }
        let Some((end, start)) = line(buf, pos) else {
            if buf.len() - pos > INLINE_MAX {
                return Err(ProtocolError("too big bulk count string"));
            }
            return Ok(Parsed::Incomplete { need: None });
        };
        let len = parse_i64(&buf[pos + 1..end]).ok_or(ProtocolError("invalid bulk length"))?;
        if len < 0 || len > limits.max_bulk {
            return Err(ProtocolError("invalid bulk length"));
        }
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(Parsed::Incomplete {
                need: Some(stop + 2),
            });
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError("expected CRLF after the bulk string"));
        }
        args.push((start, stop));
        pos = stop + 2;
    }
    Ok(Parsed::Request { len: pos, args })
}

fn parse_inline(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError("too big inline request"));
        }
        return Ok(Parsed::Incomplete { need: None });
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let args = split_inline(&buf[..end]).ok_or(ProtocolError("unbalanced quotes in request"))?;
    if args.is_empty() {
        return Ok(Parsed::Empty(nl + 1));
    }
    Ok(Parsed::Inline { len: nl + 1, args })
}

/// Splits an inline command into words as redis-cli and Redis do: spaces
/// separate, double quotes take escapes (`\n`, `\xHH`...), single quotes
/// take none but `\'`. None on an unbalanced quote.
pub fn split_inline(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut word = Vec::new();
        // The quote the word is inside, if any.
        let mut quote: Option<u8> = None;
        loop {
            let Some(q) = quote else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    c @ (b'"' | b'\'') => quote = Some(c),
                    c => word.push(c),
                }
                i += 1;
                continue;
            };
            if i >= n {
                return None;
            }
            let c = line[i];
            if q == b'"' && c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                    word.push(h * 16 + l);
                    i += 4;
                    continue;
                }
            }
            if q == b'"' && c == b'\\' && i + 1 < n {
                word.push(match line[i + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 8,
                    b'a' => 7,
                    other => other,
                });
                i += 2;
                continue;
            }
            if q == b'\'' && c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                word.push(b'\'');
                i += 2;
                continue;
            }
            if c == q {
                // A closing quote must be followed by a space or the end.
                if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                    return None;
                }
                i += 1;
                break;
            }
            word.push(c);
            i += 1;
        }
        out.push(word);
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPEN: Limits = Limits {
        max_bulk: 512 << 20,
        max_args: MAX_ARGS,
    };

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    type Requests = Vec<Vec<Vec<u8>>>;

    /// Every request in `buf`, parsed as the connection parses them, and
    /// the bytes left over.
    fn parse_all(buf: &[u8]) -> Result<(Requests, usize), ProtocolError> {
        let mut b = BytesMut::from(buf);
        let mut out = Vec::new();
        loop {
            match parse(&b, OPEN)? {
                Parsed::Request { len, args } => out.push(
                    take(&mut b, len, &args)
                        .iter()
                        .map(|a| a.to_vec())
                        .collect(),
                ),
                Parsed::Inline { len, args } => {
                    b.advance_to(len);
                    out.push(args);
                }
                Parsed::Empty(len) => b.advance_to(len),
                Parsed::Incomplete { .. } => return Ok((out, b.len())),
            }
        }
    }

    trait AdvanceTo {
        fn advance_to(&mut self, n: usize);
    }
    impl AdvanceTo for BytesMut {
        fn advance_to(&mut self, n: usize) {
            let _ = self.split_to(n);
        }
    }

    fn request() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)
    }

    proptest! {
        #[test]
        fn requests_round_trip(reqs in proptest::collection::vec(request(), 1..8)) {
            let buf: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
            let (got, left) = parse_all(&buf).unwrap();
            prop_assert_eq!(got, reqs);
            prop_assert_eq!(left, 0);
        }

        #[test]
        fn every_split_point_gives_the_same_requests(reqs in proptest::collection::vec(request(), 1..5)) {
            let buf: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
            for cut in 0..=buf.len() {
                // What the first read had, then the rest appended.
                let (first, left) = parse_all(&buf[..cut]).unwrap();
                let consumed = cut - left;
                let (second, rest) = parse_all(&buf[consumed..]).unwrap();
                prop_assert_eq!(rest, 0);
                let all: Vec<_> = first.into_iter().chain(second).collect();
                prop_assert_eq!(&all, &reqs);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all(&bytes);
        }

        #[test]
        fn mangled_requests_never_panic(req in request(), at in any::<usize>(), byte in any::<u8>()) {
            let mut buf = encode(&req);
            let i = at % buf.len();
            buf[i] = byte;
            let _ = parse_all(&buf);
        }
    }

    #[test]
    fn malformed_headers_are_refused_with_redis_words() {
        let err = |b: &[u8]| parse(b, OPEN).unwrap_err().0;
        assert_eq!(err(b"*x\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*99999999\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1\r\n+a\r\n"), "expected '$'");
        assert_eq!(err(b"*1\r\n$-5\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$99999999999\r\n"), "invalid bulk length");
        assert_eq!(
            err(b"*1\r\n$1\r\nab\r\n"),
            "expected CRLF after the bulk string"
        );
        assert_eq!(err(b"SET \"a b\r\n"), "unbalanced quotes in request");
        let long = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(err(&long), "too big inline request");
    }

    #[test]
    fn limits_apply_before_allocation() {
        // A header claiming a huge bulk is refused without waiting for it.
        let tight = Limits {
            max_bulk: 10,
            max_args: 3,
        };
        assert!(parse(b"*1\r\n$11\r\n", tight).is_err());
        assert!(parse(b"*4\r\n", tight).is_err());
        assert_eq!(
            parse(b"*1\r\n$10\r\n", tight).unwrap(),
            Parsed::Incomplete { need: Some(21) }
        );
    }

    #[test]
    fn inline_commands_split_as_redis_cli_does() {
        let words = |s: &str| split_inline(s.as_bytes()).unwrap();
        assert_eq!(
            words("SET a b"),
            vec![b"SET".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            words("SET  \"a b\" 'c d'"),
            vec![b"SET".to_vec(), b"a b".to_vec(), b"c d".to_vec()]
        );
        assert_eq!(
            words("ECHO \"\\x41\\n\""),
            vec![b"ECHO".to_vec(), b"A\n".to_vec()]
        );
        assert!(words("   ").is_empty());
        assert!(split_inline(b"ECHO \"abc\"x").is_none());
    }

    #[test]
    fn integers_parse_as_string2ll_does() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"9223372036854775808",
            b"1e3",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

//! Writing replies, in RESP2 or RESP3 as the client chose with HELLO,
//! straight into the connection's output buffer.

use bytes::{BufMut, BytesMut};

/// A connection's pending output.
pub struct Out {
    pub buf: BytesMut,
    pub resp3: bool,
}

impl Out {
    pub fn new() -> Out {
        Out {
            buf: BytesMut::with_capacity(16 * 1024),
            resp3: false,
        }
    }

    fn len_line(&mut self, prefix: u8, n: i64) {
        let mut b = itoa::Buffer::new();
        self.buf.put_u8(prefix);
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.buf.put_u8(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply; `msg` starts with its code (`ERR`, `WRONGTYPE`...).
    /// Line breaks would end the reply early, so they become spaces.
    pub fn error(&mut self, msg: &str) {
        self.buf.put_u8(b'-');
        for &c in msg.as_bytes() {
            self.buf
                .put_u8(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn err(&mut self, msg: &str) {
        self.error(&format!("ERR {msg}"));
    }

    pub fn int(&mut self, n: i64) {
        self.len_line(b':', n);
    }

    pub fn bulk(&mut self, b: &[u8]) {
        self.len_line(b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// A null where Redis answers with a null array in RESP2.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    pub fn array(&mut self, n: usize) {
        self.len_line(b'*', n as i64);
    }

    pub fn set(&mut self, n: usize) {
        self.len_line(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A map of `n` pairs: `%` in RESP3, a flat array in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.len_line(b'%', n as i64);
        } else {
            self.len_line(b'*', 2 * n as i64);
        }
    }

    /// An out-of-band message (pub/sub): `>` in RESP3.
    pub fn push(&mut self, n: usize) {
        self.len_line(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// Text such as INFO: a verbatim string in RESP3, a bulk in RESP2.
    pub fn verbatim(&mut self, text: &str) {
        if self.resp3 {
            self.len_line(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    pub fn bulks<I, B>(&mut self, items: I)
    where
        I: ExactSizeIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.array(items.len());
        for b in items {
            self.bulk(b.as_ref());
        }
    }
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

/// A float as Redis prints one (INCRBYFLOAT): no exponent, no trailing
/// zeros. Redis computes in long double and strata in double, so the
/// last digits of results beyond 2^53 or with more than 15 significant
/// digits may differ.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.abs() >= 9_007_199_254_740_992.0 {
        // Beyond 2^53 every double is an integer: all its digits, as
        // Redis's fixed-point printing gives them.
        return format!("{v:.0}");
    }
    format!("{v}")
}

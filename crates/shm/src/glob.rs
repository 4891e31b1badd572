//! Redis-style glob patterns over key bytes: `*` any run, `?` one byte,
//! `[abc]`, `[a-z]` and `[^a]` sets, and `\x` for a literal `x`. Used to
//! filter keys (`strata keys PATTERN`, and the server's KEYS and SCAN).

/// Whether `key` matches `pattern` as Redis's KEYS would match it.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    // Backtracking over the last `*` only: linear for patterns without
    // nested stars, and never exponential.
    let (mut p, mut k) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, k));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'[' => match class(pattern, p, key[k]) {
                    Some((true, next)) => {
                        p = next;
                        k += 1;
                        continue;
                    }
                    Some((false, _)) => {}
                    None if key[k] == b'[' => {
                        p += 1;
                        k += 1;
                        continue;
                    }
                    None => {}
                },
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == key[k] => {
                    p += 2;
                    k += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == key[k] => {
                    p += 1;
                    k += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sk)) => {
                star = Some((sp, sk + 1));
                p = sp + 1;
                k = sk + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches byte `c` against the set opening at `pattern[open]` (`[`).
/// Some((matched, index after the set)); None if the set never closes,
/// in which case `[` is a literal.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let b = *pattern.get(i)?;
        if b == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if b == b'\\' {
            let lit = *pattern.get(i + 1)?;
            hit |= lit == c;
            i += 2;
        } else if pattern.get(i + 1) == Some(&b'-')
            && pattern.get(i + 2).is_some_and(|&e| e != b']')
        {
            let (lo, hi) = (b.min(pattern[i + 2]), b.max(pattern[i + 2]));
            hit |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            hit |= b == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn matches_as_redis_does() {
        assert!(m(b"*", b""));
        assert!(m(b"*", b"anything"));
        assert!(m(b"emb:*", b"emb:42"));
        assert!(!m(b"emb:*", b"user:1"));
        assert!(m(b"h?llo", b"hello"));
        assert!(!m(b"h?llo", b"hllo"));
        assert!(m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo"));
        assert!(!m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hbllo"));
        assert!(!m(b"h[a-b]llo", b"hcllo"));
        assert!(m(b"a\\*b", b"a*b"));
        assert!(!m(b"a\\*b", b"axb"));
        assert!(m(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!m(b"*a*b*c", b"xxaxxbxxcxx"));
        assert!(m(b"[", b"["), "an unclosed set is a literal");
        assert!(m(b"k\xff*", b"k\xff\x00"), "any bytes, not only UTF-8");
    }
}

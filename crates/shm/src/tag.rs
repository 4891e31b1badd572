//! The optional type tag stored with a value: a NumPy-style dtype string
//! (such as `<f4`) and a shape, so arrays round-trip without the caller
//! repeating them.

/// dtype and shape of a stored array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeTag {
    pub dtype: String,
    pub shape: Vec<u64>,
}

pub const MAX_DTYPE: usize = 64;
pub const MAX_NDIM: usize = 32;
/// The longest encoded tag.
pub const MAX_TAG_BYTES: usize = 2 + MAX_DTYPE + MAX_NDIM * 8;

impl TypeTag {
    pub fn new(dtype: impl Into<String>, shape: Vec<u64>) -> Self {
        TypeTag {
            dtype: dtype.into(),
            shape,
        }
    }

    /// `[dtype length: u8][dtype][ndim: u8][ndim x u64 little-endian]`.
    pub fn encode(&self) -> Result<Vec<u8>, &'static str> {
        if self.dtype.len() > MAX_DTYPE {
            return Err("dtype longer than 64 bytes");
        }
        if self.shape.len() > MAX_NDIM {
            return Err("more than 32 dimensions");
        }
        let mut out = Vec::with_capacity(2 + self.dtype.len() + 8 * self.shape.len());
        out.push(self.dtype.len() as u8);
        out.extend_from_slice(self.dtype.as_bytes());
        out.push(self.shape.len() as u8);
        for d in &self.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        Ok(out)
    }

    /// Decodes a tag; None if the bytes are not a well-formed tag.
    pub fn decode(bytes: &[u8]) -> Option<TypeTag> {
        let (dtype, dims) = split_tag(bytes)?;
        Some(TypeTag {
            dtype: dtype.to_string(),
            shape: dims.collect(),
        })
    }
}

/// The dtype and dimensions of an encoded tag, without allocating: the
/// read path of the Python package decodes one per call.
pub fn split_tag(bytes: &[u8]) -> Option<(&str, impl ExactSizeIterator<Item = u64> + '_)> {
    let (&dlen, rest) = bytes.split_first()?;
    let dlen = dlen as usize;
    if dlen > MAX_DTYPE || rest.len() < dlen + 1 {
        return None;
    }
    let dtype = std::str::from_utf8(&rest[..dlen]).ok()?;
    let ndim = rest[dlen] as usize;
    let dims = &rest[dlen + 1..];
    if ndim > MAX_NDIM || dims.len() != ndim * 8 {
        return None;
    }
    let dims = dims
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    Some((dtype, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            TypeTag::new("<f4", vec![1024]),
            TypeTag::new("|b1", vec![]),
            TypeTag::new("<c8", vec![3, 0, 7]),
        ] {
            assert_eq!(TypeTag::decode(&t.encode().unwrap()), Some(t));
        }
        assert_eq!(TypeTag::decode(&[]), None);
        assert_eq!(TypeTag::decode(&[5, b'a']), None);
        assert_eq!(TypeTag::decode(&[0, 1, 0]), None);
    }
}

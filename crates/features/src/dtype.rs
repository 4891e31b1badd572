//! The element types a field may have, with their NumPy names.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    F32,
    F64,
    /// Fixed-length bytes (NumPy `S<n>`).
    Bytes(usize),
}

impl DType {
    /// Parses a NumPy-style name: `int32`, `float64`, `bool`, `bytes16`,
    /// `S16`, or a type string such as `<f4`.
    pub fn parse(s: &str) -> Result<DType> {
        let t = s.trim().trim_start_matches(['<', '=', '|']);
        Ok(match t {
            "bool" | "?" | "b1" => DType::Bool,
            "int8" | "i1" => DType::I8,
            "int16" | "i2" => DType::I16,
            "int32" | "i4" => DType::I32,
            "int64" | "i8" => DType::I64,
            "uint8" | "u1" => DType::U8,
            "uint16" | "u2" => DType::U16,
            "uint32" | "u4" => DType::U32,
            "uint64" | "u8" => DType::U64,
            "float16" | "f2" => DType::F16,
            "float32" | "f4" => DType::F32,
            "float64" | "f8" => DType::F64,
            other => {
                let n = other
                    .strip_prefix("bytes")
                    .or_else(|| other.strip_prefix('S'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Error::InvalidSchema(format!("unknown dtype {s:?}")))?;
                DType::Bytes(n)
            }
        })
    }

    /// Bytes of one element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 | DType::F16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
            DType::Bytes(n) => n,
        }
    }

    /// Alignment of a field of this type: its element size (bytes: 1).
    pub fn align(self) -> usize {
        match self {
            DType::Bytes(_) => 1,
            other => other.size(),
        }
    }

    /// NumPy's little-endian type string.
    pub fn numpy(self) -> String {
        match self {
            DType::Bool => "|b1".into(),
            DType::I8 => "|i1".into(),
            DType::U8 => "|u1".into(),
            DType::I16 => "<i2".into(),
            DType::I32 => "<i4".into(),
            DType::I64 => "<i8".into(),
            DType::U16 => "<u2".into(),
            DType::U32 => "<u4".into(),
            DType::U64 => "<u8".into(),
            DType::F16 => "<f2".into(),
            DType::F32 => "<f4".into(),
            DType::F64 => "<f8".into(),
            DType::Bytes(n) => format!("|S{n}"),
        }
    }

    /// Reads element `i` of a field's bytes as f64 (bytes: not numeric).
    #[inline]
    pub fn read_f64(self, b: &[u8], i: usize) -> f64 {
        macro_rules! at {
            ($t:ty) => {{
                const N: usize = std::mem::size_of::<$t>();
                let mut a = [0u8; N];
                a.copy_from_slice(&b[i * N..i * N + N]);
                <$t>::from_le_bytes(a) as f64
            }};
        }
        match self {
            DType::Bool => (b[i] != 0) as u8 as f64,
            DType::I8 => b[i] as i8 as f64,
            DType::U8 => b[i] as f64,
            DType::I16 => at!(i16),
            DType::U16 => at!(u16),
            DType::I32 => at!(i32),
            DType::U32 => at!(u32),
            DType::I64 => at!(i64),
            DType::U64 => at!(u64),
            DType::F16 => {
                let mut a = [0u8; 2];
                a.copy_from_slice(&b[i * 2..i * 2 + 2]);
                f16_to_f64(u16::from_le_bytes(a))
            }
            DType::F32 => at!(f32),
            DType::F64 => at!(f64),
            DType::Bytes(_) => f64::NAN,
        }
    }

    pub fn is_numeric(self) -> bool {
        !matches!(self, DType::Bytes(_))
    }
}

/// IEEE half precision to double.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways() {
        for (s, d) in [
            ("int32", DType::I32),
            ("<f8", DType::F64),
            ("float16", DType::F16),
            ("bool", DType::Bool),
            ("bytes16", DType::Bytes(16)),
            ("S4", DType::Bytes(4)),
        ] {
            assert_eq!(DType::parse(s).unwrap(), d);
            assert_eq!(DType::parse(&d.numpy()).unwrap(), d);
        }
        assert!(DType::parse("complex64").is_err());
        assert!(DType::parse("S0").is_err());
    }

    #[test]
    fn halves_convert_exactly() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert!(f16_to_f64(0x7c00).is_infinite());
    }
}

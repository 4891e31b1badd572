//! A schema (a name, a version, ordered typed fields) and the packed row
//! layout it compiles to: each field at the next offset aligned to its
//! element size, the row padded to its largest alignment. No field is
//! padded to a cache line, so rows stay small.

use crate::dtype::DType;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    pub name: String,
    pub dtype: DType,
    /// Fixed shape; empty for a scalar.
    pub shape: Vec<usize>,
}

impl Field {
    pub fn new(name: &str, dtype: DType, shape: &[usize]) -> Field {
        Field {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    /// Elements in the field.
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> usize {
        self.count() * self.dtype.size()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Schema {
    pub name: String,
    pub version: u32,
    pub fields: Vec<Field>,
}

/// Where a field sits in a packed row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub offset: usize,
    pub dtype: DType,
    pub count: usize,
}

/// A compiled schema.
#[derive(Clone, Debug)]
pub struct Layout {
    pub schema: Schema,
    pub slots: Vec<Slot>,
    pub row_size: usize,
}

/// Longest table name; ids are limited by L0's key size.
pub const MAX_NAME: usize = 128;

impl Schema {
    pub fn new(name: &str, version: u32, fields: Vec<Field>) -> Result<Schema> {
        let s = Schema {
            name: name.to_string(),
            version,
            fields,
        };
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidSchema(m));
        if self.name.is_empty() || self.name.len() > MAX_NAME || self.name.contains([':', '\0']) {
            return bad(format!(
                "table name {:?}: 1 to {MAX_NAME} bytes, no ':' or NUL",
                self.name
            ));
        }
        if self.fields.is_empty() {
            return bad("a schema needs at least one field".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if f.name.is_empty() || !seen.insert(f.name.as_str()) {
                return bad(format!("field name {:?} is empty or used twice", f.name));
            }
            if f.count() == 0 {
                return bad(format!(
                    "field {:?} has no elements (shape {:?})",
                    f.name, f.shape
                ));
            }
        }
        Ok(())
    }

    /// Compiles the packed layout.
    pub fn layout(&self) -> Result<Layout> {
        self.check()?;
        let mut offset: usize = 0;
        let mut max_align = 1;
        let mut slots = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let a = f.dtype.align();
            max_align = max_align.max(a);
            offset = offset.div_ceil(a) * a;
            slots.push(Slot {
                offset,
                dtype: f.dtype,
                count: f.count(),
            });
            offset += f.bytes();
        }
        Ok(Layout {
            schema: self.clone(),
            slots,
            row_size: offset.div_ceil(max_align) * max_align,
        })
    }

    /// The stored form: what every process compares its definition with.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Result<Schema> {
        serde_json::from_slice(b)
            .map_err(|e| Error::InvalidSchema(format!("stored schema unreadable: {e}")))
    }

    /// Fields and types in one line, for messages.
    pub fn describe(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                if f.shape.is_empty() {
                    format!("{}:{}", f.name, f.dtype.numpy())
                } else {
                    format!("{}:{}{:?}", f.name, f.dtype.numpy(), f.shape)
                }
            })
            .collect();
        format!("v{} {}", self.version, fields.join(", "))
    }
}

impl Layout {
    pub fn index_of(&self, field: &str) -> Result<usize> {
        self.schema
            .fields
            .iter()
            .position(|f| f.name == field)
            .ok_or_else(|| Error::UnknownField {
                table: self.schema.name.clone(),
                field: field.to_string(),
                known: self
                    .schema
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_align_to_their_own_size_and_no_more() {
        let s = Schema::new(
            "user",
            1,
            vec![
                Field::new("flag", DType::Bool, &[]),
                Field::new("age", DType::I32, &[]),
                Field::new("ltv", DType::F64, &[]),
                Field::new("code", DType::Bytes(3), &[]),
                Field::new("emb", DType::F32, &[4]),
            ],
        )
        .unwrap();
        let l = s.layout().unwrap();
        let offsets: Vec<usize> = l.slots.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, vec![0, 4, 8, 16, 20]);
        assert_eq!(l.row_size, 40);
    }

    #[test]
    fn bad_schemas_are_refused() {
        let f = |n: &str| Field::new(n, DType::F32, &[]);
        assert!(Schema::new("t", 1, vec![]).is_err());
        assert!(Schema::new("t", 1, vec![f("a"), f("a")]).is_err());
        assert!(Schema::new("a:b", 1, vec![f("a")]).is_err());
        assert!(Schema::new("t", 1, vec![Field::new("z", DType::F32, &[0])]).is_err());
        let s = Schema::new("t", 2, vec![f("a")]).unwrap();
        assert_eq!(Schema::decode(&s.encode()).unwrap(), s);
    }
}

//! Schema evolution: a table's next version is built beside the current
//! one, then the stored schema is replaced in one write, and the old
//! version's rows are removed.
//!
//! Readers see the old schema or the new one, never a mix: a handle keeps
//! reading the old version's rows until they are gone, and a read that
//! misses checks [`FeatureTable::is_current`] and reopens the table.
//! Record views of old rows stay valid while they live (L0 pins them).
//! Writers should pause while a table evolves: a row written to the old
//! version after it was copied is not carried over.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::schema::{Field, Schema};
use crate::table::{FeatureTable, WRITTEN_BYTES};
use strata_shm::PutOptions;

/// What `evolve` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evolved {
    pub from_version: u32,
    pub to_version: u32,
    /// Rows rewritten under the new version.
    pub rows: u64,
    /// Old rows removed after the flip.
    pub removed: u64,
}

/// Whether every value of `from` fits `to` exactly.
pub fn is_widening(from: DType, to: DType) -> bool {
    use DType::*;
    let int = |d: DType| matches!(d, I8 | I16 | I32 | I64 | U8 | U16 | U32 | U64);
    let signed = |d: DType| matches!(d, I8 | I16 | I32 | I64);
    let float = |d: DType| matches!(d, F16 | F32 | F64);
    let mantissa = |d: DType| match d {
        F16 => 11,
        F32 => 24,
        _ => 53,
    };
    match (from, to) {
        _ if from == to => true,
        (Bytes(a), Bytes(b)) => b >= a,
        (Bool, t) => int(t) || float(t),
        (f, t) if int(f) && int(t) => {
            if signed(f) == signed(t) {
                t.size() > f.size()
            } else {
                !signed(f) && t.size() > f.size()
            }
        }
        (f, t) if int(f) && float(t) => f.size() * 8 - signed(f) as usize <= mantissa(t),
        (f, t) if float(f) && float(t) => t.size() > f.size(),
        _ => false,
    }
}

fn read_i128(d: DType, b: &[u8], i: usize) -> Option<i128> {
    let n = d.size();
    let s = &b[i * n..i * n + n];
    let mut a = [0u8; 16];
    a[..n].copy_from_slice(s);
    Some(match d {
        DType::Bool => (s[0] != 0) as i128,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => {
            // Sign-extend from n bytes.
            let v = i128::from_le_bytes(a);
            let shift = 128 - 8 * n as u32;
            (v << shift) >> shift
        }
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => i128::from_le_bytes(a),
        _ => return None,
    })
}

fn write(d: DType, out: &mut [u8], i: usize, int: Option<i128>, real: f64) -> Result<()> {
    let n = d.size();
    let o = &mut out[i * n..i * n + n];
    // Integers convert through i128 (exact); floats through f64. A lossy
    // conversion (allowed by the caller) saturates.
    let v = int.unwrap_or(real as i128);
    match d {
        DType::Bool => o[0] = (v != 0 || (int.is_none() && real != 0.0)) as u8,
        DType::I8 => {
            o.copy_from_slice(&(v.clamp(i8::MIN as i128, i8::MAX as i128) as i8).to_le_bytes())
        }
        DType::I16 => {
            o.copy_from_slice(&(v.clamp(i16::MIN as i128, i16::MAX as i128) as i16).to_le_bytes())
        }
        DType::I32 => {
            o.copy_from_slice(&(v.clamp(i32::MIN as i128, i32::MAX as i128) as i32).to_le_bytes())
        }
        DType::I64 => {
            o.copy_from_slice(&(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64).to_le_bytes())
        }
        DType::U8 => o.copy_from_slice(&(v.clamp(0, u8::MAX as i128) as u8).to_le_bytes()),
        DType::U16 => o.copy_from_slice(&(v.clamp(0, u16::MAX as i128) as u16).to_le_bytes()),
        DType::U32 => o.copy_from_slice(&(v.clamp(0, u32::MAX as i128) as u32).to_le_bytes()),
        DType::U64 => o.copy_from_slice(&(v.clamp(0, u64::MAX as i128) as u64).to_le_bytes()),
        DType::F32 => o.copy_from_slice(&(int.map_or(real, |x| x as f64) as f32).to_le_bytes()),
        DType::F64 => o.copy_from_slice(&int.map_or(real, |x| x as f64).to_le_bytes()),
        DType::F16 | DType::Bytes(_) => {
            return Err(Error::BadValue {
                field: "(evolve)".into(),
                why: format!("cannot convert into {}", d.numpy()),
            })
        }
    }
    Ok(())
}

/// Converts one field's bytes from `from` to `to` (same element count).
fn convert(from: &Field, to: &Field, src: &[u8], dst: &mut [u8]) -> Result<()> {
    match (from.dtype, to.dtype) {
        (a, b) if a == b => dst.copy_from_slice(src),
        (DType::Bytes(a), DType::Bytes(b)) => {
            // Longer: zero-padded; shorter (lossy): cut, element by element.
            for i in 0..from.count() {
                let s = &src[i * a..i * a + a];
                let d = &mut dst[i * b..i * b + b];
                let k = a.min(b);
                d[..k].copy_from_slice(&s[..k]);
            }
        }
        (f, t) => {
            for i in 0..from.count() {
                let int = read_i128(f, src, i);
                let real = if int.is_none() {
                    f.read_f64(src, i)
                } else {
                    0.0
                };
                write(t, dst, i, int, real)?;
            }
        }
    }
    Ok(())
}

impl FeatureTable {
    /// Whether this handle's schema is still the table's current one.
    pub fn is_current(&self) -> Result<bool> {
        Ok(match self.stored_schema()? {
            Some(s) => s.version == self.schema().version,
            None => false,
        })
    }

    /// Builds `next` (a later version of this table) from the current
    /// rows, then makes it current in one write and removes the old rows.
    /// Fields in both keep their values, converted if their dtype widened
    /// (narrowing only with `allow_lossy`; a changed shape is refused);
    /// added fields take their value in `fill` (a packed row of `next`,
    /// zeros if None); removed fields are dropped.
    pub fn evolve(
        &self,
        next: Schema,
        fill: Option<&[u8]>,
        allow_lossy: bool,
    ) -> Result<(FeatureTable, Evolved)> {
        let cur = self.schema().clone();
        if next.name != cur.name {
            return Err(Error::InvalidSchema(format!(
                "evolving table {:?} into one named {:?}",
                cur.name, next.name
            )));
        }
        if next.version <= cur.version {
            return Err(Error::InvalidSchema(format!(
                "the new version ({}) must be greater than the current one ({})",
                next.version, cur.version
            )));
        }
        if !self.is_current()? {
            return Err(Error::SchemaMismatch {
                table: cur.name.clone(),
                stored: "a newer version".into(),
                given: cur.describe(),
            });
        }
        let new_layout = next.layout()?;
        // Each new field: where it comes from in the old row, if anywhere.
        let mut sources = Vec::with_capacity(next.fields.len());
        for (j, nf) in next.fields.iter().enumerate() {
            let src = cur.fields.iter().position(|f| f.name == nf.name);
            if let Some(i) = src {
                let of = &cur.fields[i];
                if of.shape != nf.shape {
                    return Err(Error::BadValue {
                        field: nf.name.clone(),
                        why: format!("shape {:?} cannot become {:?}", of.shape, nf.shape),
                    });
                }
                if !is_widening(of.dtype, nf.dtype) && !allow_lossy {
                    return Err(Error::BadValue {
                        field: nf.name.clone(),
                        why: format!(
                            "{} to {} may lose values; pass allow_lossy to convert anyway",
                            of.dtype.numpy(),
                            nf.dtype.numpy()
                        ),
                    });
                }
                if of.dtype != nf.dtype && matches!(nf.dtype, DType::F16) {
                    return Err(Error::BadValue {
                        field: nf.name.clone(),
                        why: "cannot convert into float16".into(),
                    });
                }
            }
            sources.push((j, src));
        }
        let blank = match fill {
            Some(f) if f.len() != new_layout.row_size => {
                return Err(Error::BadValue {
                    field: "(fill)".into(),
                    why: format!(
                        "{} bytes, the new rows have {}",
                        f.len(),
                        new_layout.row_size
                    ),
                })
            }
            Some(f) => f.to_vec(),
            None => vec![0; new_layout.row_size],
        };
        // The new version's rows go under its own key prefix, which nothing
        // reads before the flip: a crash before it leaves the current
        // table as it was.
        let staged = FeatureTable::staged(self.segment(), next.clone())?;
        let old_layout = self.layout();
        let old_prefix = self.row_prefix().to_vec();
        let mut rows = 0u64;
        let mut old_keys = Vec::new();
        for key in self.segment().keys() {
            let Some(id) = key.strip_prefix(old_prefix.as_slice()) else {
                continue;
            };
            let Some(g) = self.segment().peek(&key)? else {
                continue;
            };
            if g.len() != old_layout.row_size + WRITTEN_BYTES {
                continue;
            }
            let written = u64::from_le_bytes(g[old_layout.row_size..].try_into().unwrap_or([0; 8]));
            let mut row = blank.clone();
            for &(j, src) in &sources {
                let Some(i) = src else { continue };
                let (os, ns) = (&old_layout.slots[i], &new_layout.slots[j]);
                let from = &g[os.offset..os.offset + os.count * os.dtype.size()];
                let to = &mut row[ns.offset..ns.offset + ns.count * ns.dtype.size()];
                convert(&cur.fields[i], &next.fields[j], from, to)?;
            }
            let ttl = g.expires_at_ms().map(|at| {
                std::time::Duration::from_millis(at.saturating_sub(self.segment().now_ms()).max(1))
            });
            drop(g);
            staged.put_row_at(id, &row, ttl, written)?;
            old_keys.push(key);
            rows += 1;
        }
        // The flip: one write of the schema key.
        self.segment().put(
            &crate::table::schema_key(&next.name),
            &next.encode(),
            &PutOptions::default(),
        )?;
        let mut removed = 0;
        for k in old_keys {
            removed += self.segment().delete(&k)? as u64;
        }
        let table = FeatureTable::open(self.segment(), &next.name)?;
        Ok((
            table,
            Evolved {
                from_version: cur.version,
                to_version: next.version,
                rows,
                removed,
            },
        ))
    }
}

//! A feature table: its schema stored in the segment under a reserved key,
//! one packed row per entity, and the reads a model's input needs.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::schema::{Layout, Schema};
use std::sync::Arc;
use std::time::Duration;
use strata_shm::{PutIf, PutOptions, PutOutcome, Segment, View, MAX_KEY};

/// Bytes after each row: its write time, Unix milliseconds, little-endian.
pub const WRITTEN_BYTES: usize = 8;

/// Where every table's schema is kept: `\0schema:NAME`. Keys starting with
/// NUL are strata's own and left out of listings.
const SCHEMA_KEY: &[u8] = b"\0schema:";

pub(crate) fn schema_key(name: &str) -> Vec<u8> {
    [SCHEMA_KEY, name.as_bytes()].concat()
}

/// A table's rows, by version: `\0ft:NAME:VERSION:ID`.
fn row_prefix(s: &Schema) -> Vec<u8> {
    format!("\0ft:{}:{}:", s.name, s.version).into_bytes()
}

#[derive(Clone)]
pub struct FeatureTable {
    seg: Segment,
    layout: Arc<Layout>,
    prefix: Vec<u8>,
    ttl: Option<Duration>,
    /// What `assemble` gives for an absent entity, if set.
    default: Option<Arc<Vec<u8>>>,
}

impl std::fmt::Debug for FeatureTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureTable")
            .field("schema", &self.layout.schema.describe())
            .finish()
    }
}

impl FeatureTable {
    /// Creates the table in the segment, or attaches to it if it exists
    /// with the same schema; another schema under the name is an error.
    pub fn create(seg: &Segment, schema: Schema) -> Result<FeatureTable> {
        let layout = schema.layout()?;
        let key = schema_key(&schema.name);
        let encoded = schema.encode();
        // Kept until deleted: a schema must not be evicted before its rows.
        seg.put_if(&key, &encoded, &PutOptions::default(), PutIf::Absent)?;
        let stored = Self::stored(seg, &schema.name)?;
        if stored != schema {
            return Err(Error::SchemaMismatch {
                table: schema.name.clone(),
                stored: stored.describe(),
                given: schema.describe(),
            });
        }
        Ok(Self::with_layout(seg, layout))
    }

    /// Attaches to a table some process created.
    pub fn open(seg: &Segment, name: &str) -> Result<FeatureTable> {
        let schema = Self::stored(seg, name)?;
        let layout = schema.layout()?;
        Ok(Self::with_layout(seg, layout))
    }

    /// The table's current schema as stored, if it exists.
    pub(crate) fn stored_schema(&self) -> Result<Option<Schema>> {
        match self.seg.peek(&schema_key(&self.layout.schema.name))? {
            Some(g) => Ok(Some(Schema::decode(&g)?)),
            None => Ok(None),
        }
    }

    /// A handle on a version that is not (yet) the current one, for
    /// writing its rows before the flip.
    pub(crate) fn staged(seg: &Segment, schema: Schema) -> Result<FeatureTable> {
        Ok(Self::with_layout(seg, schema.layout()?))
    }

    fn stored(seg: &Segment, name: &str) -> Result<Schema> {
        match seg.peek(&schema_key(name))? {
            Some(g) => Schema::decode(&g),
            None => Err(Error::NoSuchTable(name.to_string())),
        }
    }

    fn with_layout(seg: &Segment, layout: Layout) -> FeatureTable {
        FeatureTable {
            seg: seg.clone(),
            prefix: row_prefix(&layout.schema),
            layout: Arc::new(layout),
            ttl: None,
            default: None,
        }
    }

    /// Rows written from now on expire after `ttl`.
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> FeatureTable {
        self.ttl = ttl;
        self
    }

    /// A packed row that `assemble` and `assemble_batch` give for absent
    /// entities (still reported as not found).
    pub fn with_default(mut self, row: Option<Vec<u8>>) -> Result<FeatureTable> {
        if let Some(r) = &row {
            self.check_row(r)?;
        }
        self.default = row.map(Arc::new);
        Ok(self)
    }

    fn check_row(&self, row: &[u8]) -> Result<()> {
        if row.len() != self.layout.row_size {
            return Err(Error::BadValue {
                field: "(row)".into(),
                why: format!(
                    "{} bytes, the schema's rows have {}",
                    row.len(),
                    self.layout.row_size
                ),
            });
        }
        Ok(())
    }

    pub fn schema(&self) -> &Schema {
        &self.layout.schema
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// What every row's L0 key starts with; the entity id follows.
    pub fn row_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The L0 key of an entity's row.
    pub fn key(&self, id: &[u8]) -> Result<Vec<u8>> {
        let max = MAX_KEY - self.prefix.len();
        if id.len() > max {
            return Err(Error::IdTooLong { len: id.len(), max });
        }
        let mut k = Vec::with_capacity(self.prefix.len() + id.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(id);
        Ok(k)
    }

    /// A zeroed row to fill field by field.
    pub fn row(&self) -> RowWriter<'_> {
        RowWriter {
            layout: &self.layout,
            buf: vec![0; self.layout.row_size],
        }
    }

    /// Publishes a packed row: readers see the whole old row or the whole
    /// new one, never a mix (L0's put is atomic).
    pub fn put_row(&self, id: &[u8], row: &[u8]) -> Result<PutOutcome> {
        self.put_row_ttl(id, row, self.ttl)
    }

    pub fn put_row_ttl(&self, id: &[u8], row: &[u8], ttl: Option<Duration>) -> Result<PutOutcome> {
        self.put_row_at(id, row, ttl, self.seg.now_ms())
    }

    /// Publishes a row with the write time it carries (Unix ms), as a
    /// copy of a row made earlier keeps its own.
    pub fn put_row_at(
        &self,
        id: &[u8],
        row: &[u8],
        ttl: Option<Duration>,
        written_ms: u64,
    ) -> Result<PutOutcome> {
        self.check_row(row)?;
        let opts = PutOptions {
            ttl,
            ..PutOptions::default()
        };
        let mut value = Vec::with_capacity(row.len() + WRITTEN_BYTES);
        value.extend_from_slice(row);
        value.extend_from_slice(&written_ms.to_le_bytes());
        Ok(self.seg.put(&self.key(id)?, &value, &opts)?)
    }

    /// The stored value's size: the row and its write time.
    fn value_size(&self) -> usize {
        self.layout.row_size + WRITTEN_BYTES
    }

    /// Every row of this version: (entity id, packed row, write time),
    /// in no particular order. Rows written meanwhile may or may not
    /// appear.
    pub fn rows(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>, u64)> + '_ {
        let size = self.value_size();
        self.seg.keys().filter_map(move |key| {
            let id = key.strip_prefix(self.prefix.as_slice())?.to_vec();
            let g = self.seg.peek(&key).ok()??;
            if g.len() != size {
                return None;
            }
            let (row, written) = g.split_at(self.layout.row_size);
            let written = u64::from_le_bytes(written.try_into().ok()?);
            Some((id, row.to_vec(), written))
        })
    }

    pub fn delete(&self, id: &[u8]) -> Result<bool> {
        Ok(self.seg.delete(&self.key(id)?)?)
    }

    /// The entity's row: a zero-copy record view, pinned while it lives.
    pub fn get(&self, id: &[u8]) -> Result<Option<Record>> {
        let size = self.value_size();
        Ok(self
            .seg
            .get_view(&self.key(id)?)?
            .filter(|v| v.len() == size)
            .map(|view| Record {
                view,
                layout: self.layout.clone(),
            }))
    }

    /// The fields `assemble` reads, in order (all numeric fields if None),
    /// compiled once.
    pub fn plan(&self, fields: Option<&[&str]>) -> Result<Plan> {
        let idx: Vec<usize> = match fields {
            Some(names) => names
                .iter()
                .map(|n| self.layout.index_of(n))
                .collect::<Result<_>>()?,
            None => (0..self.layout.slots.len())
                .filter(|&i| self.layout.slots[i].dtype.is_numeric())
                .collect(),
        };
        let mut parts: Vec<crate::schema::Slot> = Vec::with_capacity(idx.len());
        for i in idx {
            let s = &self.layout.slots[i];
            if !s.dtype.is_numeric() {
                return Err(Error::BadValue {
                    field: self.layout.schema.fields[i].name.clone(),
                    why: "bytes fields have no numeric value to assemble".into(),
                });
            }
            // A field that follows the previous one in the row with the
            // same dtype joins it: 199 float32 scalars and a float32[128]
            // become one copy of 327 values.
            match parts.last_mut() {
                Some(p)
                    if p.dtype == s.dtype && p.offset + p.count * p.dtype.size() == s.offset =>
                {
                    p.count += s.count;
                }
                _ => parts.push(s.clone()),
            }
        }
        let width = parts.iter().map(|p| p.count).sum();
        Ok(Plan { parts, width })
    }

    /// Writes the entity's chosen fields, flattened in order and cast, into
    /// `out` (the plan's width). False if absent: `out` then gets the
    /// default row if the table has one, and is left alone if not.
    pub fn assemble<T: OutValue>(&self, id: &[u8], plan: &Plan, out: &mut [T]) -> Result<bool> {
        if out.len() != plan.width {
            return Err(Error::BadOutput {
                got: out.len(),
                want: plan.width,
            });
        }
        match self.seg.get(&self.key(id)?)? {
            Some(g) if g.len() == self.value_size() => {
                plan.fill(&g, out);
                Ok(true)
            }
            Some(g) => Err(Error::BadValue {
                field: "(row)".into(),
                why: format!(
                    "the stored value has {} bytes, not a row of this schema ({})",
                    g.len(),
                    self.value_size()
                ),
            }),
            None => {
                if let Some(d) = &self.default {
                    plan.fill(d, out);
                }
                Ok(false)
            }
        }
    }

    /// `assemble` for many entities into rows of `out` (ids × width), one
    /// epoch pin for the batch, lookups overlapped. Rows of absent ids get
    /// the default row (zeros if none) and `found` says which. Returns how
    /// many were found.
    pub fn assemble_batch<T: OutValue, K: AsRef<[u8]>>(
        &self,
        ids: &[K],
        plan: &Plan,
        out: &mut [T],
        found: &mut [bool],
    ) -> Result<usize> {
        let want = ids.len() * plan.width;
        if out.len() != want || found.len() != ids.len() {
            return Err(Error::BadOutput {
                got: out.len(),
                want,
            });
        }
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| self.key(id.as_ref()))
            .collect::<Result<_>>()?;
        self.assemble_keys(&keys, plan, out, found)
    }

    /// `assemble_batch` for callers that built the rows' L0 keys
    /// themselves ([`FeatureTable::row_prefix`] + id), as the Python
    /// binding does for arrays of integer ids.
    pub fn assemble_keys<T: OutValue, K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        plan: &Plan,
        out: &mut [T],
        found: &mut [bool],
    ) -> Result<usize> {
        let want = keys.len() * plan.width;
        if out.len() != want || found.len() != keys.len() {
            return Err(Error::BadOutput {
                got: out.len(),
                want,
            });
        }
        let mut n = 0;
        let w = plan.width;
        self.seg.get_batch(keys, |i, e| {
            let row = &mut out[i * w..(i + 1) * w];
            match e {
                Some(e) if e.value.len() == self.layout.row_size + WRITTEN_BYTES => {
                    plan.fill(e.value, row);
                    found[i] = true;
                    n += 1;
                }
                _ => {
                    match &self.default {
                        Some(d) => plan.fill(d, row),
                        None => row.fill(T::ZERO),
                    }
                    found[i] = false;
                }
            }
        })?;
        Ok(n)
    }
}

/// What `assemble` writes: f32 (a model's usual input) or f64.
pub trait OutValue: Copy + bytemuck::Pod {
    const ZERO: Self;
    const DTYPE: DType;
    fn from_f64(v: f64) -> Self;
}

impl OutValue for f32 {
    const ZERO: f32 = 0.0;
    const DTYPE: DType = DType::F32;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
}

impl OutValue for f64 {
    const ZERO: f64 = 0.0;
    const DTYPE: DType = DType::F64;
    fn from_f64(v: f64) -> f64 {
        v
    }
}

/// A compiled choice of fields for `assemble`.
#[derive(Clone, Debug)]
pub struct Plan {
    parts: Vec<crate::schema::Slot>,
    width: usize,
}

impl Plan {
    /// Values per entity.
    pub fn width(&self) -> usize {
        self.width
    }

    fn fill<T: OutValue>(&self, row: &[u8], out: &mut [T]) {
        let mut at = 0;
        for p in &self.parts {
            let src = &row[p.offset..p.offset + p.count * p.dtype.size()];
            let dst = &mut out[at..at + p.count];
            if p.dtype == T::DTYPE {
                // The same type: a plain copy (rows are 64-byte aligned in
                // L0 and fields aligned to their size, so the cast holds;
                // the fallback covers a caller's unaligned buffer).
                match bytemuck::try_cast_slice::<u8, T>(src) {
                    Ok(s) => dst.copy_from_slice(s),
                    Err(_) => bytemuck::cast_slice_mut::<T, u8>(dst).copy_from_slice(src),
                }
            } else {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = T::from_f64(p.dtype.read_f64(src, i));
                }
            }
            at += p.count;
        }
    }
}

/// A packed row being filled.
pub struct RowWriter<'t> {
    layout: &'t Layout,
    buf: Vec<u8>,
}

/// A Rust type a field can be written from or read as.
pub trait Element: bytemuck::Pod {
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:expr),*) => {$(impl Element for $t { const DTYPE: DType = $d; })*};
}
element!(i8 => DType::I8, i16 => DType::I16, i32 => DType::I32, i64 => DType::I64,
         u8 => DType::U8, u16 => DType::U16, u32 => DType::U32, u64 => DType::U64,
         f32 => DType::F32, f64 => DType::F64);

impl RowWriter<'_> {
    /// Sets a field from values of its own type (as many as its shape has).
    pub fn set<T: Element>(&mut self, field: &str, values: &[T]) -> Result<&mut Self> {
        let i = self.layout.index_of(field)?;
        let s = &self.layout.slots[i];
        if s.dtype != T::DTYPE && !(s.dtype == DType::Bool && T::DTYPE == DType::U8) {
            return Err(Error::BadValue {
                field: field.into(),
                why: format!("is {}, given {}", s.dtype.numpy(), T::DTYPE.numpy()),
            });
        }
        self.set_bytes(field, bytemuck::cast_slice(values))
    }

    /// Sets a field from its raw little-endian bytes.
    pub fn set_bytes(&mut self, field: &str, bytes: &[u8]) -> Result<&mut Self> {
        let i = self.layout.index_of(field)?;
        let s = &self.layout.slots[i];
        let want = s.count * s.dtype.size();
        if bytes.len() != want {
            return Err(Error::BadValue {
                field: field.into(),
                why: format!("{} bytes given, its shape takes {want}", bytes.len()),
            });
        }
        self.buf[s.offset..s.offset + want].copy_from_slice(bytes);
        Ok(self)
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A row read in place: the shared memory itself, pinned while it lives.
pub struct Record {
    view: View,
    layout: Arc<Layout>,
}

impl Record {
    /// The packed row.
    pub fn bytes(&self) -> &[u8] {
        &self.view[..self.layout.row_size]
    }

    /// When the row was written, in Unix milliseconds.
    pub fn written_ms(&self) -> u64 {
        let t = &self.view[self.layout.row_size..];
        u64::from_le_bytes(t.try_into().unwrap_or([0; 8]))
    }

    /// A field's values, typed, in place.
    pub fn field<T: Element>(&self, name: &str) -> Result<&[T]> {
        let i = self.layout.index_of(name)?;
        let s = &self.layout.slots[i];
        if s.dtype != T::DTYPE {
            return Err(Error::BadValue {
                field: name.into(),
                why: format!("is {}, read as {}", s.dtype.numpy(), T::DTYPE.numpy()),
            });
        }
        let b = &self.bytes()[s.offset..s.offset + s.count * s.dtype.size()];
        bytemuck::try_cast_slice(b).map_err(|e| Error::BadValue {
            field: name.into(),
            why: format!("cannot be read in place: {e}"),
        })
    }

    /// A scalar field's value.
    pub fn scalar<T: Element>(&self, name: &str) -> Result<T> {
        Ok(self.field::<T>(name)?[0])
    }

    /// A bytes field's raw bytes.
    pub fn raw(&self, name: &str) -> Result<&[u8]> {
        let i = self.layout.index_of(name)?;
        let s = &self.layout.slots[i];
        Ok(&self.bytes()[s.offset..s.offset + s.count * s.dtype.size()])
    }
}

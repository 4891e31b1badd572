//! Reading traces: the formats `strata simulate` accepts, each into one
//! list of requests (a key id and a value size).
//!
//! Keys become 64-bit ids: numeric formats keep their numbers, text keys
//! are hashed (xxh3). A malformed line is an error naming the file and
//! the line, never a panic; a binary file whose length is not a whole
//! number of records is an error too.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// The magic at the start of a trace `strata trace record` writes.
pub const STRATA_MAGIC: &[u8; 8] = b"STRATATR";
pub const STRATA_VERSION: u32 = 1;
/// Header: magic, version (u32), flags (u32), sample rate (f64), records
/// dropped while recording (u64), then 16-byte records: key hash (u64),
/// value size (u32), reserved (u32). All little-endian.
pub const STRATA_HEADER: usize = 32;
const ORACLE_RECORD: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One key per line.
    Lines,
    /// `key[,size[,ttl]]` per line; a header line is skipped.
    Csv,
    /// Little-endian u64 keys, back to back.
    U64,
    /// libCacheSim's oracleGeneral binary: 24-byte records of time (u32),
    /// id (u64), size (u32) and next access (i64).
    Oracle,
    /// The ARC traces' `.lis`: `start count ...` per line, meaning blocks
    /// start .. start+count.
    Arc,
    /// A trace recorded by `strata trace record`.
    Strata,
    /// Big-endian 32-bit keys, back to back (the cache2k traces).
    I32be,
}

/// The requests of a trace.
pub struct Trace {
    pub keys: Vec<u64>,
    /// Value sizes in bytes, one per request; all 1 when the format has
    /// none.
    pub sizes: Vec<u32>,
    /// Whether the format carried sizes.
    pub sized: bool,
    /// For a spatially sampled recording, the share of keys it kept: a
    /// cache of C entries for the whole traffic behaves as one of
    /// C × rate for the sample.
    pub sample_rate: f64,
    /// Records a recorder dropped (a full ring).
    pub dropped: u64,
}

impl Trace {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    fn new() -> Self {
        Trace {
            keys: Vec::new(),
            sizes: Vec::new(),
            sized: false,
            sample_rate: 1.0,
            dropped: 0,
        }
    }

    fn push(&mut self, key: u64, size: u32) {
        self.keys.push(key);
        self.sizes.push(size);
    }
}

/// The format a file's name or first bytes suggest.
pub fn detect(path: &Path, head: &[u8]) -> Option<Format> {
    if head.starts_with(STRATA_MAGIC) {
        return Some(Format::Strata);
    }
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = name
        .trim_end_matches(".zst")
        .trim_end_matches(".xz")
        .trim_end_matches(".gz");
    let ext = name.rsplit('.').next()?;
    Some(match ext {
        "lis" => Format::Arc,
        "csv" => Format::Csv,
        "txt" | "keys" => Format::Lines,
        "trace" if head.contains(&0) => Format::I32be,
        "trace" => Format::Lines,
        "oraclegeneral" | "oracle" => Format::Oracle,
        "u64" => Format::U64,
        _ => return None,
    })
}

/// The file's bytes as a stream, decompressed through `zstd`, `xz` or
/// `gzip` when its name ends so; `-` is stdin.
fn open(path: &Path) -> Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let name = path.to_string_lossy();
    let tool = [(".zst", "zstd"), (".xz", "xz"), (".gz", "gzip")]
        .into_iter()
        .find(|(ext, _)| name.ends_with(ext))
        .map(|(_, t)| t);
    match tool {
        None => {
            Ok(Box::new(File::open(path).with_context(|| {
                format!("cannot open {}", path.display())
            })?))
        }
        Some(tool) => {
            let child = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| {
                    format!(
                        "{} is compressed, and `{tool}` could not be run to read it; \
                         decompress it first or install {tool}",
                        path.display()
                    )
                })?;
            let out = child.stdout.context("no output from the decompressor")?;
            Ok(Box::new(out))
        }
    }
}

/// Reads a trace; `format` None detects it from the name or magic.
/// `progress` is called with the requests read so far.
pub fn read(path: &Path, format: Option<Format>, limit: usize) -> Result<Trace> {
    let mut r = BufReader::with_capacity(1 << 20, open(path)?);
    let head = r.fill_buf().context("cannot read the trace")?.to_vec();
    let format = match format.or_else(|| detect(path, &head)) {
        Some(f) => f,
        None => bail!(
            "cannot tell the format of {} from its name; pass --format \
             (lines, csv, u64, oracle, arc, strata or i32be)",
            path.display()
        ),
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    let what = path.display().to_string();
    let t = match format {
        Format::Lines | Format::Csv | Format::Arc => read_text(r, format, limit, &what)?,
        Format::U64 => read_records(r, 8, limit, &what, |rec, t| {
            t.push(le_u64(&rec[0..8]), 1);
        })?,
        Format::I32be => read_records(r, 4, limit, &what, |rec, t| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&rec[0..4]);
            t.push(u64::from(u32::from_be_bytes(a)), 1);
        })?,
        Format::Oracle => {
            let mut t = read_records(r, ORACLE_RECORD, limit, &what, |rec, t| {
                t.push(le_u64(&rec[4..12]), le_u32(&rec[12..16]).max(1));
            })?;
            t.sized = true;
            t
        }
        Format::Strata => read_strata(r, limit, &what)?,
    };
    if t.keys.is_empty() {
        bail!("{what} holds no requests");
    }
    Ok(t)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

fn read_text(r: impl BufRead, format: Format, limit: usize, what: &str) -> Result<Trace> {
    let mut t = Trace::new();
    t.sized = format == Format::Csv;
    let mut any_size = false;
    for (n, line) in r.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("cannot read {what}"))?;
        let lineno = n + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match format {
            Format::Lines => t.push(hash(line), 1),
            Format::Csv => {
                let mut fields = line.split(|&b| b == b',');
                let key = fields.next().unwrap_or_default();
                let size = fields
                    .next()
                    .map(|s| std::str::from_utf8(s).unwrap_or("").trim());
                let size = match size {
                    None | Some("") => 1,
                    Some(s) => match s.parse::<u32>() {
                        Ok(v) => {
                            any_size = true;
                            v.max(1)
                        }
                        // A header names its columns; skip it.
                        Err(_) if lineno == 1 => continue,
                        Err(_) => {
                            bail!("{what} line {lineno}: size {s:?} is not a whole number of bytes")
                        }
                    },
                };
                if let Some(ttl) = fields.next() {
                    let ttl = std::str::from_utf8(ttl).unwrap_or("").trim();
                    if !ttl.is_empty() && ttl.parse::<f64>().is_err() {
                        bail!("{what} line {lineno}: ttl {ttl:?} is not a number of seconds");
                    }
                }
                t.push(hash(key), size);
            }
            Format::Arc => {
                let text = std::str::from_utf8(line).unwrap_or("");
                let mut parts = text.split_whitespace();
                let (Some(start), Some(count)) = (parts.next(), parts.next()) else {
                    bail!("{what} line {lineno}: expected `start count`, found {text:?}");
                };
                let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else {
                    bail!(
                        "{what} line {lineno}: `start count` must be whole numbers, found {text:?}"
                    );
                };
                for k in start..start.saturating_add(count) {
                    if t.len() >= limit {
                        break;
                    }
                    t.push(k, 1);
                }
            }
            _ => unreachable!("binary formats are read elsewhere"),
        }
        if t.len() >= limit {
            break;
        }
    }
    t.sized &= any_size;
    Ok(t)
}

fn read_records(
    mut r: impl Read,
    size: usize,
    limit: usize,
    what: &str,
    mut each: impl FnMut(&[u8], &mut Trace),
) -> Result<Trace> {
    let mut t = Trace::new();
    let mut buf = vec![0u8; size * 8192];
    let mut have = 0;
    loop {
        let n = r
            .read(&mut buf[have..])
            .with_context(|| format!("cannot read {what}"))?;
        if n == 0 {
            break;
        }
        have += n;
        let whole = have / size * size;
        for rec in buf[..whole].chunks_exact(size) {
            if t.len() >= limit {
                return Ok(t);
            }
            each(rec, &mut t);
        }
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
    if have != 0 {
        bail!("{what}: {have} bytes left over at the end (records are {size} bytes); the file is cut short or not in this format");
    }
    Ok(t)
}

fn read_strata(mut r: impl Read, limit: usize, what: &str) -> Result<Trace> {
    let mut head = [0u8; STRATA_HEADER];
    r.read_exact(&mut head)
        .with_context(|| format!("{what}: shorter than a trace header"))?;
    if &head[0..8] != STRATA_MAGIC {
        bail!(
            "{what} is not a strata trace (no {:?} magic)",
            std::str::from_utf8(STRATA_MAGIC).unwrap_or("")
        );
    }
    let version = le_u32(&head[8..12]);
    if version != STRATA_VERSION {
        bail!("{what} is a version {version} trace; this strata reads version {STRATA_VERSION}");
    }
    let rate = f64::from_le_bytes(head[16..24].try_into().unwrap_or_default());
    if !(rate > 0.0 && rate <= 1.0) {
        bail!("{what}: sample rate {rate} in the header is not in (0, 1]");
    }
    let dropped = le_u64(&head[24..32]);
    let mut t = read_records(r, 16, limit, what, |rec, t| {
        t.push(le_u64(&rec[0..8]), le_u32(&rec[8..12]));
    })?;
    // A miss records no size: take the key's size from its nearest hit,
    // earlier or later; a key never hit weighs 1.
    let mut known = std::collections::HashMap::new();
    for pass in 0..2 {
        let order: Box<dyn Iterator<Item = usize>> = if pass == 0 {
            Box::new(0..t.keys.len())
        } else {
            Box::new((0..t.keys.len()).rev())
        };
        for i in order {
            if t.sizes[i] == 0 {
                if let Some(&s) = known.get(&t.keys[i]) {
                    t.sizes[i] = s;
                }
            } else {
                known.insert(t.keys[i], t.sizes[i]);
            }
        }
    }
    for s in &mut t.sizes {
        *s = (*s).max(1);
    }
    t.sized = true;
    t.sample_rate = rate;
    t.dropped = dropped;
    Ok(t)
}

/// The header of a strata trace (the recorder writes it).
pub fn strata_header(sample_rate: f64, dropped: u64) -> [u8; STRATA_HEADER] {
    let mut h = [0u8; STRATA_HEADER];
    h[0..8].copy_from_slice(STRATA_MAGIC);
    h[8..12].copy_from_slice(&STRATA_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&sample_rate.to_le_bytes());
    h[24..32].copy_from_slice(&dropped.to_le_bytes());
    h
}

//! A named segment: creating, attaching, validating and unlinking it.

use crate::epoch::Epochs;
use crate::error::{Error, Result};
use crate::hash::BUCKET_BITS;
use crate::layout::{self, hdr, state, Layout, HEADER_SIZE, MAGIC};
use crate::local;
use crate::lock::ShardLock;
use crate::mem::{sys, Region, Words};
use crate::options::SegmentOptions;
use crate::pins::PinPages;
use crate::pins_local::PinLocal;
use crate::policy::Policy;
use crate::size::format_size;
use crate::sketch::Sketch;
use crate::slots::Slots;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// A handle on a shared-memory segment. Cheap to clone; every clone and
/// every process attached to the same name sees the same entries.
#[derive(Clone)]
pub struct Segment {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Unique within this process; keys the per-thread slot registry.
    pub uid: u64,
    pub name: String,
    pub path: PathBuf,
    pub file: File,
    pub region: Arc<Region>,
    pub layout: Layout,
    pub seed: u64,
    pub opts: SegmentOptions,
    pub epochs: Epochs,
    pub slots: Slots,
    pub pin_pages: PinPages,
    pub sketch: Sketch,
    /// The eviction policy, from the header.
    pub policy: Policy,
    pub pins: Mutex<PinLocal>,
    pub closed: Arc<AtomicBool>,
    pub max_block: u64,
    /// This handle, for the janitor thread to hold without keeping it alive.
    pub me: Weak<Inner>,
    /// 1 + the fork generation in which this process started its janitor
    /// thread; 0 if it has none.
    pub janitor_gen: AtomicU64,
    /// This process's sampled read latency.
    pub read_latency: crate::latency::ReadLatency,
}

static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// Checks a segment name: 1 to 200 of `A-Z a-z 0-9 . _ -`, not starting
/// with a dot.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    if name.starts_with('.') {
        return bad("it starts with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

pub fn segment_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("strata.{name}"))
}

/// Refuses a segment file that another user owns or that others may
/// write: it could have been planted to feed this process data or to read
/// what it stores.
fn check_ownership(path: &Path, file: &File) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let me = sys::effective_uid();
    let reason = if meta.uid() != me {
        format!(
            "belongs to user {}, not to this process's user {me}",
            meta.uid()
        )
    } else if meta.mode() & 0o022 != 0 {
        format!(
            "has mode {:o}, which lets other users write it",
            meta.mode() & 0o777
        )
    } else {
        return Ok(());
    };
    Err(Error::Foreign {
        path: path.to_path_buf(),
        reason,
    })
}

/// The header fields that restate the layout: written at creation, and
/// required to match the recomputed layout on attach.
fn layout_fields(lay: &Layout) -> [(u64, u64); 20] {
    [
        (hdr::SHARD_COUNT, lay.shard_count),
        (hdr::BUCKETS, lay.buckets_per_shard),
        (hdr::READER_SLOTS, layout::READER_SLOTS),
        (hdr::PIN_PAGES, lay.pin_pages),
        (hdr::SKETCH_BLOCKS, lay.sketch_blocks),
        (hdr::SLAB_COUNT, lay.slab_count),
        (hdr::OFF_READERS, lay.readers),
        (hdr::OFF_PINS, lay.pins),
        (hdr::OFF_SHARDS, lay.shards),
        (hdr::OFF_INDEX, lay.index),
        (hdr::OFF_SKETCH, lay.sketch),
        (hdr::OFF_SLAB_META, lay.slab_meta),
        (hdr::OFF_BITMAPS, lay.bitmaps),
        (hdr::OFF_ARENA, lay.arena),
        (hdr::OFF_CHANGES, lay.changes),
        (hdr::OFF_TRACE, lay.trace),
        (hdr::OFF_QUEUES, lay.queues),
        (hdr::QUEUE_SLOTS, lay.queue_slots),
        (hdr::OFF_GHOSTS, lay.ghosts),
        (hdr::GHOST_SLOTS, lay.ghost_slots),
    ]
}

/// The checksum of a header's fields fixed at creation, as they stand in
/// `r`: every word from the magic to the creation time but the state,
/// which changes once after the checksum is written.
fn checksum_of<W: Words>(r: &W) -> u64 {
    let bytes: Vec<u8> = (hdr::MAGIC..=hdr::CREATED_MS)
        .step_by(8)
        .filter(|&off| off != hdr::STATE)
        .flat_map(|off| r.load(off, Ordering::Acquire).to_le_bytes())
        .collect();
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Whether the header's fixed fields (the hash seed among them) are as
/// they were written at creation. A changed seed would make every key
/// unreachable while each entry still looked valid.
pub(crate) fn verify_checksum<W: Words>(r: &W) -> std::result::Result<(), String> {
    let want = r.load(hdr::CHECKSUM, Ordering::Acquire);
    let got = checksum_of(r);
    if want == got {
        Ok(())
    } else {
        Err(format!(
            "the header's checksum is {got:#x}, not the {want:#x} written at creation: \
             its fixed fields (the hash seed, sizes or offsets) were overwritten"
        ))
    }
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT_UID.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

impl Segment {
    /// Creates a new segment; fails with `AlreadyExists` if the name is taken.
    pub fn create(name: &str, opts: &SegmentOptions) -> Result<Segment> {
        validate_name(name)?;
        let path = segment_path(&opts.dir, name);
        let region_size = layout::region_size_for(opts.memory);
        let max_entries = opts
            .max_entries
            .unwrap_or_else(|| Layout::default_max_entries(region_size));
        let lay = Layout::compute(region_size, max_entries).map_err(Error::InvalidConfig)?;
        if lay.buckets_per_shard > 1 << BUCKET_BITS {
            return Err(Error::InvalidConfig(format!(
                "{max_entries} entries is more than this size supports"
            )));
        }
        let available = sys::available_bytes(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
        if available < region_size {
            return Err(Error::ShmTooSmall {
                dir: opts.dir.clone(),
                needed: region_size,
                available,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| match e.kind() {
                ErrorKind::AlreadyExists => Error::AlreadyExists {
                    name: name.to_string(),
                    path: path.clone(),
                },
                _ => Error::io(&path, e),
            })?;
        // Creation can take seconds (huge pages, when memory is
        // fragmented): the lock tells attachers that the creator is alive.
        // The kernel drops it if the creator dies; it is released at READY.
        let _ = sys::try_lock_byte(file.as_raw_fd(), layout::CREATOR_LOCK);
        let cleanup = |err: Error| {
            let _ = sys::unlink(&path);
            err
        };
        let too_small = |e: std::io::Error| {
            cleanup(if e.raw_os_error() == Some(libc::ENOSPC) {
                Error::ShmTooSmall {
                    dir: opts.dir.clone(),
                    needed: region_size,
                    available: sys::available_bytes(&opts.dir).unwrap_or(available),
                }
            } else {
                Error::io(&path, e)
            })
        };
        // The header's page first, reserved: an attacher that sees the file
        // reads it (and finds it not ready) without a fault that a full
        // tmpfs would answer with SIGBUS. Then the full size, which on
        // tmpfs allocates nothing: the kernel builds huge pages only inside
        // the file. Then the reservation of everything.
        sys::fallocate_range(&file, 0, HEADER_SIZE).map_err(too_small)?;
        file.set_len(region_size)
            .map_err(|e| cleanup(Error::io(&path, e)))?;
        let region = Region::map(&file, region_size).map_err(|e| cleanup(Error::io(&path, e)))?;
        if opts.huge_pages {
            crate::huge::back_with_huge_pages(&file, &region, |done, total| {
                if let Some(hook) = &opts.on_progress {
                    hook(done, total);
                }
            });
        }
        sys::fallocate(&file, region_size).map_err(too_small)?;
        let seed = random_u64();
        let fields = [
            (hdr::VERSION, layout::LAYOUT_VERSION),
            (hdr::LAYOUT_HASH, Layout::layout_hash()),
            (hdr::REGION_SIZE, region_size),
            (hdr::INSTANCE, random_u64()),
            (hdr::SEED, seed),
            (hdr::MAX_ENTRIES, max_entries),
            (hdr::CREATED_MS, sys::coarse_now_ms()),
            (hdr::POLICY, opts.policy.unwrap_or_default().code()),
            (hdr::WINDOW_SHARE, crate::window::INITIAL_WINDOW_SHARE),
            (hdr::MAGIC, MAGIC),
        ];
        // The file is fresh from tmpfs and reads as zeros, which is the
        // initial state of every other field and section.
        for (off, v) in layout_fields(&lay).into_iter().chain(fields) {
            region.store(off, v, Ordering::Relaxed);
        }
        region.store(hdr::CHECKSUM, checksum_of(&region), Ordering::Relaxed);
        region.store(hdr::STATE, state::READY, Ordering::Release);
        let _ = sys::unlock_byte(file.as_raw_fd(), layout::CREATOR_LOCK);
        Ok(Segment::from_parts(
            name, path, file, region, lay, seed, opts,
        ))
    }

    /// Attaches to an existing segment.
    pub fn open(name: &str, opts: &SegmentOptions) -> Result<Segment> {
        validate_name(name)?;
        let path = segment_path(&opts.dir, name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => Error::NotFound {
                    name: name.to_string(),
                    path: path.clone(),
                },
                _ => Error::io(&path, e),
            })?;
        if !opts.trust_foreign {
            check_ownership(&path, &file)?;
        }
        let mut started = Instant::now();
        loop {
            match Self::attach(name, &path, &file, opts)? {
                Some(seg) => return Ok(seg),
                None => {
                    // A creator that is alive may take as long as it needs:
                    // the timeout runs only while nobody holds its lock (a
                    // creator that died, or one from an older build).
                    if sys::byte_locked_by_other(file.as_raw_fd(), layout::CREATOR_LOCK)
                        .unwrap_or(false)
                    {
                        started = Instant::now();
                    } else if started.elapsed() >= opts.ready_timeout {
                        return Err(Error::NotReady { path });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
            }
        }
    }

    /// Attaches to the segment, creating it if it does not exist.
    pub fn open_or_create(name: &str, opts: &SegmentOptions) -> Result<Segment> {
        loop {
            match Self::create(name, opts) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(name, opts) {
                // Dropped between our two calls: try creating again.
                Err(Error::NotFound { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Removes a segment's name. Processes attached to it keep using it
    /// until they detach. Ok(false) if there was no such segment.
    pub fn unlink(name: &str, dir: &Path) -> Result<bool> {
        validate_name(name)?;
        let path = segment_path(dir, name);
        match sys::unlink(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Names of the segments in `dir`.
    pub fn list(dir: &Path) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|n| n.strip_prefix("strata.").map(str::to_string))
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Ok(None): the creator is still setting up.
    fn attach(
        name: &str,
        path: &Path,
        file: &File,
        opts: &SegmentOptions,
    ) -> Result<Option<Segment>> {
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Ok(None);
        }
        if len < HEADER_SIZE {
            return Err(corrupt(format!(
                "the file is only {len} bytes, shorter than a header"
            )));
        }
        let region = Region::map(file, len).map_err(|e| Error::io(path, e))?;
        let get = |off| region.load(off, Ordering::Acquire);
        let magic = get(hdr::MAGIC);
        if magic == 0 && get(hdr::STATE) == state::INIT {
            return Ok(None);
        }
        if magic != MAGIC {
            return Err(corrupt(
                "it is not a strata segment (bad magic number)".into(),
            ));
        }
        match get(hdr::STATE) {
            state::READY => {}
            state::INIT => return Ok(None),
            s => return Err(corrupt(format!("unknown state {s}"))),
        }
        let incompatible = |reason: String| Error::Incompatible {
            path: path.to_path_buf(),
            reason,
        };
        let version = get(hdr::VERSION);
        if version != layout::LAYOUT_VERSION {
            return Err(incompatible(format!(
                "layout version {version}, this build reads {}",
                layout::LAYOUT_VERSION
            )));
        }
        if get(hdr::LAYOUT_HASH) != Layout::layout_hash() {
            return Err(incompatible(
                "its layout fingerprint differs from this build's".into(),
            ));
        }
        let region_size = get(hdr::REGION_SIZE);
        if region_size != len {
            return Err(corrupt(format!(
                "the header says {region_size} bytes but the file has {len}"
            )));
        }
        let lay = Layout::compute(region_size, get(hdr::MAX_ENTRIES)).map_err(corrupt)?;
        for (off, want) in layout_fields(&lay) {
            let got = get(off);
            if got != want {
                return Err(corrupt(format!(
                    "header field at byte {off} is {got}, expected {want}"
                )));
            }
        }
        if lay.buckets_per_shard > 1 << BUCKET_BITS {
            return Err(corrupt(
                "the index is larger than this build supports".into(),
            ));
        }
        verify_checksum(&region).map_err(corrupt)?;
        let code = get(hdr::POLICY);
        if Policy::from_code(code).is_none() {
            return Err(corrupt(format!("unknown eviction policy code {code}")));
        }
        let seed = get(hdr::SEED);
        let file = file.try_clone().map_err(|e| Error::io(path, e))?;
        Ok(Some(Segment::from_parts(
            name,
            path.to_path_buf(),
            file,
            region,
            lay,
            seed,
            opts,
        )))
    }

    fn from_parts(
        name: &str,
        path: PathBuf,
        file: File,
        region: Region,
        lay: Layout,
        seed: u64,
        opts: &SegmentOptions,
    ) -> Segment {
        // Written at creation, and checked by `attach`.
        let policy =
            Policy::from_code(region.load(hdr::POLICY, Ordering::Relaxed)).unwrap_or_default();
        let slots = Slots {
            first: lay.readers,
            stride: layout::SLOT_SIZE,
            count: layout::READER_SLOTS,
            generation: hdr::SLOT_GENERATION,
            high_water: hdr::SLOT_HIGH_WATER,
            folded_hits: hdr::FOLDED_HITS,
            folded_misses: hdr::FOLDED_MISSES,
        };
        let epochs = Epochs {
            global: hdr::EPOCH,
            first_slot_epoch: lay.readers + layout::slot::EPOCH,
            slot_stride: layout::SLOT_SIZE,
            high_water: hdr::SLOT_HIGH_WATER,
        };
        let pin_pages = PinPages {
            first: lay.pins,
            count: lay.pin_pages,
            high_water: hdr::PIN_HIGH_WATER,
            generation: hdr::SLOT_GENERATION,
        };
        let sketch = Sketch {
            base: lay.sketch,
            blocks: lay.sketch_blocks,
            ops: hdr::SKETCH_OPS,
            period: 16 * lay.max_entries,
        };
        let max_block = (lay.arena_bytes() / 2).max(crate::classes::MAX_CLASS_SIZE);
        Segment {
            inner: Arc::new_cyclic(|me| Inner {
                uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
                name: name.to_string(),
                path,
                file,
                region: Arc::new(region),
                layout: lay,
                seed,
                opts: opts.clone(),
                epochs,
                slots,
                pin_pages,
                sketch,
                policy,
                pins: Mutex::new(PinLocal::new()),
                closed: Arc::new(AtomicBool::new(false)),
                max_block,
                me: me.clone(),
                janitor_gen: AtomicU64::new(0),
                read_latency: Default::default(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The segment's layout: sizes and offsets of its sections.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// What of a size (`memory` bytes) and capacity (`max_entries`) asked
    /// for this segment it does not have, since both are fixed when a
    /// segment is created: None if it has both (or neither was asked),
    /// else a phrase such as "its size, 16.0 MiB (not 32.0 MiB)", for
    /// telling someone who attached with other figures. A size is
    /// compared as creation would lay it out.
    pub fn kept_settings(
        &self,
        memory: Option<u64>,
        max_entries: Option<u64>,
        policy: Option<Policy>,
    ) -> Option<String> {
        let l = self.layout();
        let mut kept = Vec::new();
        if let Some(m) = memory.map(layout::region_size_for) {
            if m != l.region_size {
                kept.push(format!(
                    "its size, {} (not {})",
                    format_size(l.region_size),
                    format_size(m)
                ));
            }
        }
        if let Some(n) = max_entries.filter(|&n| n != l.max_entries) {
            kept.push(format!("room for {} entries (not {n})", l.max_entries));
        }
        if let Some(p) = policy.filter(|&p| p != self.inner.policy) {
            kept.push(format!(
                "its eviction policy, {} (not {p})",
                self.inner.policy
            ));
        }
        (!kept.is_empty()).then(|| kept.join(" and "))
    }

    /// How the segment evicts, fixed at its creation.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// W-TinyLFU's window, as the share of entries its ghosts have moved
    /// it to for now (0 to about 0.98).
    pub fn window_share(&self) -> f64 {
        self.inner.region.load(hdr::WINDOW_SHARE, Ordering::Relaxed) as f64
            / (1024.0 * crate::window::UNIT as f64)
    }

    /// The segment's instance id: random, drawn at creation. It tells one
    /// machine's cache from another's (and a recreated segment from the
    /// one before).
    pub fn instance_id(&self) -> u64 {
        self.inner.region.load(hdr::INSTANCE, Ordering::Relaxed)
    }

    /// The address range of this process's mapping of the segment.
    pub fn mapping(&self) -> std::ops::Range<usize> {
        let base = self.inner.region.base_addr();
        base..base + self.inner.region.len() as usize
    }

    /// Whether this process maps the segment with 2 MiB pages. Much of a
    /// lookup's cost is address translation of the key's index bucket and
    /// of the value; huge pages cut it (docs/huge-pages.md). True when the
    /// creator could build them (Linux 6.1 or later, see
    /// [`SegmentOptions::huge_pages`](crate::SegmentOptions::huge_pages)),
    /// or when the segment's directory is a tmpfs mounted with
    /// `huge=within_size` or `huge=always`. It reads
    /// /proc/self/smaps, which takes a while in a large process: for
    /// reports, not for a hot path.
    pub fn huge_pages(&self) -> bool {
        sys::huge_backed(self.inner.region.base_addr()).unwrap_or(false)
    }

    /// The largest value `put` accepts here, under a key of up to 16
    /// bytes without a type tag (a longer key or a tag takes its length,
    /// rounded up to 64 bytes, from it).
    pub fn max_value_size(&self) -> u64 {
        self.inner.max_block - crate::block::needed(0, 0, 0)
    }

    /// Gives back the calling thread's reader slot now rather than at
    /// thread exit. Other clones of this handle keep working.
    pub fn release_thread(&self) {
        local::release_current(self.inner.uid);
    }
}

impl Inner {
    /// A new descriptor on the segment file with its own open file
    /// description (so its byte locks are its own), closed in forked
    /// children.
    pub fn new_lock_fd(&self) -> Result<RawFd> {
        let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&proc_path)
            .or_else(|_| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&self.path)
            })
            .map_err(|e| Error::io(&self.path, e))?;
        let fd = file.into_raw_fd();
        if !sys::track_fd(fd) {
            sys::close_fd(fd);
            return Err(Error::TooManyReaders(4096));
        }
        Ok(fd)
    }

    /// This process's pin table. Its operations cannot be left half done by
    /// a panic, so a poisoned lock is taken as it is.
    pub fn pins(&self) -> std::sync::MutexGuard<'_, PinLocal> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn shard_lock(&self, shard: u64) -> ShardLock {
        let base = self.layout.shard_off(shard);
        ShardLock {
            word: base + layout::shard::LOCK,
            seq: base + layout::shard::LOCK_SEQ,
            waiters: base + layout::shard::LOCK_WAITERS,
            spins: crate::lock::DEFAULT_SPINS,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        local::release_current(self.uid);
        self.pins().release_all(&self.region, &self.pin_pages);
    }
}

//! Damaged, foreign and truncated segment files, and a /dev/shm that is
//! too small: typed errors, never a panic or a signal.

mod common;
use common::{ShmDir, MIB};
use std::os::unix::fs::FileExt;
use std::time::Duration;
use strata_shm::{Error, PutOptions, Segment};

fn open_fast(dir: &ShmDir, name: &str) -> Result<Segment, Error> {
    let mut o = dir.opts(0);
    o.ready_timeout = Duration::from_millis(20);
    Segment::open(name, &o)
}

#[test]
fn corrupted_headers_give_typed_errors() {
    let dir = ShmDir::new("corrupt");
    let path = dir.create("s", 8 * MIB).path().to_path_buf();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut pristine = vec![0u8; 4096];
    file.read_exact_at(&mut pristine, 0).unwrap();
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut kinds = std::collections::BTreeMap::new();
    for round in 0..400 {
        let mut hdr = pristine.clone();
        if round % 4 == 0 {
            // Wholly random header.
            for b in &mut hdr {
                *b = rnd() as u8;
            }
        } else {
            // A few bytes flipped among the first 256 (the fields).
            for _ in 0..(1 + rnd() % 4) {
                let i = (rnd() % 256) as usize;
                hdr[i] ^= 1 << (rnd() % 8);
            }
        }
        file.write_all_at(&hdr, 0).unwrap();
        let kind = match open_fast(&dir, "s") {
            Ok(seg) => {
                // A flip that left every checked field intact (e.g. in
                // the epoch or a counter) must still give a working segment.
                seg.stats().unwrap();
                "ok"
            }
            Err(Error::Corrupt { .. }) => "corrupt",
            Err(Error::Incompatible { .. }) => "incompatible",
            Err(Error::NotReady { .. }) => "not ready",
            Err(e) => panic!("unexpected error kind: {e}"),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    assert!(
        kinds.get("corrupt").copied().unwrap_or(0) > 100,
        "{kinds:?}"
    );
    file.write_all_at(&pristine, 0).unwrap();
    assert!(open_fast(&dir, "s").is_ok());
}

#[test]
fn truncated_and_foreign_files() {
    let dir = ShmDir::new("trunc");
    let path = dir.create("s", 8 * MIB).path().to_path_buf();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(4 * MIB).unwrap();
    assert!(matches!(open_fast(&dir, "s"), Err(Error::Corrupt { .. })));
    file.set_len(100).unwrap();
    assert!(matches!(open_fast(&dir, "s"), Err(Error::Corrupt { .. })));
    file.set_len(0).unwrap();
    assert!(matches!(open_fast(&dir, "s"), Err(Error::NotReady { .. })));
    std::fs::write(
        dir.path.join("strata.text"),
        b"not a segment at all, just some text that is long enough",
    )
    .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path.join("strata.text"))
        .unwrap();
    f.set_len(8 * MIB).unwrap();
    assert!(matches!(
        open_fast(&dir, "text"),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_small_shm_gives_advice_not_sigbus() {
    let dir = ShmDir::new("small");
    let mnt = dir.path.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let opts = strata_shm::SegmentOptions::default().dir(&mnt);
    let err = Segment::create("big", &opts.clone().memory(64 * MIB))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, Error::ShmTooSmall { .. }), "{err}");
    assert!(msg.contains("--shm-size"), "{msg}");
    assert!(
        Segment::list(&mnt).unwrap().is_empty(),
        "nothing left behind"
    );
    // Two segments that each fit but not together: the second one fails
    // at creation (statvfs or posix_fallocate), never with a SIGBUS later.
    let a = Segment::create("a", &opts.clone().memory(8 * MIB)).unwrap();
    let b = Segment::create("b", &opts.clone().memory(8 * MIB));
    assert!(matches!(b, Err(Error::ShmTooSmall { .. })), "{:?}", b.err());
    a.put(b"k", &vec![1u8; 1 << 20], &Default::default())
        .unwrap();
    drop(a);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
}

#[test]
fn a_file_others_may_write_is_refused_unless_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = ShmDir::new("foreign");
    let seg = dir.create("s", 16 * MIB);
    seg.put(b"k", b"v", &PutOptions::default()).unwrap();
    let mode = std::fs::metadata(seg.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "created private");
    std::fs::set_permissions(seg.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    match Segment::open("s", &dir.opts(16 * MIB)) {
        Err(Error::Foreign { reason, .. }) => assert!(reason.contains("666"), "{reason}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("attached to a world-writable segment"),
    }
    let err = Segment::open_or_create("s", &dir.opts(16 * MIB))
        .err()
        .unwrap();
    assert!(err.to_string().contains("trust_foreign"), "{err}");
    let trusted = Segment::open("s", &dir.opts(16 * MIB).trust_foreign(true)).unwrap();
    assert_eq!(&*trusted.get(b"k").unwrap().unwrap(), b"v");
}

#[test]
fn an_overwritten_hash_seed_is_detected() {
    let dir = ShmDir::new("seed");
    let seg = dir.create("s", 16 * MIB);
    seg.put(b"k", b"v", &PutOptions::default()).unwrap();
    assert!(seg.check().unwrap().is_clean());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(seg.path())
        .unwrap();
    // The seed is the header word at byte 48.
    f.write_all_at(&0x1234_5678u64.to_le_bytes(), 48).unwrap();
    let rep = seg.check().unwrap();
    assert!(
        rep.violations.iter().any(|v| v.contains("checksum")),
        "{:?}",
        rep.violations
    );
    match Segment::open("s", &dir.opts(16 * MIB)) {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("seed"), "{reason}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("attached to a segment with a changed seed"),
    }
}

#[test]
fn max_value_size_is_the_largest_value_put_accepts() {
    let dir = ShmDir::new("maxval");
    let seg = dir.create("s", 16 * MIB);
    let max = seg.max_value_size() as usize;
    let no = PutOptions::default();
    assert!(seg.put(b"sixteen-byte-key", &vec![1u8; max], &no).is_ok());
    assert!(matches!(
        seg.put(b"k", &vec![1u8; max + 1], &no),
        Err(Error::ValueTooLarge { max: m, .. }) if m == max as u64
    ));
}

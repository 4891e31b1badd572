//! Microbenchmarks of one segment in one process: get (hit and miss),
//! get_view, put (update) and delete, with 4 KiB values. Cross-process
//! figures and peers are in `strata bench`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use strata_shm::{PutOptions, Segment, SegmentOptions};

const KEYS: u64 = 50_000;

fn setup() -> (Segment, Vec<Vec<u8>>) {
    let name = format!("criterion-{}", std::process::id());
    let _ = Segment::unlink(&name, &strata_shm::default_dir());
    let seg = Segment::create(&name, &SegmentOptions::default().memory(512 << 20)).unwrap();
    let _ = Segment::unlink(&name, &strata_shm::default_dir());
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("key:{i:010}").into_bytes())
        .collect();
    let v = vec![7u8; 4096];
    for k in &keys {
        seg.put(k, &v, &PutOptions::default()).unwrap();
    }
    (seg, keys)
}

fn benches(c: &mut Criterion) {
    let (seg, keys) = setup();
    let v = vec![9u8; 4096];
    let no = PutOptions::default();
    let mut i = 0usize;
    let mut next = move || {
        i = (i + 7919) % KEYS as usize;
        i
    };
    c.bench_function("get_hit_4k", |b| {
        b.iter(|| {
            let g = seg.get(&keys[next()]).unwrap().unwrap();
            black_box(g[0]);
        })
    });
    c.bench_function("get_miss", |b| {
        b.iter(|| black_box(seg.get(b"absent-key").unwrap().is_none()))
    });
    c.bench_function("get_view_4k", |b| {
        b.iter(|| black_box(seg.get_view(&keys[next()]).unwrap().unwrap().len()))
    });
    c.bench_function("put_update_4k", |b| {
        b.iter(|| seg.put(&keys[next()], &v, &no).unwrap())
    });
    c.bench_function("delete_then_put_4k", |b| {
        b.iter_batched(
            || keys[next()].clone(),
            |k| {
                seg.delete(&k).unwrap();
                seg.put(&k, &v, &no).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(segment, benches);
criterion_main!(segment);

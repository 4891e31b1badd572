//! The tiered cache in front of a real Redis Cluster: batches split by
//! slot, type tags beside their keys, and a primary killed with its
//! replica promoted.

mod common;
use common::{RedisCluster, ShmDir};
use std::time::{Duration, Instant};
use strata::{Cache, PutOptions, RedisConfig, TypeTag, WritePolicy};

fn cache(dir: &ShmDir, name: &str, cluster: &RedisCluster, policy: WritePolicy) -> Cache {
    Cache::builder(name)
        .segment_options(dir.opts())
        .redis_config(
            RedisConfig::cluster(cluster.urls())
                .timeout(Duration::from_millis(1000))
                .breaker(3, Duration::from_millis(200)),
        )
        .write_policy(policy)
        .build()
        .unwrap()
}

#[test]
fn a_cluster_serves_reads_writes_and_batches_across_slots() {
    let cluster = RedisCluster::start(3, 0);
    let (d1, d2) = (ShmDir::new("c1"), ShmDir::new("c2"));
    let a = cache(&d1, "a", &cluster, WritePolicy::Through);
    let b = cache(&d2, "b", &cluster, WritePolicy::Back);
    let tag = TypeTag::new("<i4", vec![2]);
    for i in 0..300 {
        a.put(
            format!("k{i}").as_bytes(),
            &[i as u8; 8],
            &PutOptions::default().tag(tag.clone()),
        )
        .unwrap();
    }
    // Every node holds some of them.
    for n in &cluster.nodes {
        let size: u64 = n.cli(&["DBSIZE"]).trim().parse().unwrap();
        assert!(size > 0, "node {} holds nothing", n.port);
    }
    let keys: Vec<Vec<u8>> = (0..300).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let got = b.fetch_many(&refs).unwrap();
    for (i, v) in got.into_iter().enumerate() {
        let v = v.expect("found through the cluster");
        assert_eq!(v.bytes(), &[i as u8; 8]);
        assert_eq!(v.type_tag(), Some(tag.clone()));
    }
    // Write-back to a cluster drains too.
    for i in 0..200 {
        b.put(format!("wb{i}").as_bytes(), b"x", &PutOptions::default())
            .unwrap();
    }
    b.flush().unwrap();
    let total: u64 = cluster
        .nodes
        .iter()
        .map(|n| n.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 300 * 2 + 200, "values, their tags, and write-back");
}

#[test]
fn a_primary_killed_and_its_replica_promoted_is_survived() {
    let mut cluster = RedisCluster::start(3, 1);
    let dir = ShmDir::new("failover");
    let c = cache(&dir, "f", &cluster, WritePolicy::Through);
    c.put(b"survivor", b"v1", &PutOptions::default()).unwrap();
    cluster.master_of("survivor").wait_replicated();
    cluster.master_of("survivor").kill();
    let killed = Instant::now();
    // A few requests may fail while the replica takes over; then it works.
    // Generous: on a loaded machine the election itself can take a while.
    let end = Instant::now() + Duration::from_secs(60);
    let mut ok = false;
    while Instant::now() < end {
        let _ = c.invalidate(b"survivor");
        let got = c.get(b"survivor");
        if let Err(e) = &got {
            // Shown only if the test fails: what the cache said meanwhile.
            eprintln!("{:?} after the kill: {e}", Instant::now() - killed);
        }
        if let Ok(Some(v)) = got {
            assert_eq!(v.bytes(), b"v1");
            ok = c.put(b"survivor", b"v2", &PutOptions::default()).is_ok();
            if ok {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ok, "the cache did not come back after the failover");
    c.invalidate(b"survivor").unwrap();
    assert_eq!(c.get(b"survivor").unwrap().unwrap().bytes(), b"v2");
}

#[test]
fn warming_by_pattern_scans_every_primary() {
    let cluster = RedisCluster::start(3, 0);
    let dir = ShmDir::new("cwarm");
    let writer_dir = ShmDir::new("cwarm-w");
    let writer = cache(&writer_dir, "w", &cluster, WritePolicy::Through);
    for i in 0..200 {
        writer
            .put(format!("emb:{i}").as_bytes(), b"v", &PutOptions::default())
            .unwrap();
    }
    writer.put(b"other", b"x", &PutOptions::default()).unwrap();
    let c = cache(&dir, "c", &cluster, WritePolicy::Through);
    let rep = c.warm_pattern("emb:*", None).unwrap();
    assert_eq!((rep.keys, rep.loaded), (200, 200));
    assert!(c.segment().contains(b"emb:199").unwrap());
    assert!(!c.segment().contains(b"other").unwrap());
}

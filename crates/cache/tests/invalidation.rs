//! The machine's invalidation subscriber is one process, elected through a
//! lease in L0; when it is killed, another process takes over.

mod common;
use common::{spawn_role, RedisServer, ShmDir};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use strata::{Cache, PutOptions, SegmentOptions};

fn machine(name: &str, dir: &str, url: &str) -> Cache {
    Cache::builder(name)
        .segment_options(SegmentOptions::default().memory(32 << 20).dir(dir))
        .redis(url)
        .invalidation_channel("strata:inval:takeover")
        .build()
        .unwrap()
}

#[test]
fn child_entry() {
    let Ok(role) = std::env::var("STRATA_TEST_ROLE") else {
        return;
    };
    assert_eq!(role, "subscriber");
    let dir = std::env::var("SEG_DIR").unwrap();
    let c = machine("machine-b", &dir, &std::env::var("REDIS_URL").unwrap());
    while !c.is_invalidation_subscriber() {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("\nREADY");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_subscribers_process_is_replaced_by_another() {
    let redis = RedisServer::start();
    let (da, db) = (ShmDir::new("ta"), ShmDir::new("tb"));
    let mut child = spawn_role("subscriber", &db, &[("REDIS_URL", redis.url())]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines.next().unwrap().unwrap().contains("READY") {}
    let a = machine("machine-a", da.path.to_str().unwrap(), &redis.url());
    // Another process of machine b: its thread waits for the lease.
    let b = machine("machine-b", db.path.to_str().unwrap(), &redis.url());
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !b.is_invalidation_subscriber(),
        "one subscriber per machine"
    );
    let _ = child.kill();
    let _ = child.wait();
    let end = Instant::now() + Duration::from_secs(5);
    while !b.is_invalidation_subscriber() {
        assert!(Instant::now() < end, "nobody took the subscription over");
        std::thread::sleep(Duration::from_millis(10));
    }
    // And it works: a write on a reaches b's L0.
    a.put(b"k", b"v1", &PutOptions::default()).unwrap();
    assert!(b.get(b"k").unwrap().is_some());
    a.put(b"k", b"v2", &PutOptions::default()).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while b.segment().contains(b"k").unwrap() {
        assert!(Instant::now() < end, "b's copy was never invalidated");
        std::thread::sleep(Duration::from_millis(5));
    }
}

//! The tiered cache against a real redis-server: read-through and
//! promotion, each write policy, interop with plain clients, and Redis
//! killed, paused and restarted.

mod common;
use common::{RedisServer, ShmDir};
use redis::Commands;
use std::time::{Duration, Instant};
use strata::{Cache, Error, PutOptions, RedisConfig, TypeTag, UpstreamError, WritePolicy};

fn cache(dir: &ShmDir, name: &str, redis: &RedisServer, policy: WritePolicy) -> Cache {
    Cache::builder(name)
        .segment_options(dir.opts())
        .redis_config(
            RedisConfig::single(redis.url())
                .timeout(Duration::from_millis(300))
                .breaker(3, Duration::from_millis(200)),
        )
        .write_policy(policy)
        .build()
        .unwrap()
}

#[test]
fn a_miss_reads_redis_once_and_is_promoted_with_its_ttl() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("read-through");
    let c = cache(&dir, "rt", &redis, WritePolicy::Through);
    let mut r = redis.client();
    let _: () = r.set_ex("emb:1", b"from redis".as_slice(), 60).unwrap();
    let _: () = r.set("emb:2", b"no ttl".as_slice()).unwrap();

    let v = c.get(b"emb:1").unwrap().expect("read through");
    assert_eq!(v.bytes(), b"from redis");
    assert!(v.is_shared(), "promoted into L0 and handed out from there");
    // The TTL Redis reported came along.
    let exp = c
        .segment()
        .peek(b"emb:1")
        .unwrap()
        .unwrap()
        .expires_at_ms()
        .unwrap();
    let left = exp.saturating_sub(c.segment().now_ms());
    assert!(left > 55_000 && left <= 60_000, "{left} ms left");
    assert!(c.get(b"emb:2").unwrap().is_some());
    assert_eq!(
        c.segment().peek(b"emb:2").unwrap().unwrap().expires_at_ms(),
        None
    );
    // Both are L0 hits now: Redis is asked no more.
    let before = c.stats().unwrap().l2.unwrap();
    for _ in 0..10 {
        assert!(c.get(b"emb:1").unwrap().is_some());
    }
    let after = c.stats().unwrap().l2.unwrap();
    assert_eq!(after.requests, before.requests);
    assert_eq!(c.stats().unwrap().promotions, 2);
    // A key in neither tier is a miss in both.
    assert!(c.get(b"nope").unwrap().is_none());
    assert_eq!(c.stats().unwrap().l2.unwrap().misses, 1);
}

#[test]
fn a_batch_of_misses_is_one_request() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("batch");
    let c = cache(&dir, "b", &redis, WritePolicy::Through);
    let mut r = redis.client();
    for i in 0..100 {
        let _: () = r.set(format!("k{i}"), format!("v{i}")).unwrap();
    }
    let keys: Vec<Vec<u8>> = (0..120).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let got = c.fetch_many(&refs).unwrap();
    let l2 = c.stats().unwrap().l2.unwrap();
    assert_eq!(l2.requests, 1, "one pipelined round trip for 120 keys");
    for (i, v) in got.iter().enumerate() {
        match v {
            Some(v) => assert_eq!(v.bytes(), format!("v{i}").as_bytes()),
            None => assert!(i >= 100),
        }
    }
    assert_eq!((l2.hits, l2.misses), (100, 20));
}

#[test]
fn write_through_reaches_redis_then_l0_and_plain_clients_read_the_bytes() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("through");
    let c = cache(&dir, "wt", &redis, WritePolicy::Through);
    let value: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    c.put(
        b"bin",
        &value,
        &PutOptions::default().ttl(Duration::from_secs(100)),
    )
    .unwrap();
    assert_eq!(
        redis.cli_get_raw("bin"),
        value,
        "redis-cli reads the exact bytes"
    );
    let ttl: i64 = redis.client().pttl("bin").unwrap();
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    assert_eq!(&*c.segment().get(b"bin").unwrap().unwrap(), &value[..]);
    // Deleting removes it everywhere.
    assert!(c.delete(b"bin").unwrap());
    assert_eq!(redis.cli(&["EXISTS", "bin"]).trim(), "0");
    assert!(c.get(b"bin").unwrap().is_none());
}

#[test]
fn an_arrays_dtype_and_shape_travel_to_another_machine_through_redis() {
    let redis = RedisServer::start();
    let (d1, d2) = (ShmDir::new("m1"), ShmDir::new("m2"));
    // Two caches with their own L0s stand for two machines.
    let a = cache(&d1, "machine-a", &redis, WritePolicy::Through);
    let b = cache(&d2, "machine-b", &redis, WritePolicy::Through);
    let tag = TypeTag::new("<f4", vec![2, 3]);
    let bytes: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    a.put(b"emb:7", &bytes, &PutOptions::default().tag(tag.clone()))
        .unwrap();
    let v = b.get(b"emb:7").unwrap().unwrap();
    assert_eq!(v.bytes(), &bytes[..]);
    assert_eq!(v.type_tag(), Some(tag));
    // A plain value overwritten by another client loses the tag.
    a.put(b"emb:7", b"plain", &PutOptions::default()).unwrap();
    assert_eq!(redis.cli(&["EXISTS", "strata:tag:{emb:7}"]).trim(), "0");
}

#[test]
fn write_back_answers_from_l0_at_once_and_drains_on_flush_and_close() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("back");
    let c = cache(&dir, "wb", &redis, WritePolicy::Back);
    for i in 0..2000 {
        c.put(
            format!("k{i}").as_bytes(),
            format!("v{i}").as_bytes(),
            &PutOptions::default(),
        )
        .unwrap();
        assert!(c.segment().contains(format!("k{i}").as_bytes()).unwrap());
    }
    // Repeated writes to one key: the last one wins in Redis.
    for n in 0..100 {
        c.put(b"hot", format!("{n}").as_bytes(), &PutOptions::default())
            .unwrap();
    }
    c.flush().unwrap();
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "2001");
    assert_eq!(redis.cli(&["GET", "hot"]).trim(), "99");
    let st = c.stats().unwrap();
    assert_eq!(st.write_back_pending, 0);
    assert!(st.write_back_flushed <= 2001 + 100);
    // Close drains what is still queued.
    for i in 0..500 {
        c.put(format!("late{i}").as_bytes(), b"x", &PutOptions::default())
            .unwrap();
    }
    c.delete(b"k0").unwrap();
    c.close().unwrap();
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "2500");
    assert!(matches!(
        c.put(b"after", b"x", &PutOptions::default()),
        Err(Error::Closed)
    ));
}

#[test]
fn cache_only_reads_redis_and_never_writes_it() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("none");
    let c = cache(&dir, "co", &redis, WritePolicy::None);
    let _: () = redis.client().set("remote", "r").unwrap();
    assert_eq!(c.get(b"remote").unwrap().unwrap().bytes(), b"r");
    c.put(b"local", b"l", &PutOptions::default()).unwrap();
    assert_eq!(redis.cli(&["EXISTS", "local"]).trim(), "0");
    assert!(c.delete(b"remote").unwrap());
    assert_eq!(
        redis.cli(&["EXISTS", "remote"]).trim(),
        "1",
        "Redis is left alone"
    );
}

#[test]
fn redis_down_keeps_l0_serving_and_misses_fail_fast_until_it_returns() {
    let mut redis = RedisServer::start();
    let dir = ShmDir::new("down");
    let c = cache(&dir, "down", &redis, WritePolicy::Through);
    c.put(b"hot", b"still here", &PutOptions::default())
        .unwrap();
    redis.kill();
    // L0 hits: untouched by the outage.
    for _ in 0..100 {
        assert_eq!(c.get(b"hot").unwrap().unwrap().bytes(), b"still here");
    }
    // Misses: an upstream error; after a few, the breaker answers at once.
    for _ in 0..5 {
        assert!(matches!(c.get(b"cold"), Err(Error::Upstream(_))));
    }
    let st = c.stats().unwrap().l2.unwrap();
    assert!(st.errors >= 5);
    assert_eq!(st.breaker, "open");
    let t = Instant::now();
    let e = c.get(b"cold").unwrap_err();
    assert!(
        matches!(e, Error::Upstream(UpstreamError::CircuitOpen { .. })),
        "{e}"
    );
    let fast = t.elapsed();
    // A write-through write fails, and L0 is not left newer than Redis.
    assert!(c.put(b"hot", b"new", &PutOptions::default()).is_err());
    assert!(c.segment().get(b"hot").unwrap().is_none());
    // Redis comes back: so does the cache, with no help.
    redis.restart();
    let _: () = redis.client().set("cold", "warm now").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut back = None;
    while Instant::now() < end {
        if let Ok(Some(v)) = c.get(b"cold") {
            back = Some(v.bytes().to_vec());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(back.as_deref(), Some(&b"warm now"[..]));
    eprintln!("an open breaker answered in {fast:?}");
}

#[test]
fn a_paused_redis_times_out_and_never_hangs_a_read() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("paused");
    let c = cache(&dir, "paused", &redis, WritePolicy::Through);
    c.put(b"hot", b"h", &PutOptions::default()).unwrap();
    redis.signal("STOP");
    assert_eq!(c.get(b"hot").unwrap().unwrap().bytes(), b"h");
    let e = c.get(b"cold").unwrap_err();
    assert!(matches!(e, Error::Upstream(_)), "{e}");
    redis.signal("CONT");
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let dir = ShmDir::new("bad");
    let e = Cache::builder("bad")
        .segment_options(dir.opts())
        .redis("http://nope")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("invalid redis configuration"), "{e}");
    let e = Cache::builder("bad")
        .segment_options(dir.opts())
        .write_policy(WritePolicy::Back)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
    assert!("sideways".parse::<WritePolicy>().is_err());
    // An unreachable server: the cache starts (L0 serves), the first miss
    // says what is wrong.
    let c = Cache::builder("bad")
        .segment_options(dir.opts())
        .redis("redis://127.0.0.1:1/0")
        .build()
        .unwrap();
    let e = c.get(b"k").unwrap_err();
    assert!(e.to_string().contains("redis"), "{e}");
}

#[test]
fn a_namespace_bump_hides_its_entries_on_every_machine() {
    let redis = RedisServer::start();
    let (d1, d2) = (ShmDir::new("ns1"), ShmDir::new("ns2"));
    let a = cache(&d1, "ns-a", &redis, WritePolicy::Through);
    let b = cache(&d2, "ns-b", &redis, WritePolicy::Through);
    let (na, nb) = (a.namespace("fraud-model"), b.namespace("fraud-model"));
    na.put(b"user:1", b"score 0.9", &PutOptions::default())
        .unwrap();
    assert_eq!(nb.get(b"user:1").unwrap().unwrap().bytes(), b"score 0.9");
    assert!(a.namespace("other").get(b"user:1").unwrap().is_none());
    let v = na.bump().unwrap();
    assert_eq!(na.version().unwrap(), v);
    assert!(
        na.get(b"user:1").unwrap().is_none(),
        "at once on the bumping machine"
    );
    // The other machine follows within the version's cache lifetime.
    let end = Instant::now() + strata::NS_VERSION_TTL + Duration::from_secs(2);
    while nb.get(b"user:1").unwrap().is_some() {
        assert!(
            Instant::now() < end,
            "the bump never reached the other machine"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(nb.version().unwrap(), v);
    assert_eq!(
        redis.cli(&["GET", "strata:ns:fraud-model"]).trim(),
        v.to_string()
    );
}

#[test]
fn without_redis_a_namespace_lives_in_l0_and_bumps_at_once_for_every_process() {
    let dir = ShmDir::new("ns-local");
    let opts = dir.opts();
    let a = Cache::builder("ns")
        .segment_options(opts.clone())
        .build()
        .unwrap();
    let b = Cache::builder("ns").segment_options(opts).build().unwrap();
    a.namespace("m")
        .put(b"k", b"v1", &PutOptions::default())
        .unwrap();
    assert_eq!(b.namespace("m").get(b"k").unwrap().unwrap().bytes(), b"v1");
    let before = a.namespace("m").version().unwrap();
    assert_eq!(b.namespace("m").bump().unwrap(), before.wrapping_add(1));
    assert!(a.namespace("m").get(b"k").unwrap().is_none());
}

/// Without Redis the version is an L0 entry, read on every call under the
/// namespace: the eviction policy must see those reads, or the version
/// looks cold, goes first when L0 is full, and comes back as a new one,
/// taking every entry of the namespace with it.
#[test]
fn a_namespace_in_use_keeps_its_version_in_a_full_l0() {
    let dir = ShmDir::new("ns-full");
    let c = Cache::builder("ns-full")
        .segment_options(dir.opts().max_entries(2048))
        .build()
        .unwrap();
    let ns = c.namespace("m");
    ns.put(b"hot", b"v", &PutOptions::default()).unwrap();
    let version = ns.version().unwrap();
    for i in 0..20_000u32 {
        c.put(format!("other{i}").as_bytes(), b"x", &PutOptions::default())
            .unwrap();
        if i % 4 == 0 {
            assert!(ns.get(b"hot").unwrap().is_some(), "lost at {i}");
        }
    }
    assert!(c.stats().unwrap().l0.evictions > 10_000);
    assert_eq!(ns.version().unwrap(), version);
}

/// Two machines on one Redis, sharing an invalidation channel.
fn machines(redis: &RedisServer, d1: &ShmDir, d2: &ShmDir) -> (Cache, Cache) {
    let make = |dir: &ShmDir, name: &str| {
        Cache::builder(name)
            .segment_options(dir.opts())
            .redis(&redis.url())
            .invalidation_channel("strata:inval:test")
            .build()
            .unwrap()
    };
    let (a, b) = (make(d1, "machine-a"), make(d2, "machine-b"));
    let end = Instant::now() + Duration::from_secs(10);
    while !(a.is_invalidation_subscriber() && b.is_invalidation_subscriber()) {
        assert!(Instant::now() < end, "no subscriber");
        std::thread::sleep(Duration::from_millis(10));
    }
    (a, b)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_write_on_one_machine_invalidates_the_others_copy() {
    let redis = RedisServer::start();
    let (d1, d2) = (ShmDir::new("inv1"), ShmDir::new("inv2"));
    let (a, b) = machines(&redis, &d1, &d2);
    a.put(b"k", b"v1", &PutOptions::default()).unwrap();
    assert_eq!(b.get(b"k").unwrap().unwrap().bytes(), b"v1");
    assert!(b.segment().contains(b"k").unwrap(), "in b's L0 now");
    a.put(b"k", b"v2", &PutOptions::default()).unwrap();
    eventually("b's copy dropped", || !b.segment().contains(b"k").unwrap());
    assert_eq!(b.get(b"k").unwrap().unwrap().bytes(), b"v2");
    // invalidate drops it from every L0 and leaves Redis alone.
    a.invalidate(b"k").unwrap();
    eventually("b's copy dropped", || !b.segment().contains(b"k").unwrap());
    assert_eq!(redis.cli(&["GET", "k"]).trim(), "v2");
    // delete: everywhere.
    assert!(b.get(b"k").unwrap().is_some());
    a.delete(b"k").unwrap();
    eventually("b's copy dropped", || !b.segment().contains(b"k").unwrap());
    assert!(b.get(b"k").unwrap().is_none());
    // A machine ignores its own messages; b received what a sent.
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    assert!(sa.invalidations_sent >= 3);
    assert!(sb.invalidations_received >= 3);
    assert_eq!(sa.invalidations_received, 0);
}

#[test]
fn a_namespace_bump_reaches_the_other_machine_at_once() {
    let redis = RedisServer::start();
    let (d1, d2) = (ShmDir::new("invns1"), ShmDir::new("invns2"));
    let (a, b) = machines(&redis, &d1, &d2);
    a.namespace("m")
        .put(b"k", b"v", &PutOptions::default())
        .unwrap();
    assert!(b.namespace("m").get(b"k").unwrap().is_some());
    let before = b.stats().unwrap().invalidations_received;
    a.namespace("m").bump().unwrap();
    // The bump's message reaches b's subscriber, which drops b's cached
    // copy of the version (rather than b waiting out its lifetime).
    eventually("the bump's message reached b", || {
        b.stats().unwrap().invalidations_received > before
    });
    assert!(b.namespace("m").get(b"k").unwrap().is_none());
}

#[test]
fn write_back_invalidates_the_other_machine_once_its_batch_is_in_redis() {
    let redis = RedisServer::start();
    let (d1, d2) = (ShmDir::new("wbinv1"), ShmDir::new("wbinv2"));
    let make = |dir: &ShmDir, name: &str, policy| {
        Cache::builder(name)
            .segment_options(dir.opts())
            .redis(&redis.url())
            .write_policy(policy)
            .invalidation_channel("strata:inval:wb")
            .build()
            .unwrap()
    };
    let a = make(&d1, "wb-a", WritePolicy::Back);
    let b = make(&d2, "wb-b", WritePolicy::Through);
    eventually("subscribers", || {
        a.is_invalidation_subscriber() && b.is_invalidation_subscriber()
    });
    for i in 0..100 {
        b.put(format!("k{i}").as_bytes(), b"old", &PutOptions::default())
            .unwrap();
    }
    for i in 0..100 {
        a.put(format!("k{i}").as_bytes(), b"new", &PutOptions::default())
            .unwrap();
    }
    a.delete(b"k0").unwrap();
    a.flush().unwrap();
    eventually("b's copies dropped", || {
        (0..100).all(|i| !b.segment().contains(format!("k{i}").as_bytes()).unwrap())
    });
    assert!(b.get(b"k0").unwrap().is_none());
    assert_eq!(b.get(b"k99").unwrap().unwrap().bytes(), b"new");
}

#[test]
fn an_expiry_change_reaches_redis_and_the_other_machine() {
    let redis = RedisServer::start();
    let (d1, d2) = (ShmDir::new("exp1"), ShmDir::new("exp2"));
    let (a, b) = machines(&redis, &d1, &d2);
    let tag = TypeTag::new("<u1", vec![1]);
    a.put(b"k", b"v", &PutOptions::default().tag(tag)).unwrap();
    assert!(b.get(b"k").unwrap().is_some());
    assert!(a.expire(b"k", Some(Duration::from_secs(100))).unwrap());
    let pttl: i64 = redis.client().pttl("k").unwrap();
    assert!(pttl > 90_000 && pttl <= 100_000, "{pttl}");
    let tag_ttl: i64 = redis.client().pttl("strata:tag:{k}").unwrap();
    assert!(
        tag_ttl > 90_000,
        "the tag lives as long as the value: {tag_ttl}"
    );
    eventually("b's copy dropped", || !b.segment().contains(b"k").unwrap());
    let exp = b.get(b"k").unwrap().unwrap().type_tag();
    assert!(exp.is_some());
    assert!(b
        .segment()
        .peek(b"k")
        .unwrap()
        .unwrap()
        .expires_at_ms()
        .is_some());
    assert!(a.expire(b"k", None).unwrap());
    assert_eq!(redis.cli(&["PTTL", "k"]).trim(), "-1");
    assert!(!a.expire(b"absent", Some(Duration::from_secs(1))).unwrap());
}

//! The server in front of a real redis-server: misses fall through and
//! are promoted into L0, writes reach Redis, and Redis going away leaves
//! L0's hits served and misses answered with an error naming it.

mod support;

use std::time::{Duration, Instant};
use strata::WritePolicy;
use strata_server::Config;
use support::{RedisServer, ShmDir, TestServer};

#[test]
fn misses_fall_through_and_are_then_served_from_l0() {
    let redis = RedisServer::start();
    redis.cli(&["SET", "up", "from-redis"]);
    redis.cli(&["SET", "t", "x", "EX", "100"]);
    let dir = ShmDir::new("fall");
    let url = redis.url();
    let s = TestServer::with(&dir, |b| b.redis(&url), Config::default());
    let mut c = s.raw();
    assert_eq!(c.cmd(&["GET", "up"]), "$10\r\nfrom-redis\r\n");
    // Now in L0, where every process on the machine reads it.
    let seg = strata::Segment::open("srv", &dir.opts()).unwrap();
    assert_eq!(&*seg.get(b"up").unwrap().unwrap(), b"from-redis");
    // Served from L0: a change made behind strata's back is not seen.
    redis.cli(&["SET", "up", "changed"]);
    assert_eq!(c.cmd(&["GET", "up"]), "$10\r\nfrom-redis\r\n");
    // The TTL comes from Redis.
    assert_eq!(c.cmd(&["TTL", "t"]), ":100\r\n");
    assert_eq!(
        c.cmd(&["MGET", "up", "none", "t"]),
        "*3\r\n$10\r\nfrom-redis\r\n$-1\r\n$1\r\nx\r\n"
    );
    assert_eq!(c.cmd(&["EXISTS", "t", "none"]), ":1\r\n");
    // Writes go through to Redis.
    assert_eq!(c.cmd(&["SET", "down", "v", "EX", "50"]), "+OK\r\n");
    assert_eq!(redis.cli(&["GET", "down"]).trim(), "v");
    assert_eq!(redis.cli(&["TTL", "down"]).trim(), "50");
    assert_eq!(c.cmd(&["INCR", "counter"]), ":1\r\n");
    assert_eq!(c.cmd(&["INCR", "counter"]), ":2\r\n");
    assert_eq!(redis.cli(&["GET", "counter"]).trim(), "2");
    assert_eq!(c.cmd(&["DEL", "down"]), ":1\r\n");
    assert_eq!(redis.cli(&["EXISTS", "down"]).trim(), "0");
    let info = c.cmd(&["INFO", "strata"]);
    assert!(
        info.contains("upstream:redis") && info.contains("l2_hits:"),
        "{info}"
    );
}

#[test]
fn with_redis_down_hits_are_served_and_misses_fail_then_recover() {
    let mut redis = RedisServer::start();
    redis.cli(&["SET", "hot", "1"]);
    let dir = ShmDir::new("down");
    let url = redis.url();
    let s = TestServer::with(&dir, |b| b.redis(&url), Config::default());
    let mut c = s.raw();
    assert_eq!(c.cmd(&["GET", "hot"]), "$1\r\n1\r\n");
    redis.kill();
    for _ in 0..5 {
        assert_eq!(c.cmd(&["GET", "hot"]), "$1\r\n1\r\n");
        let miss = c.cmd(&["GET", "cold"]);
        assert!(miss.starts_with("-ERR upstream Redis"), "{miss}");
        let write = c.cmd(&["SET", "w", "1"]);
        assert!(write.starts_with("-ERR upstream Redis"), "{write}");
    }
    // Other clients are not held up by the failing ones.
    let mut other = s.raw();
    assert_eq!(other.cmd(&["GET", "hot"]), "$1\r\n1\r\n");
    redis.restart();
    redis.cli(&["SET", "cold", "back"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.cmd(&["GET", "cold"]);
        if r == "$4\r\nback\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn write_back_is_drained_to_redis_when_the_server_stops() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("wb");
    let url = redis.url();
    let s = TestServer::with(
        &dir,
        |b| b.redis(&url).write_policy(WritePolicy::Back),
        Config::default(),
    );
    let mut c = s.raw();
    for i in 0..500 {
        assert_eq!(
            c.cmd(&["SET", &format!("wb:{i}"), &i.to_string()]),
            "+OK\r\n"
        );
    }
    s.stop();
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "500");
    assert_eq!(redis.cli(&["GET", "wb:499"]).trim(), "499");
}

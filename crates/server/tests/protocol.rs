//! The server as clients see it: pipelining, inline commands, malformed
//! input, limits, AUTH and protected mode, pub/sub, transactions, and the
//! connection and server commands; with raw sockets, redis-cli and
//! redis-rs. Every abuse is followed by a check that another client is
//! still served.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};
use strata_server::Config;
use support::{encode, Raw, RedisServer, ShmDir, TestServer};

fn still_serves(s: &TestServer) {
    let mut c = s.raw();
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(c.cmd(&["SET", "alive", "yes"]), "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "alive"]), "$3\r\nyes\r\n");
}

#[test]
fn a_pipeline_is_answered_in_order() {
    let dir = ShmDir::new("pipe");
    let s = TestServer::start(&dir);
    let mut c = s.raw();
    let mut batch = Vec::new();
    for i in 0..2000 {
        let k = format!("k{i}");
        let v = format!("v{i}");
        batch.extend(encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
        batch.extend(encode(&[b"GET", k.as_bytes()]));
    }
    c.send(&batch);
    for i in 0..2000 {
        assert_eq!(c.reply(), "+OK\r\n");
        let v = format!("v{i}");
        assert_eq!(c.reply(), format!("${}\r\n{v}\r\n", v.len()));
    }
}

#[test]
fn inline_commands_work_as_in_redis() {
    let dir = ShmDir::new("inline");
    let s = TestServer::start(&dir);
    let mut c = s.raw();
    c.send(b"SET greeting \"hello world\"\r\nGET greeting\r\n\r\nPING\n");
    assert_eq!(c.reply(), "+OK\r\n");
    assert_eq!(c.reply(), "$11\r\nhello world\r\n");
    assert_eq!(c.reply(), "+PONG\r\n");
}

#[test]
fn malformed_input_gets_a_protocol_error_and_a_closed_connection() {
    let dir = ShmDir::new("malformed");
    let s = TestServer::start(&dir);
    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*-5x\r\n", "invalid multibulk length"),
        (b"*1\r\n$-3\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999999\r\n", "invalid bulk length"),
        (b"*2\r\n:1\r\n", "expected '$'"),
        (b"*1\r\n$3\r\nGETxx", "expected CRLF after the bulk string"),
        (b"SET \"unbalanced\r\n", "unbalanced quotes in request"),
        (
            b"\x00\x01\x02\xff\xfe garbage \"\r\n",
            "unbalanced quotes in request",
        ),
    ];
    for (input, why) in cases {
        let mut c = s.raw();
        c.send(input);
        assert_eq!(c.reply(), format!("-ERR Protocol error: {why}\r\n"));
        assert!(c.closed(), "{why}: the connection stays open");
        still_serves(&s);
    }
    // A line that never ends, past the inline limit.
    let mut c = s.raw();
    c.send(&vec![b'x'; 70 * 1024]);
    assert_eq!(c.reply(), "-ERR Protocol error: too big inline request\r\n");
    still_serves(&s);
    // Half a frame, then a hang-up.
    let mut c = s.raw();
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc");
    drop(c);
    still_serves(&s);
}

#[test]
fn a_bulk_larger_than_the_limit_is_refused_before_it_is_read() {
    let dir = ShmDir::new("bigbulk");
    let s = TestServer::start(&dir);
    let mut c = s.raw();
    // The limit is L0's largest value (the test segment is 32 MiB).
    let limit: u64 = c
        .cmd(&["CONFIG", "GET", "proto-max-bulk-len"])
        .lines()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(limit < 512 << 20);
    c.send(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", limit + 1).as_bytes());
    assert_eq!(c.reply(), "-ERR Protocol error: invalid bulk length\r\n");
    assert!(c.closed());
    still_serves(&s);
    // One at the limit is taken, or refused by L0 with a clear error.
    let mut c = s.raw();
    let big = vec![b'v'; 4 << 20];
    let r = String::from_utf8_lossy(&c.cmd_bytes(&[b"SET", b"big", &big])).into_owned();
    assert_eq!(r, "+OK\r\n");
    assert_eq!(c.cmd(&["STRLEN", "big"]), format!(":{}\r\n", 4 << 20));
}

#[test]
fn a_client_that_never_reads_is_held_back_not_buffered() {
    let dir = ShmDir::new("noread");
    let cfg = Config {
        client_output_buffer_limit: 1 << 20,
        ..Config::default()
    };
    let s = TestServer::with(&dir, |b| b, cfg);
    let mut c = s.raw();
    let value = vec![b'x'; 64 * 1024];
    assert_eq!(
        String::from_utf8_lossy(&c.cmd_bytes(&[b"SET", b"big", &value])),
        "+OK\r\n"
    );
    // Ask for far more than the server would hold, and never read.
    c.w.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Requests in batches of 1,000 GETs, each batch asking for 64 MiB of
    // replies. The kernel's socket buffers hold a few MiB of requests;
    // past them, writing blocks only if the server stopped reading.
    let batch: Vec<u8> = (0..1000).flat_map(|_| encode(&[b"GET", b"big"])).collect();
    let mut sent = 0usize;
    let blocked = loop {
        if c.w.write_all(&batch).is_err() {
            break true;
        }
        sent += batch.len();
        if sent > 64 << 20 {
            break false;
        }
    };
    assert!(
        blocked,
        "the server kept reading requests it could not answer"
    );
    still_serves(&s);
}

#[test]
fn maxclients_refuses_the_extra_client_and_frees_its_place() {
    let dir = ShmDir::new("maxclients");
    let cfg = Config {
        maxclients: 2,
        ..Config::default()
    };
    let s = TestServer::with(&dir, |b| b, cfg);
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(b.cmd(&["PING"]), "+PONG\r\n");
    let mut third = s.raw();
    assert_eq!(third.reply(), "-ERR max number of clients reached\r\n");
    assert!(third.closed());
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = s.raw();
        let r = c.cmd(&["PING"]);
        if r == "+PONG\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was not given back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(a.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn an_idle_client_is_closed_after_the_timeout() {
    let dir = ShmDir::new("idle");
    let cfg = Config {
        timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let s = TestServer::with(&dir, |b| b, cfg);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    assert!(c.closed(), "the idle client was not closed");
    still_serves(&s);
}

#[test]
fn auth_is_required_when_a_password_is_set() {
    let dir = ShmDir::new("auth");
    let cfg = Config {
        requirepass: Some("sekret".into()),
        ..Config::default()
    };
    let s = TestServer::with(&dir, |b| b, cfg);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
    assert!(c
        .cmd(&["HELLO", "3"])
        .starts_with("-NOAUTH HELLO must be called"));
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        c.cmd(&["AUTH", "someone", "sekret"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    // Before AUTH, requests stay small.
    let mut big = s.raw();
    big.send(b"*20\r\n");
    assert_eq!(
        big.reply(),
        "-ERR Protocol error: invalid multibulk length\r\n"
    );
    assert_eq!(c.cmd(&["AUTH", "sekret"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
    let mut h = s.raw();
    assert!(h
        .cmd(&["HELLO", "3", "AUTH", "default", "sekret"])
        .starts_with("%7\r\n"));
    assert_eq!(h.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(h.cmd(&["QUIT"]), "+OK\r\n");
    assert!(h.closed());
    // Through a real client library, with the password in the URL.
    let url = format!("redis://:sekret@127.0.0.1:{}/0", s.port);
    let mut r = redis::Client::open(url).unwrap().get_connection().unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut r).unwrap();
    assert_eq!(v, "v");
}

#[test]
fn protected_mode_refuses_other_addresses_without_a_password() {
    let dir = ShmDir::new("protected");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = || {
        strata::Cache::builder("p")
            .segment_options(dir.opts())
            .build()
            .unwrap()
    };
    let open = Config {
        bind: "0.0.0.0".into(),
        port: 0,
        ..Config::default()
    };
    let e = rt
        .block_on(strata_server::Server::bind(cache(), open.clone()))
        .err()
        .expect("bound 0.0.0.0 without a password");
    assert!(matches!(e, strata_server::Error::ProtectedMode { .. }));
    assert!(e.to_string().contains("protected mode"));
    let guarded = Config {
        requirepass: Some("pw".into()),
        ..open
    };
    assert!(rt
        .block_on(strata_server::Server::bind(cache(), guarded))
        .is_ok());
}

#[test]
fn pubsub_answers_as_redis_does_in_resp2_and_resp3() {
    let redis = RedisServer::start();
    let dir = ShmDir::new("pubsub");
    let s = TestServer::start(&dir);
    for resp3 in [false, true] {
        let mut answers = Vec::new();
        for port in [redis.port, s.port] {
            let mut sub = Raw::connect(port);
            let mut publ = Raw::connect(port);
            let mut log = Vec::new();
            if resp3 {
                sub.cmd(&["HELLO", "3"]);
            }
            log.push(sub.cmd(&["SUBSCRIBE", "news", "sport"]));
            log.push(sub.reply());
            log.push(sub.cmd(&["PSUBSCRIBE", "n*"]));
            if !resp3 {
                log.push(sub.cmd(&["GET", "k"]));
            }
            log.push(sub.cmd(&["PING"]));
            log.push(publ.cmd(&["PUBLISH", "news", "hello"]));
            log.push(sub.reply());
            log.push(sub.reply());
            log.push(publ.cmd(&["PUBLISH", "nothing", "x"]));
            log.push(sub.reply());
            log.push(publ.cmd(&["PUBSUB", "NUMSUB", "news", "none"]));
            log.push(publ.cmd(&["PUBSUB", "NUMPAT"]));
            log.push(publ.cmd(&["PUBSUB", "CHANNELS", "s*"]));
            log.push(sub.cmd(&["UNSUBSCRIBE", "news"]));
            log.push(sub.cmd(&["UNSUBSCRIBE"]));
            log.push(sub.cmd(&["PUNSUBSCRIBE"]));
            log.push(sub.cmd(&["UNSUBSCRIBE"]));
            log.push(sub.cmd(&["PING"]));
            answers.push(log);
        }
        assert_eq!(answers[1], answers[0], "resp3: {resp3}");
    }
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected() {
    let dir = ShmDir::new("slowsub");
    let cfg = Config {
        pubsub_output_buffer_limit: 1 << 20,
        ..Config::default()
    };
    let s = TestServer::with(&dir, |b| b, cfg);
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "firehose"]);
    let mut publ = s.raw();
    let msg = "m".repeat(64 * 1024);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publ.cmd(&["PUBLISH", "firehose", &msg]);
        let subs = publ.cmd(&["PUBSUB", "NUMSUB", "firehose"]);
        if subs.ends_with(":0\r\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the subscriber was never cut off"
        );
    }
    still_serves(&s);
}

#[test]
fn transactions_and_watch_see_changes_from_other_clients() {
    let dir = ShmDir::new("watch");
    let s = TestServer::start(&dir);
    let mut a = s.raw();
    let mut b = s.raw();
    a.cmd(&["SET", "bal", "10"]);
    assert_eq!(a.cmd(&["WATCH", "bal"]), "+OK\r\n");
    b.cmd(&["INCR", "bal"]);
    a.cmd(&["MULTI"]);
    assert_eq!(a.cmd(&["INCR", "bal"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(a.cmd(&["WATCH", "bal"]), "+OK\r\n");
    a.cmd(&["MULTI"]);
    a.cmd(&["INCRBY", "bal", "5"]);
    assert_eq!(a.cmd(&["EXEC"]), "*1\r\n:16\r\n");
    // An expiry set by another client is a change too.
    a.cmd(&["WATCH", "bal"]);
    b.cmd(&["EXPIRE", "bal", "100"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["GET", "bal"]);
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
}

#[test]
fn connection_and_server_commands() {
    let dir = ShmDir::new("conn");
    let s = TestServer::start(&dir);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "worker-1"]), "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "$8\r\nworker-1\r\n");
    assert!(c
        .cmd(&["CLIENT", "SETNAME", "has space"])
        .starts_with("-ERR Client names cannot"));
    let id = c.cmd(&["CLIENT", "ID"]);
    assert!(id.starts_with(':'));
    let list = c.cmd(&["CLIENT", "LIST"]);
    assert!(list.contains("name=worker-1"), "{list}");
    assert!(c.cmd(&["CLIENT", "INFO"]).contains("name=worker-1"));
    assert!(c
        .cmd(&["CLIENT", "NOPE"])
        .starts_with("-ERR unknown subcommand"));
    assert_eq!(c.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["SELECT", "3"]),
        "-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(
        c.cmd(&["HSET", "h", "f", "v"]),
        "-ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v' \r\n"
    );
    // Another client is killed by id.
    let mut victim = s.raw();
    victim.cmd(&["PING"]);
    let vid = victim.cmd(&["CLIENT", "ID"]);
    let vid = vid.trim().trim_start_matches(':');
    assert_eq!(c.cmd(&["CLIENT", "KILL", "ID", vid]), ":1\r\n");
    assert!(victim.closed());
    // RESET drops the name and goes back to RESP2.
    c.cmd(&["HELLO", "3"]);
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "$-1\r\n");

    assert!(c.cmd(&["COMMAND", "COUNT"]).starts_with(':'));
    let info = c.cmd(&["COMMAND", "INFO", "get", "nope"]);
    assert!(
        info.starts_with("*2\r\n*10\r\n$3\r\nget\r\n:2\r\n"),
        "{info}"
    );
    assert!(info.ends_with("*-1\r\n"));
    assert!(c
        .cmd(&["COMMAND", "DOCS", "set"])
        .contains("Sets the string value"));
    assert_eq!(
        c.cmd(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    c.cmd(&["SET", "k", "v"]);
    c.cmd(&["GET", "k"]);
    c.cmd(&["GET", "missing"]);
    let info = c.cmd(&["INFO"]);
    for field in [
        "redis_version:",
        "connected_clients:",
        "used_memory:",
        "keyspace_hits:1",
        "keyspace_misses:1",
        "db0:keys=",
        "# Strata",
        "l0_hits:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}: {info}");
    }
    let stats = c.cmd(&["INFO", "stats"]);
    assert!(stats.contains("# Stats") && !stats.contains("# Server"));
    assert!(c
        .cmd(&["INFO", "commandstats"])
        .contains("cmdstat_get:calls="));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxclients"]),
        "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxclients", "50"]), "+OK\r\n");
    assert!(c.cmd(&["CONFIG", "GET", "max*"]).contains("$2\r\n50\r\n"));
    assert!(c
        .cmd(&["CONFIG", "SET", "port", "1"])
        .starts_with("-ERR CONFIG SET failed"));
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0"]), "+OK\r\n");
    assert!(c.cmd(&["TIME"]).starts_with("*2\r\n"));
    // SCAN walks every key exactly once.
    for i in 0..300 {
        c.cmd(&["SET", &format!("scan:{i}"), "x"]);
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        c.send(&encode(&[
            b"SCAN",
            cursor.as_bytes(),
            b"MATCH",
            b"scan:*",
            b"COUNT",
            b"50",
        ]));
        let r = c.reply();
        let lines: Vec<&str> = r.split("\r\n").collect();
        cursor = lines[2].to_string();
        for k in lines[4..].iter().skip(1).step_by(2) {
            assert!(seen.insert(k.to_string()), "{k} twice");
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
}

#[test]
fn redis_cli_works_interactively_and_by_arguments() {
    let dir = ShmDir::new("cli");
    let s = TestServer::start(&dir);
    assert_eq!(s.cli(&["SET", "user:1", "ada"]).trim(), "OK");
    assert_eq!(s.cli(&["GET", "user:1"]).trim(), "ada");
    assert_eq!(s.cli(&["INCR", "visits"]).trim(), "1");
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &s.port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SET colour blue\nGET colour\nMGET colour user:1 nope\nTTL colour\nDBSIZE\n")
        .unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(out, "OK\nblue\nblue\nada\n\n-1\n3\n");
    assert!(s.cli(&["INFO", "server"]).contains("redis_version"));
}

#[test]
fn redis_rs_works_sync_async_and_in_resp3() {
    let dir = ShmDir::new("redisrs");
    let s = TestServer::start(&dir);
    let mut c = s.client();
    let (): () = redis::cmd("SET")
        .arg("a")
        .arg(b"\x00\x01binary")
        .query(&mut c)
        .unwrap();
    let v: Vec<u8> = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    assert_eq!(v, b"\x00\x01binary");
    let (x, y): (i64, Option<String>) = redis::pipe()
        .cmd("INCRBY")
        .arg("n")
        .arg(5)
        .cmd("GET")
        .arg("none")
        .query(&mut c)
        .unwrap();
    assert_eq!((x, y), (5, None));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for url in [s.url(), format!("{}?protocol=resp3", s.url())] {
        rt.block_on(async {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let (): () = redis::cmd("SET")
                .arg("async")
                .arg("yes")
                .query_async(&mut c)
                .await
                .unwrap();
            let v: String = redis::cmd("GET")
                .arg("async")
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(v, "yes");
            let vs: Vec<Option<String>> = redis::cmd("MGET")
                .arg("async")
                .arg("none")
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(vs, vec![Some("yes".into()), None]);
            let ttl: i64 = redis::cmd("TTL")
                .arg("async")
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(ttl, -1);
        });
    }
}

#[test]
fn graceful_shutdown_finishes_and_closes() {
    let dir = ShmDir::new("shutdown");
    let s = TestServer::start(&dir);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["SET", "kept", "1"]), "+OK\r\n");
    let port = s.port;
    s.stop();
    assert!(c.closed());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // L0 keeps the data for the next server and for other processes.
    let seg = strata::Segment::open("srv", &dir.opts()).unwrap();
    assert_eq!(&*seg.get(b"kept").unwrap().unwrap(), b"1");
}

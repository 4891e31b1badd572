//! A real redis-server for the tests, on a free loopback port, and a
//! private directory for L0 segments.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    cluster: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::new(false)
    }

    fn start_clustered() -> RedisServer {
        Self::new(true)
    }

    fn new(cluster: bool) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "strata-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = RedisServer {
            port: free_port(),
            child: None,
            dir,
            cluster,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let mut extra: Vec<String> = Vec::new();
        if self.cluster {
            extra.extend(
                ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"].map(String::from),
            );
            extra.push("--cluster-config-file".into());
            extra.push(format!("nodes-{}.conf", self.port));
        }
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(&extra)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.cli(&["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs redis-cli against the server; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let o = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Raw bytes of a GET through redis-cli.
    pub fn cli_get_raw(&self, key: &str) -> Vec<u8> {
        let o = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw", "GET", key])
            .output()
            .unwrap();
        let mut out = o.stdout;
        // --raw ends the reply with a newline.
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        out
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Waits until this primary's replicas have every write it took
    /// (replication is asynchronous: a primary killed sooner may take
    /// writes with it, as Redis documents).
    pub fn wait_replicated(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.cli(&["INFO", "replication"]);
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let master = field("master_repl_offset:").and_then(|v| v.parse::<u64>().ok());
            let replica = field("slave0:").and_then(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("offset="))
                    .and_then(|o| o.parse::<u64>().ok())
            });
            if let (Some(m), Some(r)) = (master, replica) {
                if r >= m {
                    return;
                }
            }
            assert!(Instant::now() < end, "the replica never caught up: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory under /dev/shm for L0 segments, removed when dropped.
pub struct ShmDir {
    pub path: PathBuf,
}

impl ShmDir {
    pub fn new(tag: &str) -> ShmDir {
        let path = PathBuf::from(format!(
            "/dev/shm/strata-cache-test-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&path).unwrap();
        ShmDir { path }
    }

    pub fn opts(&self) -> strata::SegmentOptions {
        strata::SegmentOptions::default()
            .memory(32 << 20)
            .dir(&self.path)
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A real Redis Cluster: `masters` primaries with `replicas` replicas each,
/// joined with `redis-cli --cluster create`, on free loopback ports.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let n = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..n).map(|_| RedisServer::start_clustered()).collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for node in &nodes {
            cmd.arg(format!("127.0.0.1:{}", node.port));
        }
        cmd.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let c = RedisCluster { nodes };
        c.wait_ok();
        c
    }

    /// Waits until every node reports the cluster ok and every replica
    /// has synced with its primary (a replica that never has cannot take
    /// over when the primary dies).
    pub fn wait_ok(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let ready = |n: &RedisServer| {
                n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") && {
                    let repl = n.cli(&["INFO", "replication"]);
                    repl.contains("role:master") || repl.contains("master_link_status:up")
                }
            };
            if self.nodes.iter().filter(|n| n.child.is_some()).all(ready) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not become ok");
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.url().replace("/0", ""))
            .collect()
    }

    /// The node that serves `key` as a primary.
    pub fn master_of(&mut self, key: &str) -> &mut RedisServer {
        let out = self.nodes[0].cli(&["CLUSTER", "KEYSLOT", key]);
        let slot: u16 = out.trim().parse().unwrap();
        let shards = self.nodes[0].cli(&["CLUSTER", "NODES"]);
        let port = shards
            .lines()
            .find(|l| {
                l.contains("master") && !l.contains("fail") && {
                    l.split_whitespace().skip(8).any(|r| {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        match (a.parse::<u16>(), b.parse::<u16>()) {
                            (Ok(a), Ok(b)) => a <= slot && slot <= b,
                            _ => false,
                        }
                    })
                }
            })
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|addr| addr.split(['@', ':']).nth(1))
            .and_then(|p| p.parse::<u16>().ok())
            .expect("a master for the slot");
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }
}

/// Runs this test binary again as a child process whose `child_entry`
/// test plays `role`, with the segment directory (and any `env`) given;
/// its standard output is piped.
pub fn spawn_role(role: &str, dir: &ShmDir, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("STRATA_TEST_ROLE", role)
        .env("SEG_DIR", &dir.path)
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

//! A strata server in this process on a free port, a raw RESP client that
//! reads replies byte for byte, and (from the cache crate's tests) a real
//! redis-server and a private segment directory.

#![allow(dead_code)]

#[path = "../../../cache/tests/common/mod.rs"]
pub mod common;

pub use common::{RedisServer, ShmDir};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use strata_server::{Config, Server, ServerHandle};

pub struct TestServer {
    pub port: u16,
    pub handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server over a new cache in `dir`, L0 only.
    pub fn start(dir: &ShmDir) -> TestServer {
        Self::with(dir, |b| b, Config::default())
    }

    pub fn with(
        dir: &ShmDir,
        build: impl FnOnce(strata::CacheBuilder) -> strata::CacheBuilder,
        mut cfg: Config,
    ) -> TestServer {
        cfg.port = 0;
        let cache = build(strata::Cache::builder("srv").segment_options(dir.opts()))
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(cache, cfg).await.unwrap();
                tx.send((server.local_addr().port(), server.handle()))
                    .unwrap();
                server.run(std::future::pending()).await.unwrap();
            });
        });
        let (port, handle) = rx.recv().unwrap();
        TestServer {
            port,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// Runs redis-cli against the server; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let o = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A client that sends bytes and reads whole replies, as bytes.
pub struct Raw {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// Sends a command and returns its whole reply.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&encode(&a));
        self.reply()
    }

    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args));
        self.reply_bytes()
    }

    pub fn reply(&mut self) -> String {
        String::from_utf8_lossy(&self.reply_bytes()).into_owned()
    }

    /// One whole reply of any RESP2 or RESP3 type, exactly as sent.
    pub fn reply_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_value(&mut out);
        out
    }

    fn line(&mut self, out: &mut Vec<u8>) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).unwrap();
        assert!(
            l.ends_with(b"\r\n"),
            "truncated reply: {:?}",
            String::from_utf8_lossy(&l)
        );
        out.extend_from_slice(&l);
        l.truncate(l.len() - 2);
        l
    }

    fn read_value(&mut self, out: &mut Vec<u8>) {
        let l = self.line(out);
        let n = || -> i64 { std::str::from_utf8(&l[1..]).unwrap().parse().unwrap() };
        match l[0] {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'=' | b'!' => {
                let len = n();
                if len >= 0 {
                    let mut b = vec![0; len as usize + 2];
                    self.r.read_exact(&mut b).unwrap();
                    out.extend_from_slice(&b);
                }
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..n().max(0) {
                    self.read_value(out);
                }
            }
            b'%' | b'|' => {
                for _ in 0..2 * n() {
                    self.read_value(out);
                }
            }
            other => panic!("unknown reply type {:?}", other as char),
        }
    }

    /// Whether the server closed the connection (reads end of file).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }
}

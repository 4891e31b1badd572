//! `rediss://`: the tiered cache over TLS to a real redis-server (feature
//! `tls`; the test suite builds it once). The server's certificate is
//! self-signed, so the URL asks for no verification (`#insecure`).

#![cfg(feature = "tls")]

mod common;

use common::ShmDir;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct TlsRedis {
    port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("strata-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(ok.success());
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(dir.join("cert.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("key.pem"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("cert.pem"))
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let s = TlsRedis { port, child, dir };
        let end = Instant::now() + Duration::from_secs(10);
        while s.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < end, "redis-server with TLS did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn cli(&self, args: &[&str]) -> String {
        let o = Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(self.dir.join("cert.pem"))
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn reads_and_writes_go_through_tls() {
    let redis = TlsRedis::start();
    redis.cli(&["SET", "up", "over-tls"]);
    let dir = ShmDir::new("tls");
    let url = format!("rediss://127.0.0.1:{}/0#insecure", redis.port);
    let cache = strata::Cache::builder("tls")
        .segment_options(dir.opts())
        .redis(&url)
        .build()
        .unwrap();
    assert_eq!(cache.get(b"up").unwrap().unwrap().bytes(), b"over-tls");
    cache
        .put(b"down", b"v", &strata::PutOptions::default())
        .unwrap();
    assert_eq!(redis.cli(&["GET", "down"]), "v");
    // A plain-text URL to the TLS port fails with an upstream error.
    let plain = strata::Cache::builder("plain")
        .segment_options(dir.opts())
        .redis(&format!("redis://127.0.0.1:{}/0", redis.port))
        .build();
    let failed = match plain {
        Err(e) => matches!(e, strata::Error::Upstream(_)),
        Ok(c) => matches!(c.get(b"nope"), Err(strata::Error::Upstream(_))),
    };
    assert!(failed, "plain text to a TLS port must fail");
}

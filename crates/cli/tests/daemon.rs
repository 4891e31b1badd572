//! `strata start | stop | status` as a user runs them: a real background
//! server, signals, `kill -9`, a config file, and the metrics endpoint.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Env {
    dir: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Env {
    fn new(tag: &str) -> Env {
        let dir = std::path::PathBuf::from(format!(
            "/dev/shm/strata-daemon-test-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("STRATA_NAME")
            .env_remove("STRATA_REQUIREPASS")
            .env("XDG_STATE_HOME", &self.dir)
            .output()
            .unwrap()
    }
    fn status_json(&self, name: &str) -> serde_json::Value {
        let o = self.run(&["status", "-n", name, "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Stop whatever a failed test left running.
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("strata-server.")
                .and_then(|n| n.strip_suffix(".json"))
            {
                let _ = self.run(&["stop", "-n", n]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn start_status_stop_and_a_second_start_refused() {
    let e = Env::new("life");
    let port = free_port().to_string();
    let o = e.run(&["start", "-n", "life", "-m", "32MiB", "--port", &port]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains(&format!("on 127.0.0.1:{port}")), "{out}");
    assert!(out.contains("logs in"), "{out}");
    let port: u16 = port.parse().unwrap();
    assert_eq!(cli(port, &["SET", "k", "v"]), "OK");
    assert_eq!(cli(port, &["GET", "k"]), "v");

    // The same name again, or the same port under another name: refused.
    let again = e.run(&["start", "-n", "life", "--port", &free_port().to_string()]);
    assert_eq!(again.status.code(), Some(3));
    assert!(text(&again).contains("already running"), "{}", text(&again));
    let clash = e.run(&[
        "start",
        "-n",
        "other",
        "-m",
        "16MiB",
        "--port",
        &port.to_string(),
    ]);
    assert_eq!(clash.status.code(), Some(3));
    assert!(
        text(&clash).contains("cannot listen on"),
        "{}",
        text(&clash)
    );

    let s = e.status_json("life");
    assert_eq!(s["server"]["port"], port);
    assert!(s["server"]["pid"].as_u64().unwrap() > 0);
    let human = text(&e.run(&["status", "-n", "life"]));
    assert!(human.contains("server    pid"), "{human}");

    let o = e.run(&["stop", "-n", "life"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(e.status_json("life")["server"].is_null());
    let o = e.run(&["stop", "-n", "life"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // The data stays in L0 for the next start and for other processes.
    assert_eq!(text(&e.run(&["get", "k", "-n", "life"])), "v");
}

fn pid_of(e: &Env, name: &str) -> i32 {
    e.status_json(name)["server"]["pid"].as_i64().unwrap() as i32
}

fn wait_gone(e: &Env, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !e.status_json(name)["server"].is_null() {
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_gracefully_and_kill_9_leaves_data_to_restart_with() {
    let e = Env::new("signals");
    let port = free_port();
    let ps = port.to_string();
    assert!(e
        .run(&["start", "-n", "sig", "-m", "32MiB", "--port", &ps])
        .status
        .success());
    cli(port, &["SET", "a", "1"]);
    Command::new("kill")
        .args(["-TERM", &pid_of(&e, "sig").to_string()])
        .status()
        .unwrap();
    wait_gone(&e, "sig");

    let o = e.run(&["start", "-n", "sig", "--port", &ps]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(cli(port, &["GET", "a"]), "1");
    cli(port, &["SET", "b", "2"]);
    Command::new("kill")
        .args(["-9", &pid_of(&e, "sig").to_string()])
        .status()
        .unwrap();
    wait_gone(&e, "sig");

    let o = e.run(&["start", "-n", "sig", "--port", &ps]);
    assert!(o.status.success(), "after kill -9: {}", text(&o));
    assert_eq!(cli(port, &["MGET", "a", "b"]), "1\n2");
    assert!(e.run(&["stop", "-n", "sig"]).status.success());
}

#[test]
fn protected_mode_and_bad_options_are_refused_before_starting() {
    let e = Env::new("refuse");
    let o = e.run(&[
        "start",
        "-n",
        "p",
        "--bind",
        "0.0.0.0",
        "--port",
        &free_port().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("protected mode"), "{}", text(&o));
    let o = e.run(&["start", "-n", "p", "--write", "back"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("need an upstream"), "{}", text(&o));
    let o = e.run(&["start", "--port", "notaport"]);
    assert_eq!(o.status.code(), Some(2));
    let o = e.run(&["start", "--help"]);
    assert!(o.status.success() && text(&o).contains("--requirepass"));
}

#[test]
fn a_config_file_with_flags_overriding_it() {
    let e = Env::new("config");
    let port = free_port();
    let pwfile = e.dir.join("pw");
    std::fs::write(&pwfile, "s3cret\n").unwrap();
    let conf = e.dir.join("strata.toml");
    std::fs::write(
        &conf,
        format!(
            "name = \"conf\"\nmemory = \"16MiB\"\nport = 1\nrequirepass_file = \"{}\"\n",
            pwfile.display()
        ),
    )
    .unwrap();
    let o = e.run(&[
        "start",
        "--config",
        conf.to_str().unwrap(),
        "--port",
        &port.to_string(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(cli(port, &["GET", "k"]).contains("NOAUTH"));
    assert_eq!(
        cli(
            port,
            &["-a", "s3cret", "--no-auth-warning", "SET", "k", "v"]
        ),
        "OK"
    );
    assert!(e.run(&["stop", "-n", "conf"]).status.success());
    std::fs::write(&conf, "nmae = \"typo\"\n").unwrap();
    let o = e.run(&["start", "--config", conf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("unknown field"), "{}", text(&o));
}

#[test]
fn metrics_are_served_in_prometheus_text_format() {
    let e = Env::new("metrics");
    let (port, mport) = (free_port(), free_port());
    let o = e.run(&[
        "start",
        "-n",
        "m",
        "-m",
        "16MiB",
        "--port",
        &port.to_string(),
        "--metrics-port",
        &mport.to_string(),
        "--log-format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    cli(port, &["SET", "k", "v"]);
    cli(port, &["GET", "k"]);
    cli(port, &["GET", "nope"]);
    let mut s = TcpStream::connect(("127.0.0.1", mport)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for line in [
        "strata_keyspace_hits_total 1",
        "strata_keyspace_misses_total 1",
        "strata_commands_total{cmd=\"get\"} 2",
        "strata_tier_hits_total{tier=\"l0\"}",
        "strata_command_duration_seconds_bucket{le=\"+Inf\"}",
        "strata_connected_clients",
    ] {
        assert!(body.contains(line), "missing {line}: {body}");
    }
    assert!(e.run(&["stop", "-n", "m"]).status.success());
    // Logs are JSON lines.
    let log = std::fs::read_to_string(e.dir.join("strata/m.log")).unwrap();
    let first = log.lines().next().unwrap();
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(v["fields"]["message"], "accepting connections");
}

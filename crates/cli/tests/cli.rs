//! The `strata` binary, run as a user would: every command, its exit code
//! and its output.

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Env {
    dir: std::path::PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir =
            std::path::PathBuf::from(format!("/dev/shm/strata-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("STRATA_NAME");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    /// Runs with `input` on standard input.
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
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

#[test]
fn the_whole_life_of_a_segment() {
    let e = Env::new();
    let o = e.run(&["init", "--name", "t", "--memory", "16MiB"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created"));
    let o = e.run(&["init", "--name", "t", "--memory", "16MiB"]);
    assert!(text(&o).contains("attached"), "{}", text(&o));
    assert!(!text(&o).contains("keeps"), "{}", text(&o));
    // A size that differs from the existing segment's is not silently
    // ignored: the segment keeps its own, and the user is told.
    let o = e.run(&["init", "--name", "t", "--memory", "32MiB"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("keeps its size, 16.0 MiB (not 32.0 MiB)"),
        "{}",
        text(&o)
    );
    assert!(e
        .run(&["set", "hello", "world", "-n", "t"])
        .status
        .success());
    let o = e.run(&["get", "hello", "-n", "t"]);
    assert_eq!(o.status.code(), Some(0));
    // Into a pipe, the exact bytes: no newline added.
    assert_eq!(String::from_utf8_lossy(&o.stdout), "world");
    assert_eq!(e.run(&["get", "nope", "-n", "t"]).status.code(), Some(1));
    let o = e.run(&["status", "-n", "t", "--json", "--check"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["entries"], 1);
    assert_eq!(v["violations"], serde_json::json!([]));
    let o = e.run(&["status", "-n", "t"]);
    assert!(text(&o).contains("entries   1"), "{}", text(&o));
    assert_eq!(e.run(&["del", "hello", "-n", "t"]).status.code(), Some(0));
    assert_eq!(e.run(&["del", "hello", "-n", "t"]).status.code(), Some(1));
    assert!(e
        .run(&["set", "t1", "v", "--ttl", "0.001", "-n", "t"])
        .status
        .success());
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(
        e.run(&["get", "t1", "-n", "t"]).status.code(),
        Some(1),
        "expired"
    );
    assert!(e.run(&["drop", "-n", "t"]).status.success());
    assert_eq!(e.run(&["drop", "-n", "t"]).status.code(), Some(1));
}

#[test]
fn binary_values_go_in_through_stdin_and_come_out_exactly() {
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "b", "--memory", "16MiB"])
        .status
        .success());
    // Every byte value, NUL and newlines included, and more than a pipe
    // buffer holds.
    let value: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let o = e.run_with_input(&["set", "emb:1", "-n", "b"], &value);
    assert!(o.status.success(), "{}", text(&o));
    let o = e.run(&["get", "emb:1", "-n", "b"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout == value, "got {} bytes back", o.stdout.len());
    // An empty standard input stores an empty value.
    let o = e.run_with_input(&["set", "empty", "-n", "b"], b"");
    assert!(o.status.success(), "{}", text(&o));
    let o = e.run(&["get", "empty", "-n", "b"]);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0));
}

#[test]
fn errors_are_clear() {
    let e = Env::new();
    let o = e.run(&["get", "k", "-n", "missing"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("does not exist"), "{}", text(&o));
    // Every invalid argument is bad usage: exit 2.
    let o = e.run(&["init", "-n", "bad/name"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("invalid segment name"), "{}", text(&o));
    let o = e.run(&["init", "-n", "x", "--memory", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("invalid size"), "{}", text(&o));
    assert!(e
        .run(&["init", "-n", "x", "--memory", "8MiB"])
        .status
        .success());
    let o = e.run(&["set", "k", "v", "--ttl", "-1", "-n", "x"]);
    assert_eq!(o.status.code(), Some(2));
    // Longer than a segment stores: refused, not clamped.
    for ttl in ["1e17", "1e300", "18446744073709551615"] {
        let o = e.run(&["set", "k", "v", "--ttl", ttl, "-n", "x"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains("too long (at most 9223372036854775 seconds"),
            "{}",
            text(&o)
        );
    }
    assert_eq!(e.run(&["get", "k", "-n", "x"]).status.code(), Some(1));
    // An OS error is said once.
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--dir", "/etc/hostname", "get", "k"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let msg = text(&o);
    assert_eq!(msg.matches("os error").count(), 1, "{msg}");
    assert_eq!(e.run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn every_command_has_help() {
    let e = Env::new();
    for cmd in [
        "init", "drop", "set", "get", "del", "list", "keys", "ttl", "expire", "persist", "warm",
        "status", "bench",
    ] {
        let o = e.run(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        assert!(text(&o).contains("Usage"), "{cmd}: {}", text(&o));
    }
}

#[test]
fn bench_json_has_the_promised_keys() {
    let e = Env::new();
    let o = e.run(&[
        "bench",
        "--keys",
        "2000",
        "--seconds",
        "0.05",
        "--readers",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "get_p50_ns",
        "get_p99_ns",
        "get_p999_ns",
        "floor_p50_ns",
        "hashmap_p50_ns",
        "min_index_p50_ns",
        "ratio_floor",
        "ratio_min_index",
        "ratio_hashmap",
        "gets_per_s",
        "puts_per_s",
        "torn_reads",
        "readers",
        "keys",
        "value_bytes",
    ] {
        assert!(!v[k].is_null(), "missing {k} in {v}");
        assert!(
            !v["uniform"][k].is_null()
                || ["puts_per_s", "readers", "keys", "value_bytes"].contains(&k),
            "uniform.{k}"
        );
    }
    assert_eq!(v["torn_reads"], 0);
    assert_eq!(v["keys"], 2000);
    // The peers found every key: their figures are of real reads.
    assert_eq!(v["peer_misses"], 0);
    assert_eq!(v["uniform"]["peer_misses"], 0);
    // It cleaned up after itself.
    assert_eq!(std::fs::read_dir(&e.dir).unwrap().count(), 0);
}

#[test]
fn keys_ttl_expire_persist_and_list() {
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "k", "--memory", "16MiB"])
        .status
        .success());
    for key in ["emb:1", "emb:2", "user:1"] {
        assert!(e.run(&["set", key, "v", "-n", "k"]).status.success());
    }
    let o = e.run(&["keys", "-n", "k"]);
    let mut all: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    all.sort();
    assert_eq!(all, ["emb:1", "emb:2", "user:1"]);
    let o = e.run(&["keys", "emb:[12]", "-n", "k"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    let o = e.run(&["ttl", "emb:1", "-n", "k"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "-1");
    assert_eq!(e.run(&["ttl", "nope", "-n", "k"]).status.code(), Some(1));
    assert!(e
        .run(&["expire", "emb:1", "100", "-n", "k"])
        .status
        .success());
    let o = e.run(&["ttl", "emb:1", "-n", "k"]);
    let left: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(left > 90.0 && left <= 100.0, "{left}");
    assert!(e.run(&["persist", "emb:1", "-n", "k"]).status.success());
    let o = e.run(&["ttl", "emb:1", "-n", "k"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "-1");
    assert_eq!(
        e.run(&["expire", "nope", "5", "-n", "k"]).status.code(),
        Some(1)
    );
    assert_eq!(
        e.run(&["expire", "emb:1", "0", "-n", "k"]).status.code(),
        Some(2)
    );
    let o = e.run(&["list"]);
    assert!(text(&o).contains("k\t16.0 MiB\t3 entries"), "{}", text(&o));
    let o = e.run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["entries"].as_u64()),
        (Some("k"), Some(3))
    );
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "p", "--memory", "64MiB"])
        .status
        .success());
    let big = vec![7u8; 4 << 20];
    assert!(e
        .run_with_input(&["set", "big", "-n", "p"], &big)
        .status
        .success());
    for args in [
        vec!["get", "big", "-n", "p"],
        vec!["status", "-n", "p"],
        vec!["keys", "-n", "p"],
    ] {
        // A reader that takes nothing and goes away at once.
        let mut child = e
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o));
    }
}

/// Runs the `strata` binary as user `nobody` (through setpriv), or None
/// where this machine cannot.
fn as_nobody(e: &Env, args: &[&str]) -> Option<Output> {
    let uid = "65534";
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let o = Command::new(setpriv)
        .args(["--reuid", uid, "--regid", uid, "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_strata"))
        .arg("--dir")
        .arg(&e.dir)
        .args(args)
        .output()
        .ok()?;
    // Not root, or no such user: setpriv itself fails.
    (o.status.code() != Some(127) && !text(&o).contains("setpriv:")).then_some(o)
}

#[test]
fn a_segment_planted_by_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    // A directory anyone may create files in, as /dev/shm is.
    std::fs::set_permissions(&e.dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    if !is_root() {
        eprintln!("skipping: only root can run a command as nobody");
        return;
    }
    let Some(o) = as_nobody(&e, &["init", "-n", "planted", "--memory", "8MiB"]) else {
        eprintln!("skipping: setpriv cannot run a command as nobody here");
        return;
    };
    assert!(o.status.success(), "{}", text(&o));
    let o = as_nobody(&e, &["set", "k", "from-nobody", "-n", "planted"]).unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for args in [
        &["init", "-n", "planted"][..],
        &["get", "k", "-n", "planted"][..],
    ] {
        let o = e.run(args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("belongs to user 65534"), "{}", text(&o));
        assert!(text(&o).contains("--trust-foreign"), "{}", text(&o));
    }
    let o = e.run(&["--trust-foreign", "get", "k", "-n", "planted"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(o.stdout, b"from-nobody");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn warm_loads_from_a_real_redis_by_keys_pattern_and_file() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap()
    };
    while String::from_utf8_lossy(&cli(&["PING"]).stdout).trim() != "PONG" {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for i in 0..300 {
        cli(&["SET", &format!("emb:{i}"), &format!("v{i}")]);
    }
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "w", "--memory", "16MiB"])
        .status
        .success());
    let url = format!("redis://127.0.0.1:{port}/0");
    let o = e.run(&["warm", "emb:1", "emb:2", "nope", "-n", "w", "--redis", &url]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("3 keys, 2 loaded, 0 already there, 1 not in Redis"),
        "{}",
        text(&o)
    );
    let o = e.run(&["warm", "--pattern", "emb:*", "-n", "w", "--redis", &url]);
    assert!(
        text(&o).contains("298 loaded, 2 already there"),
        "{}",
        text(&o)
    );
    let o = e.run(&["get", "emb:299", "-n", "w"]);
    assert_eq!(o.stdout, b"v299");
    let file = e.dir.join("hot.keys");
    let o = e.run(&[
        "warm",
        "-n",
        "w",
        "--save-hot",
        "10",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 10);
    assert!(e
        .run(&["init", "-n", "w2", "--memory", "16MiB"])
        .status
        .success());
    let o = e.run(&[
        "warm",
        "--file",
        file.to_str().unwrap(),
        "-n",
        "w2",
        "--redis",
        &url,
    ]);
    assert!(text(&o).contains("10 loaded"), "{}", text(&o));
    // Without Redis: bad usage, said clearly.
    let o = e.run(&["warm", "emb:1", "-n", "w"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("--redis"), "{}", text(&o));
    let _ = redis.kill();
    let _ = redis.wait();
}

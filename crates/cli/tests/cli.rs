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
    let o = e.run(&["init", "-n", "bad/name"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("invalid segment name"), "{}", text(&o));
    let o = e.run(&["init", "-n", "x", "--memory", "lots"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("invalid size"), "{}", text(&o));
    assert!(e
        .run(&["init", "-n", "x", "--memory", "8MiB"])
        .status
        .success());
    let o = e.run(&["set", "k", "v", "--ttl", "-1", "-n", "x"]);
    assert_ne!(o.status.code(), Some(0));
    // Too long for a Duration: an error, not a panic.
    let o = e.run(&["set", "k", "v", "--ttl", "1e300", "-n", "x"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("too long"), "{}", text(&o));
    assert_eq!(e.run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn every_command_has_help() {
    let e = Env::new();
    for cmd in ["init", "drop", "set", "get", "del", "status", "bench"] {
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

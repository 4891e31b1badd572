//! `strata trace record`: reads by other processes end up in the file,
//! which `strata simulate` reads back; one recorder at a time; `trace
//! stop` turns off a recording whose recorder was killed.

use std::process::{Command, Stdio};
use std::time::Duration;

struct Env(std::path::PathBuf);

impl Env {
    fn new() -> Env {
        let d =
            std::path::PathBuf::from(format!("/dev/shm/strata-trace-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Env(d)
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--dir")
            .arg(&self.0)
            .args(args)
            .env_remove("STRATA_NAME");
        c
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args).output().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test's own handle on segment "t".
fn segment(e: &Env) -> strata_shm::Segment {
    let opts = strata_shm::SegmentOptions::default()
        .dir(&e.0)
        .janitor(false);
    strata_shm::Segment::open("t", &opts).unwrap()
}

fn wait_recording(e: &Env) {
    for _ in 0..500 {
        if segment(e).trace_rate().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the recorder never started");
}

#[test]
fn records_other_processes_reads_for_simulate() {
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "t", "--memory", "16MiB"])
        .status
        .success());
    for i in 0..20 {
        assert!(e
            .run(&["set", "-n", "t", &format!("k{i}"), &"v".repeat(100 + i)])
            .status
            .success());
    }
    let out = e.0.join("t.trace");
    let recorder = e
        .cmd(&[
            "trace",
            "record",
            "-n",
            "t",
            "--seconds",
            "30",
            "--sample-rate",
            "1",
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_recording(&e);
    // A second recorder is refused while the first runs.
    let second = e.run(&[
        "trace",
        "record",
        "-n",
        "t",
        "--seconds",
        "1",
        "-o",
        "/dev/null",
        "-q",
    ]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another"));
    // Reads from other processes: the CLI, and this test's own.
    for i in 0..20 {
        assert!(e
            .run(&["get", "-n", "t", &format!("k{i}")])
            .status
            .success());
    }
    let _ = e.run(&["get", "-n", "t", "absent"]);
    let seg = segment(&e);
    for _ in 0..50 {
        for i in 0..20 {
            let _ = seg.get(format!("k{i}").as_bytes()).unwrap();
        }
    }
    // SIGTERM ends the recording cleanly, with the file complete.
    let pid = recorder.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let done = recorder.wait_with_output().unwrap();
    assert!(done.status.success());
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(said.contains("1021 reads recorded"), "{said}");
    assert_eq!(seg.trace_rate(), None, "recording is off again");

    let sim = e.run(&[
        "simulate",
        out.to_str().unwrap(),
        "--json",
        "-q",
        "--policy",
        "lru,l1",
        "--sizes",
        "5,50",
    ]);
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert_eq!(v["trace"]["requests"], 1021);
    assert_eq!(v["trace"]["unique_keys"], 21);
    let lru_50 = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == "lru" && r["capacity"] == 50)
        .unwrap();
    assert!((lru_50["hit_ratio"].as_f64().unwrap() - 1000.0 / 1021.0).abs() < 1e-9);
}

#[test]
fn stop_turns_off_a_recording_left_by_a_killed_recorder() {
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "t", "--memory", "16MiB"])
        .status
        .success());
    let out = e.0.join("killed.trace");
    let mut recorder = e
        .cmd(&[
            "trace",
            "record",
            "-n",
            "t",
            "--seconds",
            "30",
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .spawn()
        .unwrap();
    wait_recording(&e);
    recorder.kill().unwrap();
    recorder.wait().unwrap();
    let seg = segment(&e);
    assert!(seg.trace_rate().is_some(), "left on by the kill");
    let o = e.run(&["trace", "stop", "-n", "t"]);
    assert!(o.status.success());
    assert_eq!(seg.trace_rate(), None);
    // A new recorder can start: the killed one's lock died with it.
    let o = e.run(&[
        "trace",
        "record",
        "-n",
        "t",
        "--seconds",
        "0.2",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = e.run(&[
        "trace",
        "record",
        "-n",
        "t",
        "--seconds",
        "0",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(3));
}

//! record_metrics reports every figure through the `metrics` facade.
#![cfg(feature = "metrics")]

mod common;
use common::ShmDir;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use strata::{Cache, PutOptions};

#[test]
fn every_figure_reaches_the_installed_recorder() {
    let dir = ShmDir::new("metrics");
    let c = Cache::builder("m")
        .segment_options(dir.opts())
        .build()
        .unwrap();
    c.put(b"k", b"v", &PutOptions::default()).unwrap();
    assert!(c.get(b"k").unwrap().is_some());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || c.record_metrics().unwrap());
    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str| {
        snap.iter()
            .find(|(k, ..)| k.key().name() == name)
            .map(|(k, _, _, v)| {
                (
                    k.key()
                        .labels()
                        .map(|l| l.value().to_string())
                        .collect::<Vec<_>>(),
                    v,
                )
            })
    };
    let (labels, hits) = find("strata_hits").expect("hits recorded");
    assert_eq!(labels, ["m"]);
    assert!(matches!(hits, DebugValue::Counter(n) if *n >= 1));
    assert!(matches!(
        find("strata_entries").unwrap().1,
        DebugValue::Gauge(_)
    ));
    assert!(find("strata_computes").is_some());
}

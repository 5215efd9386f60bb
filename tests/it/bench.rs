//! `crm-router bench`, run as users run it: the real binary, small counts, its JSON read back.
//! The numbers are not asserted (they are for BENCHMARKS.md); what each variant measured and
//! the rows it checked are.

use std::process::Command;

use serde_json::Value;

use crate::kafka::Broker;
use crate::support::binary;

fn bench(args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(binary())
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("bench printed no JSON ({error}):\n{stdout}\n{stderr}"));
    (output.status.success(), json, stderr)
}

fn result<'a>(report: &'a Value, variant: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|result| result["variant"] == variant)
        .unwrap_or_else(|| panic!("no {variant} in {report:#}"))
}

fn assert_measured(result: &Value) {
    assert_eq!(result["outcome"], "measured", "{result:#}");
    assert!(
        result["events_per_second"].as_f64().unwrap() > 0.0,
        "{result:#}"
    );
    assert!(result["peak_rss_mib"].as_f64().unwrap() > 1.0, "{result:#}");
}

#[test]
fn sqlite_variants_measure_their_phases_and_rows() {
    let (ok, report, stderr) = bench(&[
        "--variant",
        "sqlite-insert",
        "--variant",
        "sqlite-cascade",
        "--events",
        "400",
        "--latency-events",
        "100",
        "--latency-rate",
        "500",
    ]);
    assert!(ok, "{report:#}\n{stderr}");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    let insert = result(&report, "sqlite-insert");
    assert_measured(insert);
    assert_eq!(insert["events"], 400);
    // One customer row per event.
    assert_eq!(insert["rows_written"], 400);
    assert_eq!(insert["latency"]["samples"], 100);
    let cascade = result(&report, "sqlite-cascade");
    assert_measured(cascade);
    assert_eq!(cascade["events"], 400);
    // Per cascade: customer, task and opportunity; four analytics increments; three emitted
    // events.
    assert_eq!(cascade["rows_written"], 4_000);
    let latency = &cascade["latency"];
    assert_eq!(latency["samples"], 100);
    assert!(latency["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(latency["p50_ms"].as_f64() <= latency["p99_ms"].as_f64());
}

#[test]
fn kafka_postgres_and_rest_variants_run_against_real_services() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let (ok, report, stderr) = bench(&[
        "--variant",
        "kafka-postgres-cascade",
        "--variant",
        "kafka-emit",
        "--variant",
        "rest-read",
        "--events",
        "300",
        "--latency-events",
        "50",
        "--latency-rate",
        "200",
        "--rest-duration",
        "1s",
        "--rest-connections",
        "4",
        "--kafka-brokers",
        &broker.address,
    ]);
    assert!(ok, "{report:#}\n{stderr}");
    let cascade = result(&report, "kafka-postgres-cascade");
    assert_measured(cascade);
    assert_eq!(cascade["rows_written"], 3_000);
    assert_eq!(cascade["latency"]["samples"], 50);
    let emit = result(&report, "kafka-emit");
    assert_measured(emit);
    assert!(emit["broker_events_per_second"].as_f64().unwrap() > 0.0);
    let rest = result(&report, "rest-read");
    assert_measured(rest);
    assert!(rest["events"].as_u64().unwrap() > 0);
}

#[test]
fn a_named_variant_without_its_service_fails_with_the_reason() {
    let (ok, report, _) = bench(&[
        "--variant",
        "postgres-cascade",
        "--postgres-url",
        "postgres://postgres@127.0.0.1:1/postgres",
        "--events",
        "10",
    ]);
    assert!(!ok);
    let failed = result(&report, "postgres-cascade");
    assert_eq!(failed["outcome"], "failed");
    assert!(
        failed["reason"].as_str().unwrap().contains("127.0.0.1:1"),
        "{failed:#}"
    );
}

#[test]
fn a_variants_own_logs_reach_stderr() {
    // Each variant runs in a child process; what it logs (and any error it meets) must reach
    // the terminal, not a pipe nobody reads.
    let output = Command::new(binary())
        .args([
            "bench",
            "--variant",
            "sqlite-insert",
            "--events",
            "20",
            "--latency-events",
            "5",
        ])
        .env("RUST_LOG", "info")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("database ready"),
        "the child's log is missing:\n{stderr}"
    );
}

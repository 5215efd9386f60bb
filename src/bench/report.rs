//! What a variant measured, its target, and the table `crm-router bench` prints.

use serde::{Deserialize, Serialize};

use super::tracker::Percentiles;
use super::Variant;

/// One variant's measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantReport {
    /// Which.
    pub variant: Variant,
    /// Events (cascades; requests for `rest-read`) the rate counts.
    pub events: u64,
    /// Wall time they took.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_second: f64,
    /// Rows the routes wrote in that time (inserts, upsert increments, emitted events).
    pub rows_written: u64,
    /// `rows_written / seconds`.
    pub rows_per_second: f64,
    /// Event→last-effect latency at `latency_rate` (request latency for `rest-read`).
    pub latency: Option<Percentiles>,
    /// The rate the latency phase achieved, per second.
    pub latency_rate: Option<f64>,
    /// `kafka-emit`: what the broker accepted from a bare producer, per second.
    pub broker_events_per_second: Option<f64>,
    /// Peak resident memory of the process (daemon and load generator), MiB.
    pub peak_rss_mib: Option<f64>,
}

/// What became of a variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It ran.
    Measured(VariantReport),
    /// Its services were not there (and it was not asked for by name).
    Skipped {
        /// Which.
        variant: Variant,
        /// Why.
        reason: String,
    },
    /// It failed.
    Failed {
        /// Which.
        variant: Variant,
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// The variant it is about.
    pub fn variant(&self) -> Variant {
        match self {
            Self::Measured(report) => report.variant,
            Self::Skipped { variant, .. } | Self::Failed { variant, .. } => *variant,
        }
    }
}

/// The target for a variant, and whether the report meets it.
pub fn target(report: &VariantReport) -> Option<(&'static str, bool)> {
    let rate = report.events_per_second;
    match report.variant {
        Variant::SqliteInsert => Some(("≥ 50,000 events/s", rate >= 50_000.0)),
        Variant::SqliteCascade => Some(("≥ 10,000 cascades/s", rate >= 10_000.0)),
        Variant::KafkaPostgresCascade => Some(("≥ 4,500 cascades/s", rate >= 4_500.0)),
        Variant::KafkaEmit => {
            let broker = report.broker_events_per_second.unwrap_or(f64::INFINITY);
            Some((
                "≥ 100,000 events/s or ≥ 80% of the broker",
                rate >= 100_000.0 || rate >= 0.8 * broker,
            ))
        }
        Variant::RestRead => Some(("≥ 20,000 requests/s", rate >= 20_000.0)),
        Variant::PostgresCascade | Variant::KafkaSqliteCascade => None,
    }
}

/// Whether the latency phase met p99 ≤ 10 ms (`None` when it did not run).
pub fn latency_met(report: &VariantReport) -> Option<bool> {
    match report.variant {
        Variant::RestRead => None,
        _ => report.latency.map(|latency| latency.p99_ms <= 10.0),
    }
}

/// Peak resident set size of this process, from Linux's `VmHWM`.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn unit(variant: Variant) -> &'static str {
    match variant {
        Variant::SqliteInsert | Variant::KafkaEmit => "events/s",
        Variant::RestRead => "requests/s",
        _ => "cascades/s",
    }
}

/// The human-readable table.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut lines = vec![format!(
        "{:<23} {:>12} {:<11} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8}  target",
        "variant", "rate", "", "rows/s", "p50 ms", "p95 ms", "p99 ms", "at /s", "RSS MiB"
    )];
    let mut notes = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Measured(report) => {
                let latency = |pick: fn(&Percentiles) -> f64| {
                    report
                        .latency
                        .as_ref()
                        .map_or("-".to_owned(), |latency| format!("{:.2}", pick(latency)))
                };
                let mut verdicts = Vec::new();
                if let Some((target, met)) = target(report) {
                    verdicts.push(format!("{target}: {}", if met { "met" } else { "MISSED" }));
                }
                if let Some(met) = latency_met(report) {
                    verdicts.push(format!(
                        "p99 ≤ 10 ms: {}",
                        if met { "met" } else { "MISSED" }
                    ));
                }
                lines.push(format!(
                    "{:<23} {:>12.0} {:<11} {:>10.0} {:>8} {:>8} {:>8} {:>9} {:>8}  {}",
                    report.variant.name(),
                    report.events_per_second,
                    unit(report.variant),
                    report.rows_per_second,
                    latency(|l| l.p50_ms),
                    latency(|l| l.p95_ms),
                    latency(|l| l.p99_ms),
                    report
                        .latency_rate
                        .map_or("-".to_owned(), |rate| format!("{rate:.0}")),
                    report
                        .peak_rss_mib
                        .map_or("-".to_owned(), |mib| format!("{mib:.0}")),
                    verdicts.join("; "),
                ));
                if let Some(broker) = report.broker_events_per_second {
                    notes.push(format!(
                        "{}: the broker accepted {broker:.0} events/s from a bare producer; the route reached {:.0}%",
                        report.variant.name(),
                        100.0 * report.events_per_second / broker
                    ));
                }
            }
            Outcome::Skipped { variant, reason } => {
                lines.push(format!("{:<23} skipped: {reason}", variant.name()))
            }
            Outcome::Failed { variant, reason } => {
                lines.push(format!("{:<23} FAILED: {reason}", variant.name()))
            }
        }
    }
    lines.extend(notes);
    lines.join("\n")
}

/// The machine the bench ran on: CPU model, cores and memory (Linux), OS and version.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_gib": memory_gib,
        "os": std::env::consts::OS,
        "crm_router": env!("CARGO_PKG_VERSION"),
    })
}

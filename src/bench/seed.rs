//! Side by side with the old CRM services: `crm-router bench --seed-services DIR` runs their
//! re-implementation (`DIR/run.sh N`: KafkaJS consumers with one awaited insert and one
//! awaited send per message, on a fresh tansu broker and PostgreSQL database of their own)
//! after the variants, and compares its cascades per second with `kafka-postgres-cascade`'s,
//! the variant on the same kinds of broker and database.

use std::path::Path;
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::report::Outcome;
use super::{BenchError, Variant};

/// What the old services did, as their script prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedServices {
    /// `USER_CREATED` events produced.
    pub events: u64,
    /// Cascades per second, from the first send to the last task and count.
    pub cascades_per_s: f64,
}

/// The two rates and their ratio.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideBySide {
    /// The old services.
    pub seed_services: SeedServices,
    /// `kafka-postgres-cascade`, cascades per second.
    pub crm_router: f64,
    /// `crm_router / seed_services`.
    pub ratio: f64,
}

/// The goal of issue 14: crm-router at least this many times the old services.
pub const GOAL_RATIO: f64 = 30.0;

/// Runs `directory/run.sh events` and reads the JSON line it prints.
pub async fn run_seed_services(
    directory: &Path,
    events: usize,
) -> Result<SeedServices, BenchError> {
    let script = directory.join("run.sh");
    if !script.is_file() {
        return Err(BenchError::Setup(format!(
            "--seed-services: {} has no run.sh",
            directory.display()
        )));
    }
    eprintln!("bench: running the old services ({}) …", script.display());
    let output = super::output_beside_stderr(
        tokio::process::Command::new("bash")
            .arg(&script)
            .arg(events.to_string())
            .stdin(Stdio::null()),
    )
    .await
    .map_err(|error| BenchError::Setup(format!("cannot run {}: {error}", script.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::Setup(format!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            stdout.trim()
        )));
    }
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<SeedServices>(line.trim()).ok())
        .ok_or_else(|| {
            BenchError::Setup(format!(
                "{} printed no result line with events and cascades_per_s: {}",
                script.display(),
                stdout.trim()
            ))
        })
}

/// The comparison, when `kafka-postgres-cascade` was measured in `outcomes`.
pub fn compare(seed_services: SeedServices, outcomes: &[Outcome]) -> Result<SideBySide, String> {
    let crm_router = outcomes
        .iter()
        .find_map(|outcome| match outcome {
            Outcome::Measured(report) if report.variant == Variant::KafkaPostgresCascade => {
                Some(report.events_per_second)
            }
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "no ratio: {} was not measured in this run",
                Variant::KafkaPostgresCascade.name()
            )
        })?;
    if seed_services.cascades_per_s <= 0.0 {
        return Err("no ratio: the old services completed no cascade".into());
    }
    Ok(SideBySide {
        ratio: crm_router / seed_services.cascades_per_s,
        crm_router,
        seed_services,
    })
}

/// The line the table ends with.
pub fn render(side_by_side: &SideBySide) -> String {
    format!(
        "side by side: the old services did {:.0} cascades/s ({} events); {} did {:.0}: {:.1}× \
         (goal ≥ {GOAL_RATIO:.0}×: {})",
        side_by_side.seed_services.cascades_per_s,
        side_by_side.seed_services.events,
        Variant::KafkaPostgresCascade.name(),
        side_by_side.crm_router,
        side_by_side.ratio,
        if side_by_side.ratio >= GOAL_RATIO {
            "met"
        } else {
            "MISSED"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scripts_result_line_is_read_and_compared() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(
            directory.path().join("run.sh"),
            "echo 'npm noise'\necho '{\"impl\":\"x\",\"events\":'$1',\"cascades_per_s\":150.5}'\n",
        )
        .unwrap();
        let seed = run_seed_services(directory.path(), 40).await.unwrap();
        assert_eq!((seed.events, seed.cascades_per_s), (40, 150.5));
        assert!(compare(seed.clone(), &[])
            .unwrap_err()
            .contains("was not measured"));
        let measured = Outcome::Measured(crate::bench::VariantReport {
            variant: Variant::KafkaPostgresCascade,
            events: 1_000,
            seconds: 0.2,
            events_per_second: 5_000.0,
            rows_written: 10_000,
            rows_per_second: 50_000.0,
            latency: None,
            latency_rate: None,
            broker_events_per_second: None,
            peak_rss_mib: None,
        });
        let side_by_side = compare(seed.clone(), &[measured]).unwrap();
        assert!((side_by_side.ratio - 5_000.0 / 150.5).abs() < 1e-9);
        assert!(render(&side_by_side).ends_with("33.2× (goal ≥ 30×: met)"));

        std::fs::write(directory.path().join("run.sh"), "echo broken; exit 3\n").unwrap();
        let failed = run_seed_services(directory.path(), 40).await.unwrap_err();
        assert!(failed.to_string().contains("broken"), "{failed}");
        let missing = run_seed_services(&directory.path().join("nowhere"), 40)
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("has no run.sh"), "{missing}");
    }
}

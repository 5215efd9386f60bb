//! `crm-router bench`: throughput, latency and memory on this machine (BENCHMARKS.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crm_router::bench::{self, BenchOptions, Outcome, Variant};

use super::init_tracing_quiet;

/// `crm-router bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Variants to run (repeatable; default: all, skipping those whose PostgreSQL or Kafka is
    /// unreachable).
    #[arg(long = "variant", value_enum)]
    pub variants: Vec<Variant>,
    /// Events (cascades) in each variant's throughput phase.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub events: u64,
    /// Cascades in the latency phase (0: no latency phase).
    #[arg(long, default_value_t = 5_000)]
    pub latency_events: usize,
    /// Their rate, per second.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub latency_rate: u32,
    /// How long the REST read load runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub rest_duration: std::time::Duration,
    /// Concurrent REST clients.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub rest_connections: u64,
    /// PostgreSQL server on which the bench creates (and drops) a database per variant.
    #[arg(
        long,
        env = "CRM_ROUTER_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// Kafka bootstrap servers for the Kafka variants.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// The daemon's batch_size.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
    /// After the variants, run the old CRM services' re-implementation from this directory
    /// (`DIR/run.sh N`, e.g. `../shared/seed-services`) and print how many times their
    /// cascades per second kafka-postgres-cascade did.
    #[arg(long, value_name = "DIR")]
    pub seed_services: Option<PathBuf>,
    /// `USER_CREATED` events the old services get (they manage about 150-180 a second).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seed_events: u64,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Internal: run one variant and print its outcome as JSON.
    #[arg(long, hide = true)]
    pub child: Option<String>,
}

/// `bench`: the variants in child processes, or (`--child`) one variant here.
/// Runs the bench (or, with `--child`, one variant of it).
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    if let Some(request) = args.child {
        let request: bench::ChildRequest =
            serde_json::from_str(&request).context("--child takes the bench's own request")?;
        let outcome = bench::run_variant(request.variant, &request.options).await;
        println!("{}", serde_json::to_string(&outcome)?);
        return Ok(match outcome {
            Outcome::Measured(_) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        });
    }
    let options = BenchOptions {
        events: args.events as usize,
        latency_events: args.latency_events,
        latency_rate: args.latency_rate,
        rest_duration: args.rest_duration,
        rest_connections: args.rest_connections as usize,
        postgres_url: args.postgres_url,
        kafka_brokers: args.kafka_brokers,
        batch_size: args.batch_size as usize,
    };
    let explicit = !args.variants.is_empty();
    let variants = if explicit {
        args.variants
    } else {
        Variant::ALL.to_vec()
    };
    let outcomes = bench::run(&variants, &options, explicit).await;
    let mut side_by_side = None;
    let mut side_by_side_failed = false;
    if let Some(directory) = &args.seed_services {
        let compared = bench::seed::run_seed_services(directory, args.seed_events as usize)
            .await
            .map_err(|error| error.to_string())
            .and_then(|seed| bench::seed::compare(seed, &outcomes));
        match compared {
            Ok(compared) => side_by_side = Some(compared),
            Err(error) => {
                eprintln!("bench: side by side: {error}");
                side_by_side_failed = true;
            }
        }
    }
    let mut table = bench::report::render(&outcomes);
    if let Some(compared) = &side_by_side {
        table.push('\n');
        table.push_str(&bench::seed::render(compared));
    }
    if args.json {
        // The table too, for the person watching; stdout stays pure JSON.
        eprintln!("{table}");
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "machine": bench::report::machine(),
                "options": options,
                "results": outcomes,
                "side_by_side": side_by_side,
            }))?
        );
    } else {
        println!("{table}");
    }
    let failed = side_by_side_failed
        || outcomes
            .iter()
            .any(|outcome| matches!(outcome, Outcome::Failed { .. }));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

//! `crm-router topics create`: the Kafka topics the routes use.

use std::process::ExitCode;

use clap::Subcommand;

use crm_router::config::Settings;

use super::{init_tracing_quiet, Global, SourceArgs};

/// `crm-router topics …`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create the configured topics (default: the five CRM topics, 3 partitions, 7 days).
    Create(SourceArgs),
}

/// Runs a `topics` subcommand.
pub async fn run(global: &Global, command: TopicsCommand) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    match command {
        TopicsCommand::Create(args) => create_topics(global.settings(args)?).await,
    }
}

async fn create_topics(settings: Settings) -> anyhow::Result<ExitCode> {
    use crm_router::kafka::topics::{self, TopicOutcome};
    let Some(kafka) = settings.kafka else {
        anyhow::bail!("Kafka is not enabled: set KAFKA_ENABLED=true and KAFKA_BROKERS");
    };
    let results = topics::create(&kafka).await.map_err(|error| {
        let reason = error.to_string();
        anyhow::anyhow!(
            "❌ Failed to connect to Kafka: {reason} ({})",
            crm_router::kafka::connect::hint(&reason)
        )
    })?;
    let mut failed = false;
    for (topic, outcome) in results {
        match outcome {
            TopicOutcome::Created => println!("created {topic}"),
            TopicOutcome::Exists => println!("exists  {topic}"),
            TopicOutcome::Failed(reason) => {
                failed = true;
                println!("FAILED  {topic}: {reason}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

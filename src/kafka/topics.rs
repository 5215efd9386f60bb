//! Creating the topics crm-router uses, through the admin API.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::settings::KafkaSettings;

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// It was created.
    Created,
    /// It existed already (left as it is).
    Exists,
    /// The broker refused.
    Failed(String),
}

/// Creates every configured topic that does not exist yet.
pub async fn create(settings: &KafkaSettings) -> Result<Vec<(String, TopicOutcome)>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let retention = settings.topics.retention_ms.to_string();
    let max_bytes = settings.topics.max_message_bytes.to_string();
    let topics: Vec<NewTopic<'_>> = settings
        .topics
        .names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.topics.partitions,
                TopicReplication::Fixed(settings.topics.replication_factor),
            )
            .set("retention.ms", &retention)
            .set("max.message.bytes", &max_bytes)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(topics.iter(), &options).await?;
    Ok(results
        .into_iter()
        .map(|result| match result {
            Ok(name) => (name, TopicOutcome::Created),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => (name, TopicOutcome::Exists),
            Err((name, code)) => (name, TopicOutcome::Failed(code.to_string())),
        })
        .collect())
}

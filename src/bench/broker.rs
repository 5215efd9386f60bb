//! The Kafka side of the Kafka variants: topics, a group that starts at the end of them, and
//! what the broker itself accepts from the relay's producer.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::BenchError;
use crate::event::Event;
use crate::kafka::relay::{self, RelayHealth};
use crate::kafka::{topics, KafkaSettings};
use crate::store::{log, Store};

fn kafka_error(context: &str) -> impl Fn(rdkafka::error::KafkaError) -> BenchError + '_ {
    move |error| BenchError::Kafka(format!("{context}: {error}"))
}

/// Creates `names` (those missing) with the settings' partitions.
pub async fn create_topics(settings: &KafkaSettings, names: &[String]) -> Result<(), BenchError> {
    let mut settings = settings.clone();
    settings.topics.names = names.to_vec();
    for (topic, outcome) in topics::create(&settings)
        .await
        .map_err(kafka_error("cannot create topics"))?
    {
        if let topics::TopicOutcome::Failed(reason) = outcome {
            return Err(BenchError::Kafka(format!(
                "cannot create topic {topic}: {reason}"
            )));
        }
    }
    Ok(())
}

/// Makes the daemon's group start at the current end of `names`, in Kafka (committed offsets)
/// and in the database (stored positions), so a run on a broker that kept earlier runs'
/// messages sees only its own.
pub async fn start_at_end(
    settings: &KafkaSettings,
    store: &Store,
    names: &[String],
) -> Result<(), BenchError> {
    let mut config = settings.client_config();
    config.set("group.id", &settings.group_id);
    let names = names.to_vec();
    let ends =
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, i32, i64)>, BenchError> {
            let consumer: BaseConsumer = config.create().map_err(kafka_error("consumer"))?;
            let timeout = Duration::from_secs(10);
            let mut ends = Vec::new();
            let mut offsets = TopicPartitionList::new();
            for name in &names {
                let metadata = consumer
                    .fetch_metadata(Some(name), timeout)
                    .map_err(kafka_error("metadata"))?;
                for topic in metadata.topics() {
                    for partition in topic.partitions() {
                        let (_, high) = consumer
                            .fetch_watermarks(name, partition.id(), timeout)
                            .map_err(kafka_error("watermarks"))?;
                        ends.push((name.clone(), partition.id(), high));
                        offsets
                            .add_partition_offset(name, partition.id(), Offset::Offset(high))
                            .map_err(kafka_error("offsets"))?;
                    }
                }
            }
            if offsets.count() > 0 {
                consumer
                    .commit(&offsets, CommitMode::Sync)
                    .map_err(kafka_error("cannot commit the group's start"))?;
            }
            Ok(ends)
        })
        .await
        .map_err(|error| BenchError::Kafka(error.to_string()))??;
    let mut transaction = store.begin().await?;
    for (topic, partition, high) in ends {
        if high > 0 {
            log::advance_position(
                &mut transaction,
                &settings.group_id,
                &topic,
                i64::from(partition),
                0,
                high,
            )
            .await?;
        }
    }
    transaction
        .commit()
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(())
}

/// Produces `events` with the relay's producer settings (idempotent, `acks=all`) as fast as
/// the broker takes them, and returns how long until the last delivery report.
pub async fn produce_all(
    settings: &KafkaSettings,
    events: &[Event],
) -> Result<Duration, BenchError> {
    let producer = relay::producer(settings, Arc::new(RelayHealth::default()))
        .map_err(kafka_error("producer"))?;
    let payloads: Vec<(String, String, String)> = events
        .iter()
        .map(|event| {
            (
                event.topic.to_string(),
                event.key.clone(),
                serde_json::to_string(&event.envelope).expect("envelopes serialise"),
            )
        })
        .collect();
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    for (topic, key, payload) in &payloads {
        let mut record = FutureRecord::to(topic)
            .key(key.as_bytes())
            .payload(payload.as_bytes());
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    in_flight.push_back(delivery);
                    break;
                }
                Err((error, returned)) => {
                    // The local queue is full: wait for the oldest delivery, then try again.
                    let Some(oldest) = in_flight.pop_front() else {
                        return Err(BenchError::Kafka(format!("cannot produce: {error}")));
                    };
                    delivered(oldest.await)?;
                    record = returned;
                }
            }
        }
    }
    while let Some(delivery) = in_flight.pop_front() {
        delivered(delivery.await)?;
    }
    let took = started.elapsed();
    producer
        .flush(Timeout::After(Duration::from_secs(10)))
        .map_err(kafka_error("flush"))?;
    Ok(took)
}

fn delivered<E>(
    report: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, E>,
) -> Result<(), BenchError> {
    match report {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(BenchError::Kafka(format!(
            "the broker refused a message: {error}"
        ))),
        Err(_) => Err(BenchError::Kafka("the producer dropped a message".into())),
    }
}

//! The Kafka consumer: feeds the engine batches per partition, with positions kept in the
//! database next to the routes' effects.
//!
//! Exactly-once without trusting Kafka's offsets: a partition's stored position is the next
//! offset to apply. Records below it are skipped (Kafka's committed offset may lag, since it is
//! committed after the database). The engine advances the position with a compare-and-set, so
//! two instances briefly owning one partition during a rebalance cannot both apply a batch.
//! Kafka offsets are committed too, after the database, so lag tools work.
//!
//! Revocation never interrupts a batch: rebalance callbacks run inside `recv`, which this loop
//! only calls between batches.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::connect;
use super::settings::KafkaSettings;
use crate::engine::{BatchOutcome, Engine, Stream};
use crate::event::{Delivery, Origin};
use crate::store::log;

/// Notes rebalances, so the loop forgets cached positions of partitions it may have lost.
pub struct PartitionTracker {
    rebalanced: AtomicBool,
    connected: AtomicBool,
}

impl ClientContext for PartitionTracker {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(facility = fac, ?level, "librdkafka: {log_message}");
    }

    /// librdkafka's periodic statistics carry each assigned partition's lag (high watermark
    /// minus the committed offset, which follows the stored position); `/metrics` shows it.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (name, topic) in &statistics.topics {
            for (partition, state) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of -1 is unknown.
                if *partition >= 0 && state.consumer_lag >= 0 {
                    crate::telemetry::consumer_lag(name, i64::from(*partition), state.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.connected.swap(false, Ordering::Relaxed) {
            connect::log_failure(reason);
        } else {
            tracing::debug!(%error, "Kafka consumer: {reason}");
        }
    }
}

impl ConsumerContext for PartitionTracker {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalanced.store(true, Ordering::Relaxed);
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "Kafka partitions assigned")
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = partitions.count(), "Kafka partitions revoked")
            }
            Rebalance::Error(error) => tracing::warn!(%error, "Kafka rebalance failed"),
        }
    }
}

/// The consumer crm-router uses.
pub type RouteConsumer = StreamConsumer<PartitionTracker>;

/// The consumer's default `fetch.wait.max.ms` (librdkafka's is 500).
pub const FETCH_WAIT_MAX_MS: &str = "10";

/// Builds the group consumer and subscribes to the configured topics.
pub fn subscribe(settings: &KafkaSettings) -> Result<RouteConsumer, KafkaError> {
    let mut config = settings.client_config();
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    if config.get("fetch.wait.max.ms").is_none() {
        // How long a fetch may wait for new messages. Kafka answers a fetch as soon as one
        // message is there, so this only bounds idle polling (a fetch per partition leader
        // every 10 ms while nothing arrives); brokers that hold every fetch for the whole wait
        // (tansu) otherwise add librdkafka's default 500 ms to every hop of a cascade.
        config.set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
    }
    if config.get("statistics.interval.ms").is_none() {
        // For the consumer lag in `/metrics`.
        config.set("statistics.interval.ms", "5000");
    }
    let consumer: RouteConsumer = config.create_with_context(PartitionTracker {
        rebalanced: AtomicBool::new(false),
        connected: AtomicBool::new(true),
    })?;
    let topics: Vec<&str> = settings.topics.names.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

fn to_delivery(message: &rdkafka::message::BorrowedMessage<'_>) -> Delivery {
    Delivery::new(
        Origin::Kafka(message.offset()),
        message.topic().to_owned(),
        message.key().map(storable_text).unwrap_or_default(),
        message.payload().map(storable_text).unwrap_or_default(),
    )
}

/// The offset of a delivery this consumer made.
fn offset(delivery: &Delivery) -> i64 {
    delivery.position_after().map_or(0, |next| next - 1)
}

/// Bytes from Kafka as text the database can store. Invalid UTF-8 and NUL bytes (which no JSON
/// envelope holds, but Avro and Protobuf framings start with) become U+FFFD: such a message
/// cannot decode, and it must reach the dead letters as text on PostgreSQL too, rather than
/// fail their insert and stall its partition.
fn storable_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

/// Consumes until `shutdown`, handing batches to `engine`.
pub async fn run(
    engine: Engine,
    consumer: RouteConsumer,
    group: String,
    batch_size: usize,
    shutdown: CancellationToken,
) {
    let mut positions: HashMap<(String, i32), i64> = HashMap::new();
    let mut rewound: HashSet<(String, i32)> = HashSet::new();
    let mut announced = false;
    while !shutdown.is_cancelled() {
        let first = tokio::select! {
            message = consumer.recv() => message,
            _ = shutdown.cancelled() => break,
        };
        let mut batch: Vec<(i32, Delivery)> = Vec::new();
        match first {
            Ok(message) => batch.push((message.partition(), to_delivery(&message))),
            Err(error) => {
                tracing::warn!(%error, "Kafka consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        if !announced {
            tracing::info!(group = %group, "✅ Kafka Consumer connected");
            announced = true;
        }
        consumer.context().connected.store(true, Ordering::Relaxed);
        while batch.len() < batch_size {
            match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
                Ok(Ok(message)) => batch.push((message.partition(), to_delivery(&message))),
                _ => break,
            }
        }
        if consumer.context().rebalanced.swap(false, Ordering::Relaxed) {
            positions.clear();
            rewound.clear();
        }
        // Group by partition, keeping each partition's order.
        let mut partitions: Vec<((String, i32), Vec<Delivery>)> = Vec::new();
        for (partition, record) in batch {
            let key = (record.topic.clone(), partition);
            match partitions.iter_mut().find(|(existing, _)| *existing == key) {
                Some((_, records)) => records.push(record),
                None => partitions.push((key, vec![record])),
            }
        }
        for ((topic, partition), records) in partitions {
            let stream = Stream::kafka(&topic, partition);
            let key = (topic.clone(), partition);
            let may_rewind = rewound.insert(key.clone());
            let done = apply_partition(
                &engine,
                &consumer,
                &group,
                &stream,
                positions.get(&key).copied(),
                may_rewind,
                records,
                &shutdown,
            )
            .await;
            match done {
                Some(position) => {
                    positions.insert(key, position);
                    let mut offsets = TopicPartitionList::new();
                    if offsets
                        .add_partition_offset(&topic, partition, Offset::Offset(position))
                        .is_ok()
                    {
                        // Progress for lag tools only; the database is the source of truth.
                        let _ = consumer.commit(&offsets, CommitMode::Async);
                    }
                }
                None => {
                    positions.remove(&key);
                }
            }
        }
    }
    tracing::info!("Kafka consumer stopped");
}

#[allow(clippy::too_many_arguments)]
/// Applies one partition's records. Returns the partition's position after them, or `None`
/// when it must be read again (the records were rewound with a seek and will come again).
async fn apply_partition(
    engine: &Engine,
    consumer: &RouteConsumer,
    group: &str,
    stream: &Stream,
    cached: Option<i64>,
    may_rewind: bool,
    records: Vec<Delivery>,
    shutdown: &CancellationToken,
) -> Option<i64> {
    let partition = stream.partition as i32;
    let rewind = |position: i64| {
        if let Err(error) = consumer.seek(
            &stream.name,
            partition,
            Offset::Offset(position),
            Duration::from_secs(5),
        ) {
            tracing::warn!(%error, topic = %stream.name, partition, "cannot rewind the partition");
        }
    };
    let mut position = match cached {
        Some(position) => position,
        None => match log::position(
            engine.store().reader(),
            group,
            &stream.name,
            stream.partition,
        )
        .await
        {
            Ok(position) => {
                // Kafka's committed offset is ahead of the database (it was reset or restored):
                // go back, so nothing the database has not applied is skipped.
                // Once per assignment: a gap in the partition (compaction) must not loop.
                // No stored position (0) means nothing was applied here, so that rewinds to the
                // start too: the database, not Kafka's committed offset, is the truth.
                if may_rewind
                    && records
                        .first()
                        .is_some_and(|first| offset(first) > position)
                {
                    tracing::warn!(topic = %stream.name, partition, position, "Kafka is ahead of the stored position; rewinding");
                    rewind(position);
                    return None;
                }
                position
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the consumer position; retrying");
                rewind(records.first().map_or(0, offset));
                tokio::time::sleep(Duration::from_millis(500)).await;
                return None;
            }
        },
    };
    let mut pending: Vec<Delivery> = records
        .into_iter()
        .filter(|delivery| offset(delivery) >= position)
        .collect();
    while !pending.is_empty() {
        match engine.run_batch(stream, position, &pending).await {
            Ok(BatchOutcome::Done(done)) => return Some(done),
            Ok(BatchOutcome::Retry(done, record, retry)) => {
                position = done;
                match engine
                    .retry_alone(stream, done, &record, retry, shutdown)
                    .await
                {
                    Some(after) => {
                        position = after;
                        pending.retain(|delivery| offset(delivery) >= after);
                    }
                    None => {
                        rewind(position);
                        return None;
                    }
                }
            }
            Err(error) => {
                engine.report_store_failure(&error);
                rewind(position);
                tokio::time::sleep(Duration::from_millis(500)).await;
                return None;
            }
        }
    }
    Some(position)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kafka_bytes_become_storable_text() {
        assert_eq!(super::storable_text(b"\0\x01avro"), "\u{FFFD}\u{1}avro");
        assert_eq!(super::storable_text(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(super::storable_text(&[0xff, b'x']), "\u{FFFD}x");
    }
}

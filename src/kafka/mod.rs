//! Kafka as the bus: settings, topic administration, the outbox relay that publishes the event
//! log, and the consumer that feeds the engine with positions kept in the database.

pub mod settings;

pub use settings::{KafkaFileConfig, KafkaSettings, KafkaSettingsError};

//! Kafka as the bus: settings, topic administration, the outbox relay that publishes the event
//! log, and the consumer that feeds the engine with positions kept in the database.

pub mod connect;
pub mod consumer;
pub mod relay;
pub mod settings;
pub mod topics;

pub use settings::{KafkaFileConfig, KafkaSettings, KafkaSettingsError};

//! Turning librdkafka's connection errors into the guide's log line with a hint naming the
//! setting to check.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What to check for a connection failure described by `reason`.
pub fn hint(reason: &str) -> &'static str {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("sasl") || lower.contains("authentica") || lower.contains("credentials") {
        "check KAFKA_USERNAME, KAFKA_PASSWORD and KAFKA_SASL_MECHANISM"
    } else if lower.contains("unknown topic") || lower.contains("unknowntopic") {
        "create the topics with `crm-router topics create` (or set kafka.create_topics: true)"
    } else if lower.contains("ssl") || lower.contains("certificate") {
        "check KAFKA_SECURITY_PROTOCOL and KAFKA_SSL_CA_LOCATION"
    } else {
        "check KAFKA_BROKERS (host and port) and that the broker is reachable"
    }
}

/// Logs `❌ Failed to connect to Kafka: <reason>` with its hint.
pub fn log_failure(reason: &str) {
    tracing::error!(
        hint = hint(reason),
        "❌ Failed to connect to Kafka: {reason}"
    );
}

/// Whether an error is about this message (too large, no such topic), not the connection or
/// the cluster: the message is dead-lettered instead of retried for ever.
pub fn is_message_error(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::InvalidArgument
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_setting_to_check() {
        assert!(hint("SASL authentication error: Authentication failed").contains("KAFKA_PASSWORD"));
        assert!(hint(
            "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        )
        .contains("KAFKA_BROKERS"));
        assert!(hint("Broker: Unknown topic or partition").contains("topics create"));
        assert!(hint("ssl handshake failed").contains("KAFKA_SSL_CA_LOCATION"));
    }
}

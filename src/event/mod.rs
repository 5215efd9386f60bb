//! Events as they travel: the KafkaJS-compatible JSON envelope plus the topic and key.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod delivery;
pub use delivery::{Delivery, Origin, Undecodable};

/// The `source` of an envelope that names no producer.
///
/// The old CRM's KafkaJS services write `{eventId, eventType, timestamp, data}` without
/// `source`, and nothing else in what arrives says who produced it: a Kafka record carries no
/// producer, and several services publish to one topic. So the envelope says what is known,
/// that the producer is unknown, with a word a route, a log line or a dead letter shows as it
/// is. An empty string would look like a producer that wrote `""`, and the topic's name or the
/// service a topic usually comes from would be a guess presented as a fact.
pub const UNKNOWN_SOURCE: &str = "unknown";

fn unknown_source() -> String {
    UNKNOWN_SOURCE.to_owned()
}

/// The JSON every producer and consumer agrees on:
/// `{"eventId","eventType","timestamp","source","data"}`. Decoding accepts it without `source`,
/// as the old CRM's services write it; crm-router always writes `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique id (a UUID); the idempotency key of the event.
    pub event_id: String,
    /// `USER_CREATED`, `CUSTOMER_CREATED`, ...
    pub event_type: String,
    /// When the event happened, RFC 3339.
    pub timestamp: String,
    /// The producer (`auth-service`, `crm-router`, a route name...); [`UNKNOWN_SOURCE`] when the
    /// envelope has none.
    #[serde(default = "unknown_source")]
    pub source: String,
    /// The payload, validated against `schemas/<topic>/<eventType>.json` when that exists.
    pub data: serde_json::Value,
}

impl Envelope {
    /// Decodes a stored or received envelope. A missing `source` reads as [`UNKNOWN_SOURCE`];
    /// every other field is required. An id, type, timestamp or source holding NUL is refused
    /// like malformed JSON: PostgreSQL cannot store it, and the claim or dead letter keyed by
    /// it would fail on every retry instead of once.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        let envelope: Envelope = serde_json::from_str(text)?;
        let fields = [
            &envelope.event_id,
            &envelope.event_type,
            &envelope.timestamp,
            &envelope.source,
        ];
        if fields.iter().any(|field| field.contains('\0')) {
            return Err(serde::de::Error::custom(
                "the envelope's eventId, eventType, timestamp or source holds a NUL character",
            ));
        }
        Ok(envelope)
    }
}

/// An event with its routing information.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Where it was published.
    pub topic: TopicName,
    /// The id of the entity it is about; events with one key keep their order.
    pub key: String,
    /// The envelope.
    pub envelope: Envelope,
}

/// Why an event was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    /// Topic names follow Kafka's rules.
    #[error("topic {0:?} is not a valid topic name (1-249 of letters, digits, '.', '_', '-')")]
    InvalidTopic(String),
    /// Event types are identifiers such as `USER_CREATED` or `user.created`.
    #[error("eventType {0:?} must be 1-200 of letters, digits, '_', '.', ':' or '-'")]
    InvalidEventType(String),
    /// The timestamp is not RFC 3339.
    #[error("timestamp {0:?} is not an RFC 3339 date-time")]
    InvalidTimestamp(String),
    /// The key is empty or too long.
    #[error("key must be 1-1024 characters")]
    InvalidKey,
    /// The event id is empty or too long.
    #[error("eventId must be 1-200 characters")]
    InvalidEventId,
}

/// A validated topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TopicName(String);

impl TopicName {
    /// Parses a topic name (Kafka's legal characters and length).
    pub fn parse(name: &str) -> Result<Self, EventError> {
        let ok = !name.is_empty()
            && name.len() <= 249
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(EventError::InvalidTopic(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an event type.
pub fn check_event_type(event_type: &str) -> Result<(), EventError> {
    let ok = !event_type.is_empty()
        && event_type.len() <= 200
        && event_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(EventError::InvalidEventType(event_type.to_owned()))
    }
}

/// An event as a client submits it: `eventId`, `timestamp`, `source` and `key` may be omitted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubmittedEvent {
    /// Defaults to a new UUID.
    #[serde(default)]
    pub event_id: Option<String>,
    /// Required.
    pub event_type: String,
    /// Defaults to now.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Defaults to `api`.
    #[serde(default)]
    pub source: Option<String>,
    /// Required (may be `{}`).
    pub data: serde_json::Value,
    /// Defaults to the event id.
    #[serde(default)]
    pub key: Option<String>,
}

/// A new event id: a UUID of version 7, whose leading bits are the time. Every id is kept in
/// two unique indexes (`event_log.event_id`, `consumed_events.event_id`); random ids put each
/// insert on a random page of them, so a batch dirtied (and wrote to the WAL) a page per
/// event, where ids in time order go to the end of the index.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl SubmittedEvent {
    /// Fills in the defaults and checks every field.
    pub fn into_event(self, topic: &str) -> Result<Event, EventError> {
        let topic = TopicName::parse(topic)?;
        check_event_type(&self.event_type)?;
        let event_id = self.event_id.unwrap_or_else(new_event_id);
        if event_id.is_empty() || event_id.len() > 200 {
            return Err(EventError::InvalidEventId);
        }
        let timestamp = match self.timestamp {
            Some(timestamp) => {
                chrono::DateTime::parse_from_rfc3339(&timestamp)
                    .map_err(|_| EventError::InvalidTimestamp(timestamp.clone()))?;
                timestamp
            }
            None => crate::template::now_rfc3339(),
        };
        let key = self.key.unwrap_or_else(|| event_id.clone());
        if key.is_empty() || key.len() > 1024 {
            return Err(EventError::InvalidKey);
        }
        Ok(Event {
            topic,
            key,
            envelope: Envelope {
                event_id,
                event_type: self.event_type,
                timestamp,
                source: self.source.unwrap_or_else(|| "api".to_owned()),
                data: self.data,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_event_ids_are_time_ordered_uuids() {
        let first = new_event_id();
        let second = new_event_id();
        let parsed = uuid::Uuid::parse_str(&first).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(first < second);
        let submitted: SubmittedEvent =
            serde_json::from_value(serde_json::json!({"eventType": "PING", "data": {}})).unwrap();
        let event = submitted.into_event("bench.in").unwrap();
        assert!(second < event.envelope.event_id);
    }

    #[test]
    fn envelope_uses_the_kafkajs_field_names() {
        let envelope = Envelope {
            event_id: "e1".into(),
            event_type: "USER_CREATED".into(),
            timestamp: "2026-11-28T00:00:00Z".into(),
            source: "auth-service".into(),
            data: json!({"userId": "u1"}),
        };
        assert_eq!(
            serde_json::to_value(&envelope).unwrap(),
            json!({"eventId": "e1", "eventType": "USER_CREATED", "timestamp": "2026-11-28T00:00:00Z", "source": "auth-service", "data": {"userId": "u1"}})
        );
    }

    /// Byte for byte what the old CRM's services publish: `JSON.stringify` of
    /// `{eventId, eventType, timestamp: new Date().toISOString(), data}`.
    const OLD_SERVICE_ENVELOPE: &str = r#"{"eventId":"0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d","eventType":"USER_CREATED","timestamp":"2026-12-06T15:26:03.417Z","data":{"userId":"u-9","email":"old@example.com","name":"Old Service","role":"USER"}}"#;

    #[test]
    fn an_envelope_without_source_decodes_with_the_unknown_source() {
        let envelope = Envelope::decode(OLD_SERVICE_ENVELOPE).unwrap();
        assert_eq!(
            envelope,
            Envelope {
                event_id: "0b6f3c1e-2d4a-4f5b-9c8d-7e6f5a4b3c2d".into(),
                event_type: "USER_CREATED".into(),
                timestamp: "2026-12-06T15:26:03.417Z".into(),
                source: "unknown".into(),
                data: json!({"userId": "u-9", "email": "old@example.com", "name": "Old Service", "role": "USER"}),
            }
        );
        assert_eq!(UNKNOWN_SOURCE, "unknown");
        // JavaScript's toISOString() is RFC 3339, like every timestamp crm-router writes.
        assert!(chrono::DateTime::parse_from_rfc3339(&envelope.timestamp).is_ok());
        // What crm-router writes always names a source.
        assert_eq!(
            serde_json::to_value(&envelope).unwrap()["source"],
            "unknown"
        );
    }

    #[test]
    fn a_given_source_is_kept_and_the_other_fields_stay_required() {
        let with_source = OLD_SERVICE_ENVELOPE.replacen('{', r#"{"source":"auth-service","#, 1);
        assert_eq!(
            Envelope::decode(&with_source).unwrap().source,
            "auth-service"
        );
        for field in ["eventId", "eventType", "timestamp", "data"] {
            let mut value: serde_json::Value = serde_json::from_str(OLD_SERVICE_ENVELOPE).unwrap();
            value.as_object_mut().unwrap().remove(field);
            let error = Envelope::decode(&value.to_string()).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("missing field `{field}`")),
                "{error}"
            );
        }
        let null_source = OLD_SERVICE_ENVELOPE.replacen('{', r#"{"source":null,"#, 1);
        assert!(Envelope::decode(&null_source).is_err());
    }

    #[test]
    fn nul_characters_are_refused_with_or_without_a_source() {
        let nul_type = OLD_SERVICE_ENVELOPE.replace("USER_CREATED", "USER\\u0000CREATED");
        assert!(Envelope::decode(&nul_type)
            .unwrap_err()
            .to_string()
            .contains("NUL character"));
        let nul_source = OLD_SERVICE_ENVELOPE.replacen('{', r#"{"source":"a\u0000b","#, 1);
        assert!(Envelope::decode(&nul_source)
            .unwrap_err()
            .to_string()
            .contains("NUL character"));
    }

    #[test]
    fn submitted_events_get_defaults_and_checks() {
        let submitted: SubmittedEvent =
            serde_json::from_value(json!({"eventType": "USER_CREATED", "data": {}})).unwrap();
        let event = submitted.into_event("user.events").unwrap();
        assert_eq!(event.key, event.envelope.event_id);
        assert!(uuid::Uuid::parse_str(&event.envelope.event_id).is_ok());

        let bad_type: SubmittedEvent =
            serde_json::from_value(json!({"eventType": "no spaces", "data": {}})).unwrap();
        assert_eq!(
            bad_type.into_event("user.events"),
            Err(EventError::InvalidEventType("no spaces".into()))
        );
        let ok: SubmittedEvent =
            serde_json::from_value(json!({"eventType": "X", "data": {}})).unwrap();
        assert!(matches!(
            ok.into_event("a/b"),
            Err(EventError::InvalidTopic(_))
        ));
    }
}

#[cfg(test)]
mod decode_fuzz {
    //! Property tests of the event decoder: any JSON a client sends either becomes a valid
    //! event or a typed error, and any stored text either decodes or is refused; never a panic.

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::String),
            prop_oneof![
                Just("USER_CREATED"),
                Just("2026-11-29T10:00:00Z"),
                Just(""),
                Just("{{ 1 + 1 }}")
            ]
            .prop_map(|text| Value::String(text.to_owned())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("eventId"),
                            Just("eventType"),
                            Just("timestamp"),
                            Just("source"),
                            Just("data"),
                            Just("key"),
                            Just("other"),
                        ],
                        inner
                    ),
                    0..7
                )
                .prop_map(|entries| Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn submitted_json_becomes_a_valid_event_or_an_error(value in json(), topic in "[a-z._-]{0,12}") {
            let Ok(submitted) = serde_json::from_value::<SubmittedEvent>(value) else {
                return Ok(());
            };
            if let Ok(event) = submitted.into_event(&topic) {
                prop_assert!(check_event_type(&event.envelope.event_type).is_ok());
                prop_assert!(!event.key.is_empty() && event.key.len() <= 1024);
                prop_assert!(!event.envelope.event_id.is_empty() && event.envelope.event_id.len() <= 200);
                prop_assert!(chrono::DateTime::parse_from_rfc3339(&event.envelope.timestamp).is_ok());
                // What is accepted survives the log: it serialises and decodes to the same.
                let stored = serde_json::to_string(&event.envelope).unwrap();
                prop_assert_eq!(serde_json::from_str::<Envelope>(&stored).unwrap(), event.envelope);
            }
        }

        #[test]
        fn stored_text_decodes_or_is_refused(text in "\\PC{0,200}") {
            let _ = serde_json::from_str::<Envelope>(&text);
        }

        #[test]
        fn json_bodies_with_any_bytes_are_refused_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = serde_json::from_slice::<SubmittedEvent>(&bytes);
        }
    }
}

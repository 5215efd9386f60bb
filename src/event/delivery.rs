//! An event as it reaches the engine: the text that arrived, where it sits in its stream, and
//! the event decoded from it once.

use std::fmt;

use super::{Envelope, Event, TopicName};

/// Where a delivery comes from, which is what the consumer's position moves past once it is
/// handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The embedded event log, at this `seq`.
    Log(i64),
    /// A Kafka partition, at this offset.
    Kafka(i64),
    /// A dead letter handed back by an operator: it has no place in a stream.
    Replay,
    /// Submitted through the API and refused before it reached the log.
    Submitted,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log(seq) => write!(f, "log seq {seq}"),
            Self::Kafka(offset) => write!(f, "offset {offset}"),
            Self::Replay => f.write_str("replay"),
            Self::Submitted => f.write_str("submission"),
        }
    }
}

/// What arrived that is no event: the envelope does not decode, or the topic is not a topic
/// name. It is dead-lettered under whatever id and type could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// Empty when the envelope did not decode.
    pub event_id: String,
    /// Empty when the envelope did not decode.
    pub event_type: String,
    /// Why, as the dead letter says it.
    pub error: String,
}

/// One event delivered to the engine, decoded once when it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Where it comes from.
    pub origin: Origin,
    /// The topic as delivered.
    pub topic: String,
    /// The key as delivered.
    pub key: String,
    /// The envelope as stored or received, which is what a dead letter keeps.
    pub text: String,
    /// The event, or why there is none.
    pub decoded: Result<Event, Undecodable>,
}

impl Delivery {
    /// Decodes `text`, delivered on `topic` with `key`.
    pub fn new(origin: Origin, topic: String, key: String, text: String) -> Self {
        let decoded = match Envelope::decode(&text) {
            Err(error) => Err(Undecodable {
                event_id: String::new(),
                event_type: String::new(),
                error: format!("malformed event envelope: {error}"),
            }),
            Ok(envelope) => match TopicName::parse(&topic) {
                Ok(topic) => Ok(Event {
                    topic,
                    key: key.clone(),
                    envelope,
                }),
                Err(error) => Err(Undecodable {
                    event_id: envelope.event_id,
                    event_type: envelope.event_type,
                    error: error.to_string(),
                }),
            },
        };
        Self {
            origin,
            topic,
            key,
            text,
            decoded,
        }
    }

    /// An event just appended to the log at `seq` as `text`, which needs no decoding.
    pub fn appended(seq: i64, event: Event, text: String) -> Self {
        Self {
            origin: Origin::Log(seq),
            topic: event.topic.to_string(),
            key: event.key.clone(),
            text,
            decoded: Ok(event),
        }
    }

    /// A submitted event, as the API refuses it.
    pub fn submitted(event: &Event) -> Self {
        Self {
            origin: Origin::Submitted,
            topic: event.topic.to_string(),
            key: event.key.clone(),
            text: serde_json::to_string(&event.envelope).expect("envelopes serialise"),
            decoded: Ok(event.clone()),
        }
    }

    /// The event id, when the envelope decoded.
    pub fn event_id(&self) -> Option<&str> {
        match &self.decoded {
            Ok(event) => Some(&event.envelope.event_id),
            Err(undecodable) if !undecodable.event_id.is_empty() => Some(&undecodable.event_id),
            Err(_) => None,
        }
    }

    /// The event type, or empty when the envelope did not decode.
    pub fn event_type(&self) -> &str {
        match &self.decoded {
            Ok(event) => &event.envelope.event_type,
            Err(undecodable) => &undecodable.event_type,
        }
    }

    /// The stream position once this is handled: the log's `seq`, or Kafka's next offset
    /// (what Kafka's own committed offsets mean too). `None` outside a stream.
    pub fn position_after(&self) -> Option<i64> {
        match self.origin {
            Origin::Log(seq) => Some(seq),
            Origin::Kafka(offset) => Some(offset + 1),
            Origin::Replay | Origin::Submitted => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = r#"{"eventId":"e1","eventType":"USER_CREATED","timestamp":"2026-12-06T00:00:00Z","source":"s","data":{"name":"n"}}"#;

    #[test]
    fn a_delivery_is_decoded_once_when_it_arrives() {
        let delivery = Delivery::new(
            Origin::Kafka(41),
            "user.events".into(),
            "k".into(),
            ENVELOPE.into(),
        );
        let event = delivery.decoded.as_ref().unwrap();
        assert_eq!(event.envelope.data["name"], "n");
        assert_eq!(event.topic.as_str(), "user.events");
        assert_eq!(delivery.event_id(), Some("e1"));
        assert_eq!(delivery.position_after(), Some(42));
    }

    #[test]
    fn what_is_no_event_keeps_what_could_be_read() {
        let malformed = Delivery::new(Origin::Log(7), "t".into(), "k".into(), "{no".into());
        let undecodable = malformed.decoded.as_ref().unwrap_err();
        assert!(undecodable.error.starts_with("malformed event envelope: "));
        assert_eq!((malformed.event_id(), malformed.event_type()), (None, ""));
        assert_eq!(malformed.position_after(), Some(7));

        let bad_topic = Delivery::new(
            Origin::Log(8),
            "a topic".into(),
            "k".into(),
            ENVELOPE.into(),
        );
        let undecodable = bad_topic.decoded.as_ref().unwrap_err();
        assert!(
            undecodable.error.contains("not a valid topic name"),
            "{undecodable:?}"
        );
        assert_eq!(
            (bad_topic.event_id(), bad_topic.event_type()),
            (Some("e1"), "USER_CREATED")
        );
    }

    #[test]
    fn deliveries_outside_a_stream_move_no_position() {
        let replay = Delivery::new(Origin::Replay, "t".into(), "k".into(), ENVELOPE.into());
        assert_eq!(replay.position_after(), None);
        assert_eq!(Origin::Log(3).to_string(), "log seq 3");
    }
}

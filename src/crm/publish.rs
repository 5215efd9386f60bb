//! Domain events written to the event log inside the caller's transaction.

use crate::store::db::Conn;
use serde_json::Value;

use crate::event::{Envelope, Event, TopicName};
use crate::store::log;
use crate::template::now_rfc3339;

/// `source` of events the REST layer writes.
pub const SOURCE: &str = "crm-router";

/// Events appended by one operation, to log and announce once its transaction commits.
#[derive(Debug, Default)]
pub struct Published(pub Vec<Event>);

impl Published {
    /// Appends an event on `topic` to the log through `connection`.
    pub async fn append(
        &mut self,
        connection: &mut Conn<'_>,
        topic: &str,
        event_type: &str,
        key: &str,
        data: Value,
    ) -> Result<(), sqlx::Error> {
        let event = Event {
            topic: TopicName::parse(topic).expect("the CRM's topic names are valid"),
            key: key.to_owned(),
            envelope: Envelope {
                event_id: crate::event::new_event_id(),
                event_type: event_type.to_owned(),
                timestamp: now_rfc3339(),
                source: SOURCE.to_owned(),
                data,
            },
        };
        log::append(connection, &event).await?;
        self.0.push(event);
        Ok(())
    }
}

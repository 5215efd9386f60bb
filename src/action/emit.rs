//! `emit:` a new event. The event is collected in [`Run::emitted`]; the caller appends what its
//! transaction's successful routes emitted to the event log in one multi-row insert before it
//! commits, so the rows a route writes and the events announcing them commit together or not at
//! all, and a route that fails emits nothing.

use serde_json::json;

use super::{ActionError, EmitTrace, Rendered, Run, Scope};
use crate::event::{check_event_type, Envelope, Event, TopicName};
use crate::route::compile::Compiler;
use crate::route::model::EmitDef;
use crate::template::{now_rfc3339, ValueTemplate};

/// What an emit's `as:` holds.
pub const EMITTED_FIELDS: &[&str] = &["eventId", "topic", "eventType", "key"];

/// `source` of events emitted by routes.
pub const EMIT_SOURCE: &str = "crm-router";

/// A compiled emit.
#[derive(Debug, Clone)]
pub struct Emit {
    /// Destination topic.
    pub topic: TopicName,
    /// Event type.
    pub event_type: String,
    key: ValueTemplate,
    data: ValueTemplate,
    as_name: Option<String>,
}

pub(super) fn compile(compiler: &mut Compiler<'_>, path: &str, def: &EmitDef) -> Option<Emit> {
    let topic = match TopicName::parse(&def.topic) {
        Ok(topic) => Some(topic),
        Err(error) => {
            compiler.error(&format!("{path}.topic"), error.to_string(), None);
            None
        }
    };
    if let Err(error) = check_event_type(&def.event_type) {
        compiler.error(&format!("{path}.eventType"), error.to_string(), None);
    }
    let key = compiler.text(&format!("{path}.key"), &def.key);
    let data = match &def.data {
        Some(data) => compiler.value(&format!("{path}.data"), data),
        None => Some(ValueTemplate::Literal(json!({}))),
    };
    let as_name = match &def.as_name {
        Some(name) => Some(compiler.step_name(&format!("{path}.as"), name)?),
        None => None,
    };
    check_event_type(&def.event_type).ok()?;
    Some(Emit {
        topic: topic?,
        event_type: def.event_type.clone(),
        key: key?,
        data: data?,
        as_name,
    })
}

impl Emit {
    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
    ) -> Result<(), ActionError> {
        let context = scope.context();
        let key = run.templates.render_string(&self.key, &context)?;
        if key.is_empty() || key.len() > 1024 {
            return Err(ActionError::InvalidValue(format!(
                "emit {} rendered an empty or over-long key",
                self.event_type
            )));
        }
        let data = run.templates.render(&self.data, &context)?;
        if let Some(trace) = run.trace.as_deref_mut() {
            trace.rendered(Rendered::Emit(EmitTrace {
                topic: self.topic.to_string(),
                event_type: self.event_type.clone(),
                key: key.clone(),
                data: data.clone(),
                read_by: Vec::new(),
            }));
        }
        if let Err(errors) = run
            .schemas
            .validate(self.topic.as_str(), &self.event_type, &data)
        {
            return Err(ActionError::Schema {
                topic: self.topic.to_string(),
                event_type: self.event_type.clone(),
                errors: errors.join("; "),
            });
        }
        let event = Event {
            topic: self.topic.clone(),
            key,
            envelope: Envelope {
                event_id: crate::event::new_event_id(),
                event_type: self.event_type.clone(),
                timestamp: now_rfc3339(),
                source: EMIT_SOURCE.to_owned(),
                data,
            },
        };
        if let Some(name) = &self.as_name {
            // The fields of EMITTED_FIELDS, which the route checks read.
            scope.set_step(
                name,
                &json!({
                    "eventId": event.envelope.event_id,
                    "topic": event.topic.as_str(),
                    "eventType": event.envelope.event_type,
                    "key": event.key,
                }),
            );
        }
        run.emitted.push(event);
        Ok(())
    }
}

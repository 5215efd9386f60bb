//! Routes: the YAML format ([`model`]), loading and validation ([`load`], [`compile`]), and the
//! compiled, swappable [`RouteSet`]. This module does no IO beyond reading route and schema
//! files; the database catalog is passed in.

pub mod compile;
pub mod diagnostic;
pub mod graph;
pub mod ident;
pub mod load;
#[cfg(test)]
mod load_fuzz;
pub mod model;
pub mod reads;
pub mod source_map;
pub mod trigger;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use diagnostic::Diagnostic;
pub use ident::{Ident, RouteName};
pub use trigger::Trigger;

use crate::action::Step;
use crate::engine::retry::RetryPolicy;
use crate::schema::SchemaRegistry;
use crate::template::{TemplateEnvironment, TemplateLimits, TemplateValue};

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique name.
    pub name: RouteName,
    /// From the route file.
    pub description: Option<String>,
    /// File it was defined in.
    pub file: PathBuf,
    /// When it runs.
    pub trigger: Trigger,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// What it does.
    pub steps: Vec<Step>,
    /// Its metric series.
    pub metrics: crate::telemetry::RouteMetrics,
    /// Whether it may run for a run of events step by step, all the events at each step
    /// (`action::bulk`).
    pub lockstep: bool,
    /// The definition as written, to tell changed routes from unchanged ones on reload.
    pub definition: model::RouteDef,
}

/// Everything a reload swaps at once: routes, their templates, event schemas, allowed env.
#[derive(Debug)]
pub struct RouteSet {
    /// Routes in file order (files sorted by name).
    pub routes: Vec<Route>,
    /// Compiled templates of all routes.
    pub templates: TemplateEnvironment,
    /// Event schemas.
    pub schemas: SchemaRegistry,
    /// The `env` template variable: only allow-listed variables.
    pub env: TemplateValue,
    /// Where the routes came from, for logs (`./routes`, `bundled`).
    pub origin: String,
}

impl RouteSet {
    /// A set with no routes (the state before the first load).
    pub fn empty() -> Self {
        Self {
            routes: Vec::new(),
            templates: TemplateEnvironment::new(TemplateLimits::default()),
            schemas: SchemaRegistry::default(),
            env: TemplateValue::from(BTreeMap::<String, String>::new()),
            origin: "nothing".into(),
        }
    }

    /// Routes whose topic and type filters accept the event, in order.
    pub fn matching<'a>(
        &'a self,
        topic: &'a str,
        event_type: &'a str,
    ) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes
            .iter()
            .filter(move |route| route.trigger.accepts(topic, event_type))
    }

    /// A route by name.
    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.name.as_str() == name)
    }
}

/// What a reload changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteDiff {
    /// New route names.
    pub added: Vec<String>,
    /// Routes whose definition changed.
    pub changed: Vec<String>,
    /// Routes no longer defined.
    pub removed: Vec<String>,
}

impl RouteDiff {
    /// Compares two sets by route name and definition.
    pub fn between(old: &RouteSet, new: &RouteSet) -> Self {
        let mut diff = Self::default();
        for route in &new.routes {
            match old.get(route.name.as_str()) {
                None => diff.added.push(route.name.to_string()),
                Some(previous) if previous.definition != route.definition => {
                    diff.changed.push(route.name.to_string())
                }
                Some(_) => {}
            }
        }
        for route in &old.routes {
            if new.get(route.name.as_str()).is_none() {
                diff.removed.push(route.name.to_string());
            }
        }
        diff
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

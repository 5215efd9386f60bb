//! `crm-router graph`: how the routes connect, as a Mermaid or Graphviz diagram. Each event
//! (topic and type) and each schedule points at the routes it runs; each route points at the
//! events it emits, which point at the routes they run in turn.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::trigger::{TopicPattern, TriggerKind, TypeFilter};
use super::{Route, RouteSet};
use crate::action::{Action, Step};

/// How the diagram is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid flowchart (renders on GitHub inside ```mermaid fences).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
}

/// A node: an event, what a route listens to when it is not one event, or a route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    /// One event type on one topic.
    Event { topic: String, event_type: String },
    /// A trigger that is not one literal event: a topic glob, any type, or a schedule.
    Trigger(String),
    /// A route.
    Route(String),
}

impl Node {
    fn id(&self) -> String {
        let (prefix, text) = match self {
            Self::Event { topic, event_type } => ("event", format!("{topic}_{event_type}")),
            Self::Trigger(text) => ("trigger", text.clone()),
            Self::Route(name) => ("route", name.clone()),
        };
        let safe: String = text
            .chars()
            .map(|character| {
                if character.is_ascii_alphanumeric() {
                    character
                } else {
                    '_'
                }
            })
            .collect();
        // The text's own hash keeps two names that differ only in punctuation apart.
        format!("{prefix}_{safe}_{:x}", fnv1a(&text))
    }

    fn label(&self) -> String {
        match self {
            Self::Event { topic, event_type } => format!("{event_type}\n{topic}"),
            Self::Trigger(text) | Self::Route(text) => text.clone(),
        }
    }
}

/// A small stable hash (FNV-1a) for node ids: the same input gives the same diagram.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The events a route's steps emit (those nested in `for_each` included), as (topic, type).
fn emitted(steps: &[Step], into: &mut BTreeSet<(String, String)>) {
    for step in steps {
        match &step.action {
            Action::Emit(emit) => {
                into.insert((emit.topic.to_string(), emit.event_type.clone()));
            }
            Action::Query(query) => emitted(&query.for_each, into),
            _ => {}
        }
    }
}

/// The nodes and edges of `set`, sorted, so the diagram is the same for the same routes.
fn edges(set: &RouteSet) -> (BTreeSet<Node>, BTreeSet<(Node, Node)>) {
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    let mut events = BTreeSet::new();
    for route in &set.routes {
        match &route.trigger.kind {
            TriggerKind::Events {
                topic: TopicPattern::Exact(topic),
                types: TypeFilter::OneOf(types),
            } => {
                for event_type in types {
                    events.insert((topic.clone(), event_type.clone()));
                }
            }
            TriggerKind::Events { topic, types } => {
                let text = format!("{} [{}]", topic.as_str(), types.names().join(", "));
                let trigger = Node::Trigger(text);
                edges.insert((trigger.clone(), route_node(route)));
                nodes.insert(trigger);
            }
            TriggerKind::Schedule(schedule) => {
                let trigger = Node::Trigger(format!("schedule {}", schedule.as_str()));
                edges.insert((trigger.clone(), route_node(route)));
                nodes.insert(trigger);
            }
        }
        let mut out = BTreeSet::new();
        emitted(&route.steps, &mut out);
        for (topic, event_type) in out {
            let event = Node::Event {
                topic: topic.clone(),
                event_type: event_type.clone(),
            };
            edges.insert((route_node(route), event));
            events.insert((topic, event_type));
        }
        nodes.insert(route_node(route));
    }
    // Each event runs every route whose trigger accepts it, globs and "any type" included.
    for (topic, event_type) in events {
        let event = Node::Event {
            topic: topic.clone(),
            event_type: event_type.clone(),
        };
        for route in &set.routes {
            if route.trigger.accepts(&topic, &event_type) {
                edges.insert((event.clone(), route_node(route)));
            }
        }
        nodes.insert(event);
    }
    (nodes, edges)
}

fn route_node(route: &Route) -> Node {
    Node::Route(route.name.to_string())
}

/// The diagram of `set` in `format`.
pub fn render(set: &RouteSet, format: GraphFormat) -> String {
    let (nodes, edges) = edges(set);
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for node in &nodes {
                // Mermaid takes quoted labels; `#quot;` is its escape for a quote.
                let label = node.label().replace('"', "#quot;").replace('\n', "<br/>");
                let _ = match node {
                    Node::Event { .. } => writeln!(out, "    {}([\"{label}\"])", node.id()),
                    Node::Trigger(_) => writeln!(out, "    {}{{{{\"{label}\"}}}}", node.id()),
                    Node::Route(_) => writeln!(out, "    {}[\"{label}\"]", node.id()),
                };
            }
            for (from, to) in &edges {
                let _ = writeln!(out, "    {} --> {}", from.id(), to.id());
            }
        }
        GraphFormat::Dot => {
            out.push_str("digraph routes {\n    rankdir=LR;\n");
            for node in &nodes {
                let label = node
                    .label()
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let shape = match node {
                    Node::Event { .. } => "ellipse",
                    Node::Trigger(_) => "hexagon",
                    Node::Route(_) => "box",
                };
                let _ = writeln!(out, "    {} [label=\"{label}\", shape={shape}];", node.id());
            }
            for (from, to) in &edges {
                let _ = writeln!(out, "    {} -> {};", from.id(), to.id());
            }
            out.push_str("}\n");
        }
    }
    out
}

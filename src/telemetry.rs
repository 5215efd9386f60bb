//! Prometheus metrics: what the daemon counts and times, and the recorder `/metrics` renders.
//!
//! Code records through the `metrics` facade with the functions below, so metric names and
//! labels are defined in one place. Without an installed recorder (unit tests, the CLI) they
//! cost next to nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds (seconds) for durations: 100 µs to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// Installs the process-wide recorder once and returns its handle. Later calls (a second
/// application in one process, as in tests) get the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed by an embedding program; ours then stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Distinct (topic, type) label pairs the event counters keep before new pairs are counted as
/// `other`: topics and types come from whoever submits events, and each pair is a series.
const MAX_EVENT_LABELS: usize = 1_000;

/// The (topic, type) pairs with series of their own, and how many there are.
#[derive(Default)]
struct EventLabels {
    types_by_topic: HashMap<String, HashSet<String>>,
    pairs: usize,
}

static EVENT_LABELS: LazyLock<RwLock<EventLabels>> = LazyLock::new(RwLock::default);

/// The labels an event is counted under: its own topic and type while fewer than
/// [`MAX_EVENT_LABELS`] pairs have been seen, else `other`/`other`. A known pair costs a
/// shared read and no allocation beyond the labels themselves.
fn event_labels(topic: &str, event_type: &str) -> (String, String) {
    let known = EVENT_LABELS.read().is_ok_and(|seen| {
        seen.types_by_topic
            .get(topic)
            .is_some_and(|types| types.contains(event_type))
    });
    let admitted = known
        || EVENT_LABELS.write().is_ok_and(|mut seen| {
            if seen.pairs >= MAX_EVENT_LABELS {
                return false;
            }
            if seen
                .types_by_topic
                .entry(topic.to_owned())
                .or_default()
                .insert(event_type.to_owned())
            {
                seen.pairs += 1;
            }
            true
        });
    if admitted {
        (topic.to_owned(), event_type.to_owned())
    } else {
        ("other".to_owned(), "other".to_owned())
    }
}

/// An event entered the routes (first attempt only).
pub fn event_received(topic: &str, event_type: &str) {
    let (topic, event_type) = event_labels(topic, event_type);
    metrics::counter!("crm_router_events_received_total", "topic" => topic, "type" => event_type)
        .increment(1);
}

/// An event was handled: every matching route applied.
pub fn event_routed(topic: &str, event_type: &str) {
    let (topic, event_type) = event_labels(topic, event_type);
    metrics::counter!("crm_router_events_routed_total", "topic" => topic, "type" => event_type)
        .increment(1);
}

/// An event arrived that no route reads (its topic and type match no route's trigger).
pub fn event_unrouted(topic: &str, event_type: &str) {
    let (topic, event_type) = event_labels(topic, event_type);
    metrics::counter!("crm_router_events_unrouted_total", "topic" => topic, "type" => event_type)
        .increment(1);
}

/// An event (or one route's handling of it) was dead-lettered.
pub fn event_dead_lettered(topic: &str, event_type: &str) {
    let (topic, event_type) = event_labels(topic, event_type);
    metrics::counter!("crm_router_events_dead_lettered_total", "topic" => topic, "type" => event_type).increment(1);
}

/// The action kinds, in the order [`RouteMetrics`] keeps their timings.
const ACTION_KINDS: [&str; 6] = ["insert", "upsert", "update", "query", "emit", "http"];

/// One route's series, registered when its route set compiles: counting an execution or
/// timing an action then allocates no label and looks up no series, once per route and event.
/// Registered before the recorder is installed (the CLI, unit tests), they count nothing.
#[derive(Clone)]
pub struct RouteMetrics(Arc<RouteSeries>);

struct RouteSeries {
    applied: metrics::Counter,
    retried: metrics::Counter,
    dead_lettered: metrics::Counter,
    /// Only for the kinds the route has, so a route's unused kinds add no series.
    actions: [Option<metrics::Histogram>; ACTION_KINDS.len()],
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RouteMetrics")
    }
}

impl RouteMetrics {
    /// The series of the route named `route`, whose actions are of the kinds `kinds`.
    pub fn register(route: &str, kinds: &[&str]) -> Self {
        let executions = |outcome: &'static str| metrics::counter!("crm_router_route_executions_total", "route" => route.to_owned(), "outcome" => outcome);
        Self(Arc::new(RouteSeries {
            applied: executions("applied"),
            retried: executions("retry"),
            dead_lettered: executions("dead_lettered"),
            actions: ACTION_KINDS.map(|kind| {
                kinds.contains(&kind).then(|| {
                    metrics::histogram!("crm_router_action_duration_seconds", "route" => route.to_owned(), "kind" => kind)
                })
            }),
        }))
    }

    /// The route ran for an event and its effects committed.
    pub fn applied(&self) {
        self.0.applied.increment(1);
    }

    /// The route failed for an event that will be tried again.
    pub fn retried(&self) {
        self.0.retried.increment(1);
    }

    /// The route's handling of an event was dead-lettered.
    pub fn dead_lettered(&self) {
        self.0.dead_lettered.increment(1);
    }

    /// One action of kind `kind` ran (successfully or not).
    pub fn action_took(&self, kind: &str, took: Duration) {
        let at = ACTION_KINDS.iter().position(|known| *known == kind);
        if let Some(Some(histogram)) = at.map(|at| &self.0.actions[at]) {
            histogram.record(took.as_secs_f64());
        }
    }
}

/// Events in the outbox not yet acknowledged by Kafka.
pub fn outbox_backlog(events: i64) {
    metrics::gauge!("crm_router_outbox_backlog").set(events as f64);
}

/// Events of a stream partition not yet handled by this consumer.
pub fn consumer_lag(stream: &str, partition: i64, lag: i64) {
    metrics::gauge!("crm_router_consumer_lag", "stream" => stream.to_owned(), "partition" => partition.to_string()).set(lag as f64);
}

/// A route reload finished: `ok` or `invalid`/`error`.
pub fn reload(result: &'static str) {
    metrics::counter!("crm_router_reloads_total", "result" => result).increment(1);
}

/// An HTTP request was answered; `route` is the matched path template (`/api/customers/{id}`).
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    metrics::histogram!(
        "crm_router_http_request_duration_seconds",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .record(took.as_secs_f64());
}

//! Faults injected on purpose, and what they must not do: lose an event, apply one twice, or
//! stop the stream. A poison event is dead-lettered and everything else flows.
//!
//! - `http_target`: an HTTP target times out, then answers 500, then recovers; another never
//!   recovers.
//! - `poison`: one route fails permanently for one event type while another route on the same
//!   topic keeps running.
//!
//! A Kafka broker that goes away in the middle of a stream and comes back is covered by
//! `kafka::a_broker_outage_mid_stream_loses_nothing_and_doubles_nothing`.

mod http_target;
mod poison;

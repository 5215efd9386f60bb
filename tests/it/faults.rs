//! Faults injected on purpose, and what they must not do: lose an event, apply one twice, stop
//! the stream, or leave the daemon unready once the fault is over. A poison event is
//! dead-lettered and everything else flows.
//!
//! - `connections_killed`: PostgreSQL terminates the daemon's sessions again and again while
//!   events stream in.
//! - `outage`: the link to PostgreSQL goes down, mid-stream and while idle, and comes back; and
//!   a network partition leaves the daemon's sessions alive at the server.
//! - `http_target`: an HTTP target times out, then answers 500, then recovers; another never
//!   recovers.
//! - `poison`: one route fails permanently for one event type while another route on the same
//!   topic keeps running.
//!
//! The database faults are PostgreSQL only: a SQLite database is a file the daemon opens in its
//! own process, with no server or connection between them that could fail on its own. A Kafka
//! broker that goes away in the middle of a stream and comes back is covered by
//! `kafka::a_broker_outage_mid_stream_loses_nothing_and_doubles_nothing`.

mod connections_killed;
mod database_link;
mod http_target;
mod outage;
mod poison;
pub(crate) mod stream;

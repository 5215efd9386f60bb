//! Integration tests: the real binary, a real database (SQLite or PostgreSQL), real HTTP on a
//! random port.

mod api_fuzz;
mod bench;
mod cascade;
mod check;
mod cors;
mod crash;
mod crash_cascade;
mod crm_authz;
mod crm_flows;
mod dead_letters;
mod deletions;
mod differential;
mod faults;
mod flood;
mod folding;
mod graph;
mod hostile;
mod http_errors;
mod import;
mod kafka;
mod metrics;
mod openapi;
mod operations;
mod original_api;
mod postgres_tls;
mod reload;
mod replay;
mod route_tests;
mod schedule;
mod simulate;
mod slow_clients;
mod support;
mod values;

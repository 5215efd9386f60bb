//! Integration tests: the real binary, a real database (SQLite or PostgreSQL), real HTTP on a
//! random port.

mod cascade;
mod check;
mod crash;
mod crm_authz;
mod crm_flows;
mod dead_letters;
mod http_errors;
mod kafka;
mod operations;
mod reload;
mod schedule;
mod support;

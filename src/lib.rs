//! crm-router: declarative YAML routes turn events into database rows, HTTP calls and new
//! events, with effects, emitted events and consumer positions committed together.
//!
//! See ARCHITECTURE.md for the map of modules and the path of one event.

pub mod action;
pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod bundled;
pub mod check;
pub mod config;
pub mod crm;
pub mod engine;
pub mod event;
pub mod import;
pub mod init;
pub mod kafka;
pub mod reload;
pub mod route;
pub mod schema;
pub mod server;
pub mod store;
pub mod suite;
pub mod telemetry;
pub mod template;
#[cfg(test)]
mod test_project;

//! helpline: a 24/7 helpline and chat contact-centre backend.
//!
//! # Layout
//! - [`cli`]: the `helpline` command (serve, migrate, user).
//! - [`app`]: wiring: settings, shared state, build and graceful shutdown.
//! - [`routing`]: the pure routing engine (no I/O, no clock).
//! - [`engine_task`]: the one task that owns the engine, commits its steps, then notifies.
//! - [`relay`]: the conversation task: message group commits, acks, ordered delivery.
//! - [`supervise`]: the supervisors' live board, built every second.
//! - [`cluster`]: cluster mode on PostgreSQL and Redis: leader lease with a fencing token, forwarding between nodes.
//! - [`hub`]: the registry of live sockets and their bounded outboxes.
//! - [`ws`]: the WebSocket endpoints (caller, counsellor) and the session loop.
//! - [`http`]: REST routes (login, tickets, health).
//! - [`api`], [`casework`]: the casework REST API (forms, escalations, services, placements, cases, audit, OpenAPI) and its rules.
//! - [`protocol`]: every WebSocket frame, as serde-tagged enums.
//! - [`store`]: persistence on SQLite or PostgreSQL, one module per concern.
//! - [`auth`]: passwords, tokens, tickets.
//! - [`abuse`]: abusive contacts: flags, blocks of a caller's keyed identifier, routing to senior counsellors.
//! - [`guard`]: per-address abuse limits (sockets, new chats, logins) and the client address behind proxies.
//! - [`metrics`], [`reports`], [`staffing`], [`simulate`]: figures (one definition), reports, Erlang C, roster simulation.
//! - [`stats`]: Prometheus metrics at `/metrics`.
//! - [`web`]: the embedded browser front ends (chat widget, console, dashboard).
//! - [`error`], [`clock`], [`telemetry`], [`demo`]: cross-cutting pieces.

pub mod abuse;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod casework;
pub mod clock;
pub mod cluster;
pub mod demo;
pub mod engine_task;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod guard;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod relay;
pub mod privacy;
pub mod reports;
pub mod retention;
pub mod rollup;
pub mod routing;
pub mod service_cli;
pub mod simulate;
pub mod staffing;
pub mod stats;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod telephony;
pub mod web;
pub mod ws;

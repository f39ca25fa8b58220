//! helpline: a 24/7 helpline and chat contact-centre backend.
//!
//! # Layout
//! The layers, from the edges down (`ARCHITECTURE.md`, section Layers, has the rules; a test enforces them):
//! - [`app`]: the binary: command line, settings, wiring (`Application::build`, `run_until`), the background loops, demo data.
//! - [`edge`]: the HTTP router and the generic REST routes, the WebSocket sessions, the embedded front ends, the OpenAPI document.
//! - Domains, each with its rules, its services and its thin HTTP handlers:
//!   [`casework`] (contact forms, escalations, services, placements, cases, audit),
//!   [`telephony`] (telephone exchanges: events, call control, call records),
//!   [`supervision`] (the live board, the figures, reports, roll-ups, staffing, simulation),
//!   [`safety`] (abusive contacts, access requests, retention).
//! - [`state`]: what edges and domains share: `AppState` (the handles), `AppError`, the request extractors.
//! - [`cluster`]: cluster mode on PostgreSQL and Redis: the leader lease, forwarding between nodes.
//! - [`chat`]: the chat core: the engine task, the relay, the socket registry, the exchanges' command delivery.
//! - [`auth`]: passwords, tokens, tickets, per-address limits.
//! - [`store`]: persistence on SQLite or PostgreSQL, one module per concern; all SQL lives here.
//! - Leaves: [`protocol`] (every WebSocket frame), [`routing`] (the pure routing engine), [`clock`].

pub mod app;
pub mod auth;
pub mod casework;
pub mod chat;
pub mod clock;
pub mod cluster;
pub mod edge;
pub mod protocol;
pub mod routing;
pub mod safety;
pub mod state;
pub mod store;
pub mod supervision;
pub mod telephony;

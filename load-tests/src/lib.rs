//! `helpline-load`: load scenarios that drive a running helpline (or the in-memory `bare` relay) over real WebSockets.
//!
//! Scenarios: [`relay`] (open conversations, messages at a fixed arrival rate), [`routing`]
//! (Poisson contact arrivals to available counsellors), [`connections`] (idle sockets, RSS per
//! socket, reconnect storm). Every scenario returns a [`report::Report`] that prints as a table
//! and serializes to JSON.

pub mod bare;
pub mod client;
pub mod connections;
pub mod day;
pub mod plot;
pub mod procfs;
pub mod relay;
pub mod report;
pub mod routing;
pub mod stats;
pub mod supervisors;
pub mod target;
pub mod xmpp;

//! The edges: the HTTP router and the generic REST routes ([`rest`]), the WebSocket sessions ([`ws`]),
//! the embedded browser front ends ([`assets`]), the OpenAPI document ([`openapi`]). Edges parse,
//! authorize, call a domain or the core, and map errors; they hold no rules.

pub mod assets;
#[cfg(test)]
mod fuzz;
pub mod openapi;
pub mod prometheus;
pub mod rest;
pub mod ws;

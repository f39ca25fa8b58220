//! The chat core: the task that owns the routing engine ([`engine_task`]), the conversation relay
//! ([`relay`]), the registry of live sockets ([`hub`]), the seam to a contact's caller whatever the
//! channel ([`channel`]), the rule that no message read is left unanswered ([`promise`]) and the
//! Prometheus counters ([`counters`]).
//! It knows the store, the protocol and the routing engine; it does not know the cluster transport,
//! telephony's webhook, HTTP or any edge.

pub mod channel;
pub mod counters;
pub mod engine_task;
pub mod exchange;
pub mod forward;
pub mod hub;
pub mod left;
pub mod promise;
pub mod relay;
pub mod survey;

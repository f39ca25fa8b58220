//! Casework: the rules without I/O ([`rules`], and [`stage_forms`]: the stage forms as data and their check; the contact-form taxonomy, risks, escalation kinds,
//! service types, the case stage machine and its deadlines, case numbers), the services that apply them
//! with the store ([`cases`], [`services`], [`forms`], [`escalation`], [`referrals`], [`tasks`], [`transfers`]: rules and store calls, no HTTP)
//! and the thin REST edge over them ([`http`]: parse, call, shape the answer).

pub mod cases;
pub mod continuity;
pub mod escalation;
pub mod forms;
pub mod handover;
pub mod http;
pub mod referrals;
pub mod rules;
pub mod services;
pub mod stage_forms;
pub mod tasks;
pub mod transfers;

pub use rules::*;

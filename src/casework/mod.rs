//! Casework: the rules without I/O ([`rules`]: the contact-form taxonomy, risks, escalation kinds,
//! service types, the case stage machine and its deadlines, case numbers) and the REST API over them
//! ([`http`]).

pub mod escalation;
pub mod http;
pub mod rules;

pub use rules::*;

//! What supervisors see: the live board ([`board`]), reports ([`reports`]) over the figures and
//! roll-ups (`store::figures`, `store::rollup`; the background step: [`rollup`]), Erlang C staffing ([`staffing`]) and the roster
//! simulation ([`simulate`]).

pub mod board;
pub mod reports;
pub mod rollup;
pub mod simulate;
pub mod staffing;

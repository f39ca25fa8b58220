//! What supervisors see: the live board ([`board`]), reports ([`reports`]) over the figures and
//! roll-ups (`store::figures`, `store::rollup`; the background step: [`rollup`]), Erlang C staffing ([`staffing`]) and the roster
//! simulation ([`simulate`]); opening hours and callback numbers over REST ([`hours`]).

pub mod board;
pub mod hours;
pub mod reports;
pub mod rollup;
pub mod simulate;
pub mod staffing;

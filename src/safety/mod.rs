//! Keeping callers and staff safe: abusive contacts ([`abuse`]: flags, blocks, senior routing),
//! access requests and the break-glass reveal ([`privacy`]), retention ([`retention`]).

pub mod abuse;
pub mod privacy;
pub mod retention;

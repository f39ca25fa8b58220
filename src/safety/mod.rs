//! Keeping callers and staff safe: abusive contacts ([`abuse`]: flags, blocks, senior routing),
//! access requests and the break-glass reveal ([`privacy`]), retention ([`retention`]), chat callers'
//! anonymous return codes ([`return_code`]).

pub mod abuse;
pub mod privacy;
pub mod retention;
pub mod return_code;

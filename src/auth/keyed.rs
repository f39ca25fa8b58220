//! Keyed hashes of callers' identifiers: a number or a chat network is never stored, only an
//! HMAC-SHA256 of it under a key kept in `server_secrets`, to recognise a repeat caller or a blocked one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The caller's number reduced to its digits (`+373 22 123-456` → `37322123456`); None when withheld.
pub fn normalise_number(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// HMAC-SHA256 of the normalised number under the server's key, hex: recognises repeat callers
/// without keeping the number.
pub fn caller_hash(key: &str, digits: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(digits.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of the server secret that keys [`login_name_hash`].
pub const LOGIN_NAME_KEY: &str = "login_name_hmac";

/// The keyed hash of a name typed at login (normalised: `ION` and ` ion` are `ion`), prefixed `name:`:
/// how a failed login's name is kept in the audit log and the lockouts, never as typed.
pub fn login_name_hash(key: &str, name: &str) -> String {
    format!("name:{}", caller_hash(key, &format!("login:{}", crate::auth::guard::account_key(name))))
}

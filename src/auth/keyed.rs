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

/// The name of the server secret that keys callers' numbers ([`caller_hash`]), and the other keyed
/// hashes of what a caller gives us: a chat caller's return code ([`return_code_hash`]).
pub const CALLER_NUMBER_KEY: &str = "caller_number_hmac";

/// The letters of a return code: no 0/O, 1/I/L, so it is read back and typed without mistakes.
const RETURN_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a return code (about 59 bits: not guessed).
pub const RETURN_CODE_LEN: usize = 12;

/// A fresh return code, `XXXX-XXXX-XXXX`, from the OS generator.
pub fn new_return_code() -> String {
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> =
        (0..RETURN_CODE_LEN).map(|_| char::from(RETURN_CODE_ALPHABET[rng.gen_range(0..RETURN_CODE_ALPHABET.len())])).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A return code as typed (any case, spaces or dashes anywhere) reduced to its letters; None when it
/// cannot be one (wrong length or a letter codes never have).
pub fn normalise_return_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == RETURN_CODE_LEN && code.bytes().all(|b| RETURN_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// The keyed hash a return code is kept as (HMAC-SHA256 under the caller-number key, apart from
/// numbers by its prefix): the code itself is never stored.
pub fn return_code_hash(key: &str, normalised: &str) -> String {
    caller_hash(key, &format!("return:{normalised}"))
}

#[cfg(test)]
mod return_code_tests {
    use super::*;

    #[test]
    fn a_return_code_is_read_back_however_it_is_typed_and_kept_only_as_a_keyed_hash() {
        let code = new_return_code();
        assert_eq!(code.len(), RETURN_CODE_LEN + 2);
        let plain = normalise_return_code(&code).expect("a fresh code is a code");
        assert_eq!(normalise_return_code(&code.to_lowercase().replace('-', " ")), Some(plain.clone()));
        assert_eq!(normalise_return_code("ABCD-EFGH-JK"), None, "too short");
        assert_eq!(normalise_return_code("ABCD-EFGH-JKL0"), None, "0 is never in a code");
        let hash = return_code_hash("k", &plain);
        assert_eq!(hash, return_code_hash("k", &plain));
        assert_ne!(hash, return_code_hash("k2", &plain));
        assert_ne!(hash, caller_hash("k", &plain), "apart from a number's hash");
        assert!(!hash.contains(&plain));
        assert_ne!(new_return_code(), code);
    }
}

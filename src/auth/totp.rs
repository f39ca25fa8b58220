//! The second factor for staff: time-based one-time codes (RFC 6238: SHA-1, 6 digits, 30 s steps, the
//! authenticator apps' defaults) through `totp-rs`, and single-use recovery codes.

use rand::Rng;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "helpline";
/// Recovery codes given at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Seconds per step.
const STEP: u64 = 30;

/// A new random secret (160 bits, as RFC 4226 recommends), base32 as authenticator apps take it.
pub fn new_secret() -> String {
    Secret::generate_secret().to_encoded().to_string()
}

fn totp(secret: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret.to_string()).to_bytes().ok()?;
    // `:` separates issuer and account in the URI; usernames have none, but a bad one must not fail.
    TOTP::new(Algorithm::SHA1, 6, 1, STEP, bytes, Some(ISSUER.into()), account.replace(':', "_")).ok()
}

/// The `otpauth://totp/…` URI an authenticator app scans (as a QR code) or takes pasted.
pub fn uri(secret: &str, account: &str) -> Option<String> {
    totp(secret, account).map(|t| t.get_url())
}

/// The step (30 s period since the epoch) whose code `code` is, within one step of `now_secs` either
/// side (a phone's clock drifts), or None. The caller refuses a step already used (no replay).
pub fn matching_step(secret: &str, account: &str, code: &str, now_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, account)?;
    let now_step = now_secs / STEP;
    [now_step.saturating_sub(1), now_step, now_step + 1]
        .into_iter()
        .find(|step| bool::from(totp.generate(step * STEP).as_bytes().ct_eq(code.as_bytes())))
}

/// The code for `now_secs` (tests and the demo; the server never needs it).
pub fn code_at(secret: &str, account: &str, now_secs: u64) -> Option<String> {
    totp(secret, account).map(|t| t.generate(now_secs))
}

/// True when `code` looks like a recovery code rather than a 6-digit TOTP code.
pub fn is_recovery_code(code: &str) -> bool {
    code.trim().len() > 6
}

/// New recovery codes: 10 characters each from an alphabet without look-alikes, shown as `xxxxx-xxxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: String = (0..10).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// A recovery code as stored: the SHA-256 of its normalised form (lower case, no blanks or dashes),
/// so `ABCDE-FGHJK`, `abcdefghjk` and `abcde fghjk` are the same code.
pub fn recovery_code_hash(code: &str) -> String {
    let normal: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    super::token_hash(&normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_its_neighbours_only() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, "ana", now).expect("code");
        assert_eq!(matching_step(&secret, "ana", &code, now), Some(now / 30));
        assert_eq!(matching_step(&secret, "ana", &code, now + 30), Some(now / 30), "a step of drift is allowed");
        assert_eq!(matching_step(&secret, "ana", &code, now + 120), None, "an old code is refused");
        assert_eq!(matching_step(&secret, "ana", "12345", now), None);
        assert_eq!(matching_step(&secret, "ana", "abcdef", now), None);
        let uri = uri(&secret, "ana").expect("uri");
        assert!(uri.starts_with("otpauth://totp/helpline:ana?"), "{uri}");
        assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalised_for_hashing() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert!(codes.iter().all(|c| is_recovery_code(c)));
        assert_eq!(recovery_code_hash("ABCDE-FGHJK"), recovery_code_hash(" abcdefghjk"));
    }
}

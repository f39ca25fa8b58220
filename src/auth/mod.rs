//! Authentication: argon2 password hashes, short-lived HS256 access tokens (RFC 8725: algorithm pinned, explicit `typ`, `kid` with a rotation overlap, iss/aud/exp/nbf checked against the server clock), opaque refresh tokens, and single-use WebSocket tickets.

pub mod accounts;
pub mod guard;
pub mod keyed;
pub mod password;
pub mod totp;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::store::users::Role;

/// The `iss` and `aud` of every token this server issues and accepts.
pub const ISSUER: &str = "helpline";
pub const AUDIENCE: &str = "helpline";
/// How long a WebSocket ticket stays redeemable.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Clock leeway when checking `exp`/`nbf`, set explicitly.
pub const LEEWAY_SECS: u64 = 5;
/// The explicit type of access tokens (RFC 9068), checked on every token: a token of another
/// kind (an ID token, another service's JWT signed with a shared key) is not an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Default lifetime of access tokens: short, so a stolen one is worth little; the pages refresh them.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Default lifetime of a login through refreshes: a night shift.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(12 * 3600);

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// When it was issued, in milliseconds (logout voids tokens issued before it, to the millisecond).
    #[serde(default)]
    pub iat_ms: i64,
}

/// Signing and verification keys, with the validation rules pinned.
///
/// Rotation: start the server with the new key and the old one as `previous`
/// (`HELPLINE_JWT_PREVIOUS_SECRET`) for at least one token lifetime; tokens name their key in
/// `kid`, so both verify during the overlap, and only the new key signs.
#[derive(Clone)]
pub struct AuthKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    previous: Option<(String, DecodingKey)>,
    validation: Validation,
    pub token_ttl: Duration,
    /// How long a login lasts through refreshes: a refresh token family expires this long after the
    /// login that started it, however often it is rotated.
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys").field("token_ttl", &self.token_ttl).field("refresh_ttl", &self.refresh_ttl).finish_non_exhaustive()
    }
}

impl AuthKeys {
    pub fn new(secret: &[u8], token_ttl: Duration) -> AuthKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // `exp` and `nbf` are checked in `verify_at` against the server's clock (the one that issued them).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = LEEWAY_SECS;
        AuthKeys {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            previous: None,
            validation,
            token_ttl,
            refresh_ttl: DEFAULT_REFRESH_TTL,
        }
    }

    /// Sets how long a login lasts through refreshes.
    pub fn with_refresh_ttl(mut self, refresh_ttl: Duration) -> AuthKeys {
        self.refresh_ttl = refresh_ttl;
        self
    }

    /// Also accepts tokens signed with `previous` (named by its `kid`) during a key rotation.
    pub fn with_previous(mut self, previous: &[u8]) -> AuthKeys {
        if !previous.is_empty() && key_id(previous) != self.kid {
            self.previous = Some((key_id(previous), DecodingKey::from_secret(previous)));
        }
        self
    }

    /// The `kid` of the signing key.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// Issues an access token for an account, valid from `now_ms` for `token_ttl`.
    pub fn issue(&self, user_id: &str, role: Role, now_ms: i64) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now = now_ms / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            nbf: now,
            exp: now + i64::try_from(self.token_ttl.as_secs()).unwrap_or(3600),
            iat_ms: now_ms,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies a token now (by the system clock); see [`AuthKeys::verify_at`].
    pub fn verify(&self, token: &str) -> Option<Claims> {
        self.verify_at(token, crate::clock::Clock::new().now_ms())
    }

    /// Verifies a token at `now_ms`: `typ` (access token), `kid` (the current or the previous key),
    /// signature (HS256 only), `iss`, `aud`, then `exp` and `nbf` with [`LEEWAY_SECS`] of leeway.
    pub fn verify_at(&self, token: &str, now_ms: i64) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return None;
        }
        let key = match (header.kid.as_deref(), &self.previous) {
            (Some(kid), _) if kid == self.kid => &self.decoding,
            (Some(kid), Some((previous, key))) if kid == previous => key,
            _ => return None,
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation).ok()?.claims;
        let (now, leeway) = (now_ms.div_euclid(1000), i64::try_from(LEEWAY_SECS).unwrap_or(0));
        (claims.exp > now.saturating_sub(leeway) && claims.nbf <= now.saturating_add(leeway)).then_some(claims)
    }
}

/// A key's public name: the first 16 hex digits of its SHA-256 (names the key, reveals nothing of it).
fn key_id(secret: &[u8]) -> String {
    Sha256::digest(secret).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Generates a new random secret: 256 bits, URL-safe base64.
pub fn random_secret() -> String {
    random_token(32)
}

/// `bytes` random bytes from the OS generator, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a token, hex: how resume tokens are stored and looked up (the token itself is never stored).
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes a password with Argon2id (the crate's recommended parameters) and a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks a password against a stored hash. A malformed hash never verifies.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the username does not exist, so that a login for an
/// unknown account takes as long as one with a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

/// Single-use, short-lived tickets that let a browser open an authenticated WebSocket
/// without putting its access token in a URL.
#[derive(Default)]
pub struct Tickets {
    inner: Mutex<HashMap<String, (Claims, Instant)>>,
}

impl Tickets {
    /// Issues a ticket (128 random bits) for these claims.
    pub fn issue(&self, claims: Claims) -> String {
        let ticket = random_token(16);
        let now = Instant::now();
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|_, (_, expires)| *expires > now);
            map.insert(ticket.clone(), (claims, now + TICKET_TTL));
        }
        ticket
    }

    /// Redeems a ticket once: returns its claims if it exists and has not expired.
    pub fn redeem(&self, ticket: &str) -> Option<Claims> {
        let mut map = self.inner.lock().ok()?;
        let (claims, expires) = map.remove(ticket)?;
        (expires > Instant::now()).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let keys = AuthKeys::new(b"secret-one", Duration::from_secs(60));
        let now = crate::clock::Clock::new().now_ms();
        let (token, claims) = keys.issue("u1", Role::Counsellor, now).unwrap();
        assert_eq!(keys.verify(&token), Some(claims));
        let other = AuthKeys::new(b"secret-two", Duration::from_secs(60));
        assert_eq!(other.verify(&token), None, "a token signed with another key is refused");
        let (expired, _) = keys.issue("u1", Role::Counsellor, now - 3_600_000).unwrap();
        assert_eq!(keys.verify(&expired), None, "an expired token is refused");
        // alg=none: header {"alg":"none"} with the same claims, no signature.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = token.split('.').nth(1).unwrap();
        let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), body);
        assert_eq!(keys.verify(&none), None, "alg=none is refused");
    }

    #[test]
    fn tokens_are_typed_and_keys_rotate_with_an_overlap() {
        let now = crate::clock::Clock::new().now_ms();
        let old = AuthKeys::new(b"old-key", Duration::from_secs(60));
        let (old_token, old_claims) = old.issue("u1", Role::Counsellor, now).unwrap();
        let header = jsonwebtoken::decode_header(&old_token).unwrap();
        assert_eq!(header.typ.as_deref(), Some(ACCESS_TOKEN_TYP));
        assert_eq!(header.kid.as_deref(), Some(old.key_id()));
        let rotated = AuthKeys::new(b"new-key", Duration::from_secs(60)).with_previous(b"old-key");
        assert_eq!(rotated.verify(&old_token), Some(old_claims), "the previous key verifies during the overlap");
        let (new_token, _) = rotated.issue("u1", Role::Counsellor, now).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(), Some(rotated.key_id()));
        let after = AuthKeys::new(b"new-key", Duration::from_secs(60));
        assert_eq!(after.verify(&old_token), None, "after the overlap the old key is gone");
        assert!(after.verify(&new_token).is_some());
        // A JWT of another type signed with the same key is not an access token.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(after.key_id().to_string());
        h.typ = Some("JWT".into());
        let claims = after.verify(&new_token).unwrap();
        let untyped = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(b"new-key")).unwrap();
        assert_eq!(after.verify(&untyped), None);
    }

    #[test]
    fn expiry_and_not_before_are_checked_against_the_given_clock() {
        let keys = AuthKeys::new(b"secret-one", Duration::from_secs(900));
        let t0 = 1_800_000_000_000;
        let (token, claims) = keys.issue("u1", Role::Counsellor, t0).unwrap();
        assert_eq!(keys.verify_at(&token, t0 + 899_000), Some(claims.clone()));
        assert_eq!(keys.verify_at(&token, t0 + 900_000 + 4_000), Some(claims), "within the leeway");
        assert_eq!(keys.verify_at(&token, t0 + 900_000 + 5_000), None, "expired");
        assert_eq!(keys.verify_at(&token, t0 - 6_000), None, "not yet valid");
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[tokio::test]
    async fn tickets_are_single_use() {
        let t = Tickets::default();
        let claims =
            Claims { sub: "u".into(), role: Role::Admin, iss: ISSUER.into(), aud: AUDIENCE.into(), iat: 0, nbf: 0, exp: 0, iat_ms: 0 };
        let ticket = t.issue(claims.clone());
        assert!(ticket.len() >= 22, "128 bits at least");
        assert_eq!(t.redeem(&ticket), Some(claims));
        assert_eq!(t.redeem(&ticket), None);
        assert_eq!(t.redeem("nope"), None);
    }
}

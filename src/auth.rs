//! Authentication: argon2 password hashes, HS256 access tokens (algorithm pinned, iss/aud/exp checked), and single-use WebSocket tickets.

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
}

/// Signing and verification keys, with the validation rules pinned.
#[derive(Clone)]
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub token_ttl: Duration,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys").field("token_ttl", &self.token_ttl).finish_non_exhaustive()
    }
}

impl AuthKeys {
    pub fn new(secret: &[u8], token_ttl: Duration) -> AuthKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        AuthKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            token_ttl,
        }
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
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Verifies a token: signature (HS256 only), `iss`, `aud`, `exp`, `nbf`.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|d| d.claims)
    }
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
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[tokio::test]
    async fn tickets_are_single_use() {
        let t = Tickets::default();
        let claims = Claims {
            sub: "u".into(),
            role: Role::Admin,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: 0,
            nbf: 0,
            exp: 0,
        };
        let ticket = t.issue(claims.clone());
        assert!(ticket.len() >= 22, "128 bits at least");
        assert_eq!(t.redeem(&ticket), Some(claims));
        assert_eq!(t.redeem(&ticket), None);
        assert_eq!(t.redeem("nope"), None);
    }
}

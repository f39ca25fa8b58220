//! Sealing values at rest: free-text and identifying columns are stored encrypted with the data key
//! (XChaCha20-Poly1305, RustCrypto's `chacha20poly1305`), as `hl1.<kid>.<base64url(nonce | ciphertext)>`.
//!
//! The associated data binds a value to its place and row (`hl1|<kid>|<table.column>|<row id>`): a
//! sealed value copied into another row or column does not open. Sealing and opening happen only
//! here, inside the store: its views call [`Store::seal`] and [`Store::open`] (callers of the store
//! see plain strings). A value that is not in the sealed format is read as it is (rows written
//! before sealing existed; [`Store::migrate`] seals every one of them at start, see
//! [`SEALED_COLUMNS`]).

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::keys::{decode_key, KeyFile};
use super::{Store, StoreError, StoreResult};

/// The prefix of a sealed value (format version 1).
pub const PREFIX: &str = "hl1.";

/// Where a value lives: `table.column` (the associated data names it).
pub type Place = &'static str;

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

fn associated(kid: &str, place: &str, row: &str) -> Vec<u8> {
    format!("hl1|{kid}|{place}|{row}").into_bytes()
}

/// Seals `plain` for `place`/`row` with the newest data key of `keys`.
pub fn seal_with(keys: &KeyFile, place: &str, row: &str, plain: &str) -> Result<String, String> {
    let current = keys.data.last().ok_or("the key file has no data key")?;
    let key = decode_key(&current.key).ok_or("the data key is damaged")?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = associated(&current.kid, place, row);
    let ct =
        cipher.encrypt(&XNonce::from(nonce), Payload { msg: plain.as_bytes(), aad: &aad }).map_err(|_| "sealing failed".to_string())?;
    let mut blob = Vec::with_capacity(24 + ct.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&ct);
    Ok(format!("{PREFIX}{}.{}", current.kid, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)))
}

/// Opens a value sealed for `place`/`row` (a value not sealed is returned as it is). Fails, with a
/// message naming the problem and never the content, when it was altered, moved from another row,
/// or sealed with a key the key file does not hold.
pub fn open_with(keys: &KeyFile, place: &str, row: &str, stored: &str) -> Result<String, String> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_string());
    };
    let (kid, body) = rest.split_once('.').ok_or_else(|| format!("a sealed value of {place} is malformed"))?;
    let entry = keys
        .data
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("a value of {place} is sealed with key {kid:?}, which the key file does not hold"))?;
    let key = decode_key(&entry.key).ok_or("the data key is damaged")?;
    let blob =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).map_err(|_| format!("a sealed value of {place} is malformed"))?;
    if blob.len() < 24 + 16 {
        return Err(format!("a sealed value of {place} is too short"));
    }
    let (nonce, ct) = blob.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| format!("a sealed value of {place} is too short"))?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    let aad = associated(kid, place, row);
    let plain = cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| format!("a sealed value of {place} (row {row}) does not open: altered, or moved from another row"))?;
    String::from_utf8(plain).map_err(|_| format!("a sealed value of {place} is not text"))
}

/// Places (the associated data's `table.column`).
pub mod place {
    pub const MESSAGE_BODY: &str = "messages.body";
    pub const FORM_DATA: &str = "contact_forms.data";
    pub const CASE_ENTRY_BODY: &str = "case_entries.body";
    pub const PERSON_FULL_NAME: &str = "case_people.full_name";
    pub const PERSON_BIRTH_DATE: &str = "case_people.birth_date";
    pub const PERSON_ADDRESS: &str = "case_people.address";
    pub const PERSON_PHONE: &str = "case_people.phone";
    pub const ESCALATION_REASON: &str = "escalations.reason";
    pub const FLAG_REASON: &str = "contact_flags.reason";
    pub const BLOCK_REASON: &str = "caller_blocks.reason";
    pub const BLOCK_LIFT_REASON: &str = "caller_blocks.lift_reason";
    /// A staff account's TOTP seed (a second factor's key).
    pub const TOTP_SECRET: &str = "users.totp_secret";
    /// The number a caller asked to be called back on (kept only while the callback needs it).
    pub const CALLBACK_NUMBER: &str = "callback_numbers.number";
    pub const HANDOVER_REASON: &str = "handovers.reason";
    pub const CONSULT_BODY: &str = "consults.body";
    /// Why a case is referred to a service, and what the provider answered.
    pub const REFERRAL_REASON: &str = "referrals.reason";
    pub const REFERRAL_FEEDBACK: &str = "referrals.feedback";
    /// A case task's title.
    pub const TASK_TITLE: &str = "case_tasks.title";
    /// A transfer's note (from the one who hands the case over) and the receiver's comment.
    pub const TRANSFER_NOTE: &str = "case_transfers.note";
    pub const TRANSFER_COMMENT: &str = "case_transfers.comment";
    /// An approval request's note and the supervisor's comment.
    pub const APPROVAL_NOTE: &str = "case_approvals.note";
    pub const APPROVAL_COMMENT: &str = "case_approvals.comment";
    /// A messaging conversation's reply address (a phone number, a chat id).
    pub const CHANNEL_ADDRESS: &str = "channel_conversations.address";
    /// A messaging channel's provider credential and the secret its webhook must present.
    pub const CHANNEL_TOKEN: &str = "messaging_channels.token";
    pub const CHANNEL_INBOUND_SECRET: &str = "messaging_channels.inbound_secret";
}

/// Every column sealed at rest (ARCHITECTURE.md lists them, with the rule that every new column of
/// that kind is added here). `(place, key columns, whole value?)`.
pub const SEALED_COLUMNS: &[(&str, &[&str], bool)] = &[
    (place::MESSAGE_BODY, &["contact_id", "seq"], true),
    (place::FORM_DATA, &["contact_id"], false),
    (place::CASE_ENTRY_BODY, &["id"], true),
    (place::PERSON_FULL_NAME, &["case_id"], true),
    (place::PERSON_BIRTH_DATE, &["case_id"], true),
    (place::PERSON_ADDRESS, &["case_id"], true),
    (place::PERSON_PHONE, &["case_id"], true),
    (place::ESCALATION_REASON, &["id"], true),
    (place::FLAG_REASON, &["id"], true),
    (place::BLOCK_REASON, &["id"], true),
    (place::BLOCK_LIFT_REASON, &["id"], true),
    (place::TOTP_SECRET, &["id"], true),
    (place::HANDOVER_REASON, &["id"], true),
    (place::CONSULT_BODY, &["id"], true),
    (place::REFERRAL_REASON, &["id"], true),
    (place::REFERRAL_FEEDBACK, &["id"], true),
    (place::TASK_TITLE, &["id"], true),
    (place::TRANSFER_NOTE, &["id"], true),
    (place::TRANSFER_COMMENT, &["id"], true),
    (place::APPROVAL_NOTE, &["id"], true),
    (place::APPROVAL_COMMENT, &["id"], true),
    (place::CHANNEL_ADDRESS, &["contact_id"], true),
    (place::CHANNEL_TOKEN, &["id"], true),
    (place::CHANNEL_INBOUND_SECRET, &["id"], true),
];

/// The fields of a contact form's JSON that stay in clear (categorical: reports count them); every
/// other field (the summary, notes, any field added later) is sealed.
pub const CLEAR_FORM_FIELDS: &[&str] = &["caller_type", "age_group", "gender", "district", "categories", "outcome", "risk"];

/// A contact form's JSON with its free-text fields sealed (or opened), one by one: the place of a
/// field is `contact_forms.data.<field>`.
pub fn map_form_fields(data: &str, mut f: impl FnMut(&str, &str) -> Result<String, String>) -> Result<String, String> {
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str::<serde_json::Value>(data) else {
        // Not an object: sealed whole.
        return f(place::FORM_DATA, data);
    };
    for (name, value) in fields.iter_mut() {
        if CLEAR_FORM_FIELDS.contains(&name.as_str()) {
            continue;
        }
        if let serde_json::Value::String(text) = value {
            let field_place = format!("{}.{name}", place::FORM_DATA);
            *text = f(&field_place, text)?;
        }
    }
    Ok(serde_json::Value::Object(fields).to_string())
}

impl Store {
    /// Seals `plain` for `place` (`table.column`) and `row` (its id) with the newest data key.
    pub fn seal(&self, place: &str, row: &str, plain: &str) -> StoreResult<String> {
        self.keys.with(|k| seal_with(k, place, row, plain))?.map_err(StoreError::Sealed)
    }

    /// [`Store::seal`] of a value that may be absent.
    pub fn seal_opt(&self, place: &str, row: &str, plain: Option<&str>) -> StoreResult<Option<String>> {
        plain.map(|p| self.seal(place, row, p)).transpose()
    }

    /// Opens a value sealed for `place` and `row` ([`open_with`]): a tampered value, or one moved from
    /// another row, is [`StoreError::Sealed`], never a panic.
    pub fn open(&self, place: &str, row: &str, stored: &str) -> StoreResult<String> {
        if !is_sealed(stored) {
            return Ok(stored.to_string());
        }
        self.keys.with(|k| open_with(k, place, row, stored))?.map_err(StoreError::Sealed)
    }

    /// [`Store::open`] of a value that may be absent.
    pub fn open_opt(&self, place: &str, row: &str, stored: Option<&str>) -> StoreResult<Option<String>> {
        stored.map(|s| self.open(place, row, s)).transpose()
    }

    /// A contact form's JSON with its free-text fields sealed ([`map_form_fields`]).
    pub fn seal_form(&self, contact: &str, data: &str) -> StoreResult<String> {
        self.keys
            .with(|k| {
                map_form_fields(data, |place, text| if is_sealed(text) { Ok(text.to_string()) } else { seal_with(k, place, contact, text) })
            })?
            .map_err(StoreError::Sealed)
    }

    /// A contact form's JSON with its sealed fields opened.
    pub fn open_form(&self, contact: &str, data: &str) -> StoreResult<String> {
        if !data.contains(PREFIX) {
            return Ok(data.to_string());
        }
        self.keys.with(|k| map_form_fields(data, |place, text| open_with(k, place, contact, text)))?.map_err(StoreError::Sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_row() {
        let keys = KeyFile::generate(0);
        let sealed = seal_with(&keys, "messages.body", "c1:1", "I am scared to go home").expect("sealed");
        assert!(sealed.starts_with("hl1.d1."), "{sealed}");
        assert!(!sealed.contains("scared"));
        assert_eq!(open_with(&keys, "messages.body", "c1:1", &sealed).expect("opens"), "I am scared to go home");
        assert!(open_with(&keys, "messages.body", "c1:2", &sealed).is_err(), "another row");
        assert!(open_with(&keys, "case_entries.body", "c1:1", &sealed).is_err(), "another column");
        assert_ne!(sealed, seal_with(&keys, "messages.body", "c1:1", "I am scared to go home").expect("sealed"), "a fresh nonce each time");
    }

    #[test]
    fn a_tampered_or_foreign_value_is_an_error_not_a_panic() {
        let keys = KeyFile::generate(0);
        let sealed = seal_with(&keys, "p", "r", "hello").expect("sealed");
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(open_with(&keys, "p", "r", &tampered).expect_err("tampered").contains("does not open"));
        for bad in ["hl1.", "hl1.d1", "hl1.d1.", "hl1.d1.!!!", "hl1.d9.AAAA", "hl1.d1.AAAA"] {
            assert!(open_with(&keys, "p", "r", bad).is_err(), "{bad}");
        }
        let other = KeyFile::generate(0);
        assert!(open_with(&other, "p", "r", &sealed).is_err(), "another key file's d1");
        assert_eq!(open_with(&keys, "p", "r", "plain text").expect("clear"), "plain text", "a value never sealed");
    }

    #[test]
    fn rotated_keys_seal_with_the_newest_and_open_the_old() {
        let mut keys = KeyFile::generate(0);
        let old = seal_with(&keys, "p", "r", "old").expect("sealed");
        keys.rotate(1);
        let new = seal_with(&keys, "p", "r", "new").expect("sealed");
        assert!(new.starts_with("hl1.d2."));
        assert_eq!(open_with(&keys, "p", "r", &old).expect("old opens"), "old");
        assert_eq!(open_with(&keys, "p", "r", &new).expect("new opens"), "new");
    }

    #[test]
    fn a_form_keeps_its_categories_clear_and_seals_its_free_text() {
        let keys = KeyFile::generate(0);
        let data = r#"{"categories":["violence"],"district":"Bălți","summary":"Ana, 12, hit at home","notes":"call back","outcome":null}"#;
        let sealed = map_form_fields(data, |p, t| seal_with(&keys, p, "c1", t)).expect("sealed");
        assert!(!sealed.contains("Ana") && !sealed.contains("call back"), "{sealed}");
        assert!(sealed.contains("violence") && sealed.contains("Bălți"), "{sealed}");
        let opened = map_form_fields(&sealed, |p, t| open_with(&keys, p, "c1", t)).expect("opened");
        let v: serde_json::Value = serde_json::from_str(&opened).expect("json");
        assert_eq!(v["summary"], "Ana, 12, hit at home");
        assert_eq!(v["notes"], "call back");
    }
}

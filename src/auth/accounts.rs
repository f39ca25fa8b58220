//! The account rules an admin's changes go through, without I/O: what a username, a display name, a
//! role, helplines, languages, capacity, an extension and districts may be; that the last enabled admin
//! stays one; one-time reset codes (their shape and how long they last). The REST edge
//! (`edge::accounts`) and the command line (`helpline user add|edit|reset`) both use them.

use serde::Deserialize;

use crate::store::users::{AccountFields, Role, User};

/// How long a reset code lasts (24 h: long enough to reach a counsellor on the next shift).
pub const RESET_VALID_MS: i64 = 24 * 3600 * 1000;
/// Concurrent chats at most, per counsellor.
pub const CAPACITY_MAX: i64 = 50;
const DISPLAY_NAME_MAX: usize = 80;
const DISTRICT_MAX: usize = 100;

/// Why an account change is refused: the field at fault and what it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A field out of its rule: `field`, and a message saying what it may be.
    Invalid { field: &'static str, message: String },
    /// A helpline that is not one of the server's.
    UnknownHelpline(String),
    /// The change would leave no enabled admin.
    LastAdmin,
}

impl Refusal {
    fn invalid(field: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::Invalid { field, message: message.into() }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Invalid { field, message } => write!(f, "{field}: {message}"),
            Refusal::UnknownHelpline(h) => write!(f, "unknown helpline {h:?}"),
            Refusal::LastAdmin => write!(f, "this is the last enabled admin: make another account an admin first"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Checks a username: 1-64 characters of `a-z`, `0-9`, `.`, `_`, `-` (the sign-in form lowercases what is typed).
pub fn check_username(username: &str) -> Result<String, Refusal> {
    let u = username.trim();
    if u.is_empty() {
        return Err(Refusal::invalid("username", "empty"));
    }
    if u.len() > 64 || !u.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')) {
        return Err(Refusal::invalid("username", "usernames are 1-64 characters of a-z, 0-9, '.', '_' and '-'"));
    }
    Ok(u.to_string())
}

/// A change of an account's fields: each one given replaces the account's, the others stay.
/// `extension: null` takes the extension away.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// Shown to callers and colleagues; at most 80 characters.
    pub display_name: Option<String>,
    /// `counsellor`, `supervisor`, `admin` or `case_manager`.
    pub role: Option<String>,
    /// Helplines served first-line.
    pub helplines: Option<Vec<String>>,
    /// Helplines backed up when a contact has waited (10 s by default).
    pub backup_helplines: Option<Vec<String>>,
    /// Languages spoken: ISO 639-1 codes (`ro`, `ru`, `uk`, `en`, …).
    pub languages: Option<Vec<String>>,
    /// Concurrent chats at most, 1 to 50.
    pub capacity: Option<i64>,
    /// Phone extension for calls (null: none, never offered calls): up to 32 of digits, letters and `*#+-_.`.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>)]
    pub extension: Option<Option<String>>,
    /// Takes the callers routed to senior counsellors.
    pub senior: Option<bool>,
    /// Districts a case manager covers (new cases there are assigned to them); at most 100 characters each, no commas.
    pub districts: Option<Vec<String>>,
}

/// A field present as `null` is `Some(None)`; absent, `None`.
fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// An account's editable fields as they are now.
pub fn fields_of(user: &User, districts: Vec<String>) -> AccountFields {
    AccountFields {
        display_name: user.display_name.clone(),
        role: user.role,
        helplines: user.helplines.clone(),
        backup_helplines: user.backup_helplines.clone(),
        languages: user.languages.clone(),
        capacity: user.capacity,
        extension: user.extension.clone(),
        senior: user.senior,
        districts,
    }
}

/// The fields of a new account before its request is applied: a counsellor with capacity 3.
pub fn new_fields(username: &str) -> AccountFields {
    AccountFields {
        display_name: username.to_string(),
        role: Role::Counsellor,
        helplines: Vec::new(),
        backup_helplines: Vec::new(),
        languages: Vec::new(),
        capacity: 3,
        extension: None,
        senior: false,
        districts: Vec::new(),
    }
}

fn list(field: &'static str, items: &[String], check: impl Fn(&str) -> Result<(), String>) -> Result<Vec<String>, Refusal> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let item = item.trim();
        check(item).map_err(|why| Refusal::invalid(field, format!("{item:?}: {why}")))?;
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

/// Applies `change` to `fields` and checks the result against the rules; `known_helplines` are the
/// server's helplines. Returns the fields to store, or the first field at fault.
pub fn apply(mut fields: AccountFields, change: &AccountChange, known_helplines: &[String]) -> Result<AccountFields, Refusal> {
    if let Some(name) = &change.display_name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > DISPLAY_NAME_MAX {
            return Err(Refusal::invalid("display_name", format!("1 to {DISPLAY_NAME_MAX} characters")));
        }
        fields.display_name = name.to_string();
    }
    if let Some(role) = &change.role {
        fields.role = Role::parse(role.trim())
            .ok_or_else(|| Refusal::invalid("role", format!("{role:?} is not one of counsellor, supervisor, admin, case_manager")))?;
    }
    let helpline = |h: &str| if known_helplines.iter().any(|k| k == h) { Ok(()) } else { Err(String::new()) };
    for (given, slot) in [(&change.helplines, &mut fields.helplines), (&change.backup_helplines, &mut fields.backup_helplines)] {
        if let Some(given) = given {
            if let Some(unknown) = given.iter().map(|h| h.trim()).find(|h| helpline(h).is_err()) {
                return Err(Refusal::UnknownHelpline(unknown.to_string()));
            }
            *slot = list("helplines", given, helpline)?;
        }
    }
    if let Some(languages) = &change.languages {
        fields.languages = list("languages", languages, |l| {
            if (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase()) {
                Ok(())
            } else {
                Err("a language is a 2- or 3-letter ISO 639 code in lowercase (ro, ru, uk, en)".into())
            }
        })?;
    }
    if let Some(capacity) = change.capacity {
        if !(1..=CAPACITY_MAX).contains(&capacity) {
            return Err(Refusal::invalid("capacity", format!("between 1 and {CAPACITY_MAX}")));
        }
        fields.capacity = capacity;
    }
    if let Some(extension) = &change.extension {
        fields.extension = check_extension(extension.as_deref())?;
    }
    if let Some(senior) = change.senior {
        fields.senior = senior;
    }
    if let Some(districts) = &change.districts {
        fields.districts = list("districts", districts, |d| {
            if d.is_empty() || d.chars().count() > DISTRICT_MAX || d.contains(',') {
                Err(format!("1 to {DISTRICT_MAX} characters, without commas"))
            } else {
                Ok(())
            }
        })?;
    }
    Ok(fields)
}

/// An extension: trimmed, empty is none; up to 32 of digits, letters and `*#+-_.`.
pub fn check_extension(extension: Option<&str>) -> Result<Option<String>, Refusal> {
    let Some(e) = extension.map(str::trim).filter(|e| !e.is_empty()) else { return Ok(None) };
    if e.len() > 32 || !e.chars().all(|c| c.is_ascii_alphanumeric() || "*#+-_.".contains(c)) {
        return Err(Refusal::invalid("extension", "up to 32 characters of digits, letters and * # + - _ ."));
    }
    Ok(Some(e.to_string()))
}

/// Whether an account that is an enabled admin now (`was_admin`, `was_enabled`) may become `role`,
/// `enabled`, given how many enabled admins there are: the last one may be neither demoted nor disabled.
pub fn keeps_an_admin(was_admin: bool, was_enabled: bool, role: Role, enabled: bool, enabled_admins: i64) -> Result<(), Refusal> {
    let loses_one = was_admin && was_enabled && !(role == Role::Admin && enabled);
    if loses_one && enabled_admins <= 1 {
        return Err(Refusal::LastAdmin);
    }
    Ok(())
}

/// A new one-time reset code: 20 characters of an alphabet without look-alikes (100 bits), shown in
/// groups of four (`ABCD-EFGH-…`); [`normalise_code`] reads it back however it was typed.
pub fn new_reset_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..20).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A code as typed (any case, with or without dashes and spaces) in the form its hash is taken of.
pub fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// The stored hash of a reset code.
pub fn reset_code_hash(code: &str) -> String {
    super::token_hash(&format!("password-reset:{}", normalise_code(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec!["children".into(), "disability".into()]
    }

    #[test]
    fn a_change_replaces_the_fields_it_names_and_checks_each() {
        let base = new_fields("dana");
        let change = AccountChange {
            role: Some("supervisor".into()),
            helplines: Some(vec!["children".into(), " children".into()]),
            languages: Some(vec!["ro".into(), "ru".into()]),
            extension: Some(Some(" 204 ".into())),
            districts: Some(vec!["Orhei".into()]),
            ..AccountChange::default()
        };
        let f = apply(base.clone(), &change, &known()).expect("fine");
        assert_eq!(
            (f.role, f.helplines.as_slice(), f.extension.as_deref()),
            (Role::Supervisor, &["children".to_string()][..], Some("204"))
        );
        assert_eq!(f.capacity, 3, "untouched");
        let cleared = apply(f, &AccountChange { extension: Some(None), ..AccountChange::default() }, &known()).expect("fine");
        assert_eq!(cleared.extension, None);

        let field = |c: AccountChange| match apply(base.clone(), &c, &known()) {
            Err(Refusal::Invalid { field, .. }) => field.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(field(AccountChange { role: Some("boss".into()), ..AccountChange::default() }), "role");
        assert_eq!(field(AccountChange { capacity: Some(0), ..AccountChange::default() }), "capacity");
        assert_eq!(field(AccountChange { capacity: Some(51), ..AccountChange::default() }), "capacity");
        assert_eq!(field(AccountChange { languages: Some(vec!["Romanian".into()]), ..AccountChange::default() }), "languages");
        assert_eq!(field(AccountChange { extension: Some(Some("20 4".into())), ..AccountChange::default() }), "extension");
        assert_eq!(field(AccountChange { display_name: Some("  ".into()), ..AccountChange::default() }), "display_name");
        assert_eq!(field(AccountChange { districts: Some(vec!["A,B".into()]), ..AccountChange::default() }), "districts");
        let unknown = apply(base, &AccountChange { backup_helplines: Some(vec!["elders".into()]), ..AccountChange::default() }, &known());
        assert_eq!(unknown, Err(Refusal::UnknownHelpline("elders".into())));
    }

    #[test]
    fn usernames_and_the_last_admin() {
        assert!(matches!(check_username("  "), Err(Refusal::Invalid { field: "username", .. })));
        assert!(check_username("Dana").is_err());
        assert_eq!(check_username(" dana.p ").as_deref(), Ok("dana.p"));
        assert_eq!(keeps_an_admin(true, true, Role::Counsellor, true, 1), Err(Refusal::LastAdmin));
        assert_eq!(keeps_an_admin(true, true, Role::Admin, false, 1), Err(Refusal::LastAdmin));
        assert_eq!(keeps_an_admin(true, true, Role::Admin, false, 2), Ok(()));
        assert_eq!(keeps_an_admin(true, false, Role::Counsellor, false, 1), Ok(()), "a disabled admin is not the last one");
        assert_eq!(keeps_an_admin(false, true, Role::Counsellor, false, 1), Ok(()));
    }

    #[test]
    fn reset_codes_read_back_however_typed() {
        let code = new_reset_code();
        assert_eq!(code.len(), 24);
        assert_eq!(reset_code_hash(&code), reset_code_hash(&code.to_lowercase().replace('-', " ")));
        assert_ne!(reset_code_hash(&code), reset_code_hash(&new_reset_code()));
    }
}

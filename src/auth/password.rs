//! The password rule, the same for every path that sets a password (`helpline user add`, a password
//! change, an admin's reset): at least 12 characters, not blank, not containing the username, and not
//! one of the common passwords shipped with the binary (`common-passwords.txt`).

use std::collections::HashSet;
use std::sync::OnceLock;

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have (argon2 takes any length; this bounds the work per login).
pub const MAX_CHARS: usize = 1024;

static COMMON: &str = include_str!("common-passwords.txt");

fn common() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_lowercase).collect())
}

/// Why a password is refused; its text is what the person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Weak {
    #[error("the password must have at least 12 characters")]
    TooShort,
    #[error("the password must have at most 1024 characters")]
    TooLong,
    #[error("the password must not be blank")]
    Blank,
    #[error("the password must not contain the username")]
    ContainsUsername,
    #[error("the password is one of the most common passwords; choose another")]
    Common,
}

/// Checks `password` for the account `username` against the rule.
pub fn check(username: &str, password: &str) -> Result<(), Weak> {
    if password.trim().is_empty() {
        return Err(Weak::Blank);
    }
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(Weak::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(Weak::TooLong);
    }
    let lower = password.to_lowercase();
    let name = username.trim().to_lowercase();
    if !name.is_empty() && lower.contains(&name) {
        return Err(Weak::ContainsUsername);
    }
    if common().contains(lower.trim()) {
        return Err(Weak::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_refuses_what_the_issue_found_and_takes_a_good_passphrase() {
        assert_eq!(check("admin", "password"), Err(Weak::TooShort));
        assert_eq!(check("admin", "12345678"), Err(Weak::TooShort));
        assert_eq!(check("admin", "aaaaaaaa"), Err(Weak::TooShort));
        assert_eq!(check("admin", "        "), Err(Weak::Blank));
        assert_eq!(check("admin", "              "), Err(Weak::Blank));
        assert_eq!(check("admin", "\t\n  \t  \n    "), Err(Weak::Blank));
        assert_eq!(check("ion", "my-name-is-ION-ok"), Err(Weak::ContainsUsername));
        assert_eq!(check("ana", "password1234"), Err(Weak::Common));
        assert_eq!(check("ana", "Qwertyuiop123"), Err(Weak::Common));
        assert_eq!(check("ana", "aaaaaaaaaaaa"), Err(Weak::Common));
        assert_eq!(check("ana", &"x".repeat(2000)), Err(Weak::TooLong));
        assert_eq!(check("ion", "orchard lamp violet 7"), Ok(()));
        assert!(common().len() > 2000, "the shipped list has a few thousand entries");
    }
}

//! The three national helplines, with their languages, grace periods and demo dialled numbers: created
//! on every start if missing (an operator's changes are never overwritten).

use crate::store::helplines::Helpline;
use crate::store::{Store, StoreError};

/// The three national helplines with their own languages and settings.
pub fn default_helplines() -> Vec<Helpline> {
    let children = Helpline::with_defaults("children", "Children's helpline 116 111", &["ro", "ru", "uk", "en"]);
    // Persons with disabilities may need longer to answer a reconnect prompt or type: a longer grace period.
    let mut disability = Helpline::with_defaults("disability", "Helpline for persons with disabilities", &["ro", "ru", "uk", "en"]);
    disability.caller_grace_ms = 300_000;
    // A victim may have to hide the phone mid-chat: the longest grace period.
    let mut family_violence = Helpline::with_defaults(
        "family_violence",
        "Helpline for victims of family violence and violence against women",
        &["ro", "ru", "uk"],
    );
    family_violence.caller_grace_ms = 600_000;
    vec![children, disability, family_violence]
}

/// The demo dialled-number map: 116 111 reaches the children's helpline, two (made-up) free
/// numbers the other two, and any other number (`*`) the children's helpline.
pub const DEFAULT_DIALLED_NUMBERS: &[(&str, &str)] = &[
    ("116111", "children"),
    ("080011111", "disability"),
    ("080088008", "family_violence"),
    (crate::store::helplines::DEFAULT_NUMBER, "children"),
];

/// Inserts the default helplines (and their dialled numbers) that are missing; never overwrites an operator's settings.
pub async fn seed_helplines(store: &Store) -> Result<(), StoreError> {
    for h in default_helplines() {
        if store.directory().insert_helpline_if_missing(&h).await? {
            tracing::info!(helpline = %h.name, "created helpline");
        }
    }
    for (number, helpline) in DEFAULT_DIALLED_NUMBERS {
        if store.directory().helpline(helpline).await?.is_some() {
            store.directory().insert_dialled_number_if_missing(number, helpline).await?;
        }
    }
    Ok(())
}

//! A chat caller's anonymous return code (issue 24): at the end of a chat a counsellor answered she
//! may take a code; given at the start of a later chat, it shows her next counsellor her earlier
//! chats, as a repeat phone caller's are shown (audited when shown, by the router's offer). Only a
//! keyed hash of the code is kept (the caller-number key, [`crate::auth::keyed`]), tied to the
//! contacts it was given for or used at: nothing that identifies her (docs/security.md, "Return codes").

use crate::auth::keyed::{normalise_return_code, return_code_hash, CALLER_NUMBER_KEY};
use crate::protocol::{EarlierContact, EARLIER_CONTACTS};
use crate::state::error::AppError;
use crate::state::AppState;

/// How long after a chat's end its caller may still ask for a return code.
pub const CODE_WITHIN_MS: i64 = 24 * 3600 * 1000;

/// Whether a chat's caller may get a return code now: the chat ended, a counsellor answered it, and
/// it ended at most [`CODE_WITHIN_MS`] ago.
pub fn may_give_code(open: bool, answered_at: Option<i64>, ended_at: Option<i64>, now: i64) -> Result<(), &'static str> {
    if open {
        return Err("the chat has not ended yet");
    }
    if answered_at.is_none() {
        return Err("only a chat a counsellor answered has a return code");
    }
    match ended_at {
        Some(end) if now - end <= CODE_WITHIN_MS => Ok(()),
        _ => Err("the chat ended more than a day ago"),
    }
}

/// The key return codes are hashed with (the caller-number key).
async fn code_key(state: &AppState) -> Result<String, AppError> {
    Ok(state.store.secrets().secret_or_create(CALLER_NUMBER_KEY, state.clock.now_ms(), crate::auth::random_secret).await?)
}

/// A new return code for contact `contact` (its chat answered by a counsellor; the caller asks at its
/// end): only its keyed hash is kept, tied to the contact. The plain code is answered once and kept
/// nowhere. A contact that has a code already (given, or used at its start) gets none (`conflict`).
pub async fn give(state: &AppState, contact: &str) -> Result<String, AppError> {
    if state.store.contacts().has_return_code(contact).await? {
        return Err(AppError::new(crate::protocol::ErrorCode::Conflict, "this chat has a return code already"));
    }
    let code = crate::auth::keyed::new_return_code();
    let plain = normalise_return_code(&code).ok_or_else(AppError::internal)?;
    let hash = return_code_hash(&code_key(state).await?, &plain);
    state.store.contacts().keep_return_code(&hash, contact, state.clock.now_ms()).await?;
    Ok(code)
}

/// A return code given at the start of chat `contact`: when it is one we gave, the new contact is tied
/// to it too (so a later chat sees this one as well) and its earlier contacts (with a submitted form,
/// newest first, at most three) are answered for her next counsellor's offer; None when it is not a
/// code we know (nothing is kept then).
pub async fn use_code(state: &AppState, contact: &str, typed: &str) -> Result<Option<Vec<EarlierContact>>, AppError> {
    let Some(plain) = normalise_return_code(typed) else { return Ok(None) };
    let hash = return_code_hash(&code_key(state).await?, &plain);
    let contacts = state.store.contacts();
    if !contacts.return_code_known(&hash).await? {
        return Ok(None);
    }
    contacts.keep_return_code(&hash, contact, state.clock.now_ms()).await?;
    let forms = contacts.returning_history(contact, EARLIER_CONTACTS as i64).await?;
    Ok(Some(forms.into_iter().map(crate::chat::exchange::earlier_contact).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_code_only_after_an_answered_chat_ended_within_a_day() {
        assert_eq!(may_give_code(false, Some(1), Some(10), 10 + CODE_WITHIN_MS), Ok(()));
        assert!(may_give_code(true, Some(1), None, 10).is_err());
        assert!(may_give_code(false, None, Some(10), 20).is_err());
        assert!(may_give_code(false, Some(1), Some(10), 11 + CODE_WITHIN_MS).is_err());
        assert!(may_give_code(false, Some(1), None, 20).is_err());
    }
}

//! Continuity between contacts (issue 24): a counsellor searches the past contacts she may see and
//! links a new contact to an earlier one (a chat caller's anonymous return code is
//! [`crate::safety::return_code`]). Who sees what is
//! `state::access` (a search returns exactly the contacts [`Staff::sees_contact`] allows: the ones a
//! counsellor handled, a supervisor's helplines, a case manager's cases' contacts, all for admins).
//! Every search, read of links and link is audited.

use serde::Serialize;
use utoipa::ToSchema;

use crate::protocol::rfc3339;
use crate::state::access::{visible_contact, Scope, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::continuity::{ContactSearch, FoundContact, Visible};
use crate::store::users::Role;

/// The most contacts one search returns.
pub const MAX_RESULTS: i64 = 100;
/// How many rows a search reads before the category filter (which reads the forms) is applied.
const SCAN: i64 = 1_000;

/// What a search asks (every filter given must hold).
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub helpline: Option<String>,
    pub category: Option<String>,
    pub risk: Option<String>,
    pub case_number: Option<String>,
    pub limit: Option<i64>,
}

/// A past contact as a search shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactHit {
    pub contact_id: String,
    /// `chat`, `call`, …
    pub channel: String,
    pub helpline: String,
    pub language: String,
    pub state: String,
    /// When it came in (RFC 3339).
    pub at: String,
    pub counsellor_id: Option<String>,
    /// `none`, `draft` or `submitted`.
    pub form_status: String,
    pub categories: Vec<String>,
    pub risk: Option<String>,
    pub outcome: Option<String>,
    /// The form's summary, shortened to 280 characters.
    pub summary: Option<String>,
    /// The numbers of the cases it is linked to.
    pub case_numbers: Vec<String>,
}

/// A link of a contact, as seen from it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkView {
    /// The other contact.
    pub contact_id: String,
    /// True: the other contact is the earlier one (this one was linked to it).
    pub earlier: bool,
    pub linked_by: String,
    /// RFC 3339.
    pub linked_at: String,
    /// The other contact as a search shows it, when you may see it (None otherwise).
    pub contact: Option<ContactHit>,
}

/// Whose contacts `staff` may find: the rule of [`Staff::sees_contact`], as the store filters it.
fn visible(staff: &Staff) -> Visible {
    match (staff.user.role, staff.scope()) {
        (Role::Admin, _) | (Role::Supervisor, Scope::All) => Visible::All,
        (Role::Supervisor, Scope::Only(list)) => Visible::Helplines(list),
        (Role::Counsellor, _) => Visible::HandledBy(staff.id().to_string()),
        (Role::CaseManager, _) => Visible::CasesManagedBy(staff.id().to_string()),
    }
}

fn hit(f: FoundContact) -> ContactHit {
    let form: serde_json::Value = f.form.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    let text = |key: &str| form.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let categories = form
        .get("categories")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    ContactHit {
        contact_id: f.id,
        channel: f.channel,
        helpline: f.helpline,
        language: f.language,
        state: f.state,
        at: rfc3339(f.queued_at),
        counsellor_id: f.counsellor_id,
        form_status: f.form_status.unwrap_or_else(|| "none".into()),
        categories,
        risk: f.risk.or_else(|| text("risk")),
        outcome: text("outcome"),
        summary: text("summary").map(|s| crate::chat::exchange::shorten(s.trim(), crate::protocol::EARLIER_SUMMARY_CHARS)),
        case_numbers: f.case_numbers,
    }
}

/// The past contacts `staff` may see that match `q`, newest first (at most [`MAX_RESULTS`]).
/// Audited (`contact_search`, with the filters and how many were found).
pub async fn search(state: &AppState, staff: &Staff, q: Search) -> Result<Vec<ContactHit>, AppError> {
    if let Some(r) = &q.risk {
        if !crate::casework::RISKS.contains(&r.as_str()) {
            return Err(AppError::bad_field(format!("risk must be one of {}", crate::casework::RISKS.join(", "))));
        }
    }
    if let Some(h) = &q.helpline {
        if !state.helplines.iter().any(|x| &x.name == h) {
            return Err(AppError::new(crate::protocol::ErrorCode::UnknownHelpline, "no such helpline"));
        }
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(AppError::bad_field(format!("limit must be 1 to {MAX_RESULTS}")));
    }
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Err(AppError::bad_field("from must be before to"));
        }
    }
    let search = ContactSearch {
        visible: visible(staff),
        id: None,
        from: q.from,
        to: q.to,
        helpline: q.helpline.clone(),
        risk: q.risk.clone(),
        case_number: q.case_number.clone(),
        limit: if q.category.is_some() { SCAN } else { limit },
    };
    let found = state.store.contacts().search_contacts(&search).await?;
    let hits: Vec<ContactHit> =
        found.into_iter().map(hit).filter(|h| q.category.as_ref().is_none_or(|c| h.categories.contains(c))).take(limit as usize).collect();
    let detail = format!(
        "found {}; from {:?} to {:?} helpline {:?} category {:?} risk {:?} case {:?}",
        hits.len(),
        q.from,
        q.to,
        q.helpline,
        q.category,
        q.risk,
        q.case_number
    );
    staff.audit_or_refuse(state, "contact_search", "contacts", Some(&detail)).await?;
    Ok(hits)
}

/// One contact as a search shows it, if `staff` may see it (no audit: the caller audits).
async fn hit_of(state: &AppState, staff: &Staff, id: &str) -> Result<Option<ContactHit>, AppError> {
    let Some(contact) = state.store.contacts().contact(id).await? else { return Ok(None) };
    let linked = if staff.user.role == Role::CaseManager { state.store.cases().cases_of_contact(id).await? } else { Vec::new() };
    if !staff.sees_contact(&contact, &linked) {
        return Ok(None);
    }
    let search = ContactSearch {
        visible: Visible::All,
        id: Some(contact.id),
        from: None,
        to: None,
        helpline: None,
        risk: None,
        case_number: None,
        limit: 1,
    };
    Ok(state.store.contacts().search_contacts(&search).await?.into_iter().next().map(hit))
}

/// Links contact `id` to the earlier contact `earlier`: `staff` must see both (404 otherwise,
/// audited), and they must differ. Audited (`contact_link`). Answers the links of `id`.
pub async fn link(state: &AppState, staff: &Staff, id: &str, earlier: &str) -> Result<Vec<LinkView>, AppError> {
    if id == earlier {
        return Err(AppError::bad_field("a contact is not linked to itself"));
    }
    let contact = visible_contact(state, staff, id, "contact_link").await?;
    let other = visible_contact(state, staff, earlier, "contact_link").await?;
    // The earlier one is the one that came in first, whichever way round they were named.
    let (newer, older) = if other.queued_at <= contact.queued_at { (&contact.id, &other.id) } else { (&other.id, &contact.id) };
    let added = state.store.contacts().link_contacts(newer, older, staff.id(), state.clock.now_ms()).await?;
    if added {
        staff.audit(state, "contact_link", newer, Some(older)).await;
    }
    links_of(state, staff, id).await
}

/// The links of contact `id` (which `staff` must see: 404 otherwise, audited), each with the other
/// contact when `staff` may see it. Audited (`view_links`).
pub async fn links(state: &AppState, staff: &Staff, id: &str) -> Result<Vec<LinkView>, AppError> {
    visible_contact(state, staff, id, "view_links").await?;
    let links = links_of(state, staff, id).await?;
    staff.audit_or_refuse(state, "view_links", id, Some(&format!("{} links", links.len()))).await?;
    Ok(links)
}

async fn links_of(state: &AppState, staff: &Staff, id: &str) -> Result<Vec<LinkView>, AppError> {
    let mut out = Vec::new();
    for l in state.store.contacts().links_of(id).await? {
        let contact = hit_of(state, staff, &l.contact_id).await?;
        out.push(LinkView {
            contact_id: l.contact_id,
            earlier: l.earlier,
            linked_by: l.linked_by,
            linked_at: rfc3339(l.linked_at),
            contact,
        });
    }
    Ok(out)
}

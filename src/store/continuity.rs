//! Continuity between contacts (part of the [`Contacts`] view, issue 24): counsellors' search of the
//! past contacts they may see, links from a contact to an earlier one, and chat callers' anonymous
//! return codes. A return code is kept only as a keyed hash (the caller-number key,
//! [`crate::auth::keyed`]), one row per contact it was given for or used at: nothing that identifies
//! the caller, and the code itself nowhere.

use super::calls::EarlierForm;
use super::contacts::Contacts;
use super::{on_pool, on_writer, StoreResult};

/// Whose contacts a search may return (decided by the caller of the store: `state::access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// Every contact (admins, supervisors granted all).
    All,
    /// The contacts of these helplines (a supervisor's scope).
    Helplines(Vec<String>),
    /// The contacts this counsellor handled (holds or held last).
    HandledBy(String),
    /// The contacts linked to the cases this case manager manages.
    CasesManagedBy(String),
}

/// A search of past contacts: every filter given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSearch {
    pub visible: Visible,
    /// This contact only.
    pub id: Option<String>,
    /// Queued at or after (ms).
    pub from: Option<i64>,
    /// Queued before (ms).
    pub to: Option<i64>,
    pub helpline: Option<String>,
    /// The form's risk.
    pub risk: Option<String>,
    /// Linked to the case with this number.
    pub case_number: Option<String>,
    /// At most this many rows, newest first.
    pub limit: i64,
}

/// A contact a search found, with its form (opened) when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundContact {
    pub id: String,
    pub channel: String,
    pub helpline: String,
    pub language: String,
    pub state: String,
    pub queued_at: i64,
    pub counsellor_id: Option<String>,
    /// `draft` or `submitted` (None: no form).
    pub form_status: Option<String>,
    /// The form's JSON, free text opened.
    pub form: Option<String>,
    pub risk: Option<String>,
    /// The numbers of the cases it is linked to.
    pub case_numbers: Vec<String>,
}

/// A link between two contacts, as seen from one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactLink {
    /// The other contact.
    pub contact_id: String,
    /// True when the other contact is the earlier one (this one was linked to it).
    pub earlier: bool,
    pub linked_by: String,
    pub linked_at: i64,
}

type FoundRow = (String, String, String, String, String, i64, Option<String>, Option<String>, Option<String>, Option<String>);

enum Param {
    Text(String),
    Int(i64),
}

impl Contacts<'_> {
    /// The contacts a search finds, newest first (see [`ContactSearch`]).
    pub async fn search_contacts(self, q: &ContactSearch) -> StoreResult<Vec<FoundContact>> {
        fn mark(p: Param, params: &mut Vec<Param>) -> String {
            params.push(p);
            format!("${}", params.len())
        }
        let mut params: Vec<Param> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        match &q.visible {
            Visible::All => {}
            Visible::Helplines(list) if list.is_empty() => return Ok(Vec::new()),
            Visible::Helplines(list) => {
                let marks: Vec<String> = list.iter().map(|h| mark(Param::Text(h.clone()), &mut params)).collect();
                conditions.push(format!("c.helpline IN ({})", marks.join(", ")));
            }
            Visible::HandledBy(id) => {
                let m = mark(Param::Text(id.clone()), &mut params);
                conditions.push(format!("c.counsellor_id = {m}"));
            }
            Visible::CasesManagedBy(id) => {
                let m = mark(Param::Text(id.clone()), &mut params);
                conditions.push(format!(
                    "EXISTS (SELECT 1 FROM case_contacts cc JOIN cases k ON k.id = cc.case_id WHERE cc.contact_id = c.id AND k.case_manager_id = {m})"
                ));
            }
        }
        if let Some(id) = &q.id {
            let m = mark(Param::Text(id.clone()), &mut params);
            conditions.push(format!("c.id = {m}"));
        }
        if let Some(from) = q.from {
            let m = mark(Param::Int(from), &mut params);
            conditions.push(format!("c.queued_at >= {m}"));
        }
        if let Some(to) = q.to {
            let m = mark(Param::Int(to), &mut params);
            conditions.push(format!("c.queued_at < {m}"));
        }
        if let Some(h) = &q.helpline {
            let m = mark(Param::Text(h.clone()), &mut params);
            conditions.push(format!("c.helpline = {m}"));
        }
        if let Some(r) = &q.risk {
            let m = mark(Param::Text(r.clone()), &mut params);
            conditions.push(format!("f.risk = {m}"));
        }
        if let Some(n) = &q.case_number {
            let m = mark(Param::Text(n.clone()), &mut params);
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM case_contacts cn JOIN cases kn ON kn.id = cn.case_id WHERE cn.contact_id = c.id AND kn.number = {m})"
            ));
        }
        let limit = mark(Param::Int(q.limit.max(0)), &mut params);
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT c.id, c.channel, c.helpline, c.language, c.state, c.queued_at, c.counsellor_id, f.status, f.data, f.risk
             FROM contacts c LEFT JOIN contact_forms f ON f.contact_id = c.id
             {filter} ORDER BY c.queued_at DESC, c.id DESC LIMIT {limit}"
        );
        let rows: Vec<FoundRow> = on_pool!(self.0, pool => {
            let mut query = sqlx::query_as(&sql);
            for p in &params {
                query = match p {
                    Param::Text(s) => query.bind(s.clone()),
                    Param::Int(i) => query.bind(*i),
                };
            }
            query.fetch_all(pool).await
        })?;
        let mut found = Vec::with_capacity(rows.len());
        for r in rows {
            let form = r.8.as_deref().map(|data| self.0.open_form(&r.0, data)).transpose()?;
            found.push(FoundContact {
                id: r.0,
                channel: r.1,
                helpline: r.2,
                language: r.3,
                state: r.4,
                queued_at: r.5,
                counsellor_id: r.6,
                form_status: r.7,
                form,
                risk: r.9,
                case_numbers: Vec::new(),
            });
        }
        for f in &mut found {
            f.case_numbers = self.case_numbers_of(&f.id).await?;
        }
        Ok(found)
    }

    /// The numbers of the cases a contact is linked to, in the order they were linked.
    async fn case_numbers_of(self, contact: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT k.number FROM case_contacts cc JOIN cases k ON k.id = cc.case_id WHERE cc.contact_id = $1 ORDER BY cc.linked_at, k.number")
            .bind(contact).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Links `contact` to the earlier contact `earlier`; false when they were linked already.
    pub async fn link_contacts(self, contact: &str, earlier: &str, by: &str, at: i64) -> StoreResult<bool> {
        let done = on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO contact_links (contact_id, linked_id, linked_by, linked_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (contact_id, linked_id) DO NOTHING")
            .bind(contact).bind(earlier).bind(by).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The links of a contact, both ways, oldest first.
    pub async fn links_of(self, contact: &str) -> StoreResult<Vec<ContactLink>> {
        let rows: Vec<(String, i64, String, i64)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT linked_id, CAST(1 AS BIGINT), linked_by, linked_at FROM contact_links WHERE contact_id = $1
             UNION ALL
             SELECT contact_id, CAST(0 AS BIGINT), linked_by, linked_at FROM contact_links WHERE linked_id = $1
             ORDER BY 4, 1")
            .bind(contact).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|r| ContactLink { contact_id: r.0, earlier: r.1 == 1, linked_by: r.2, linked_at: r.3 }).collect())
    }

    /// Keeps that the return code whose keyed hash is `code_hash` was given for, or used at, `contact`.
    pub async fn keep_return_code(self, code_hash: &str, contact: &str, at: i64) -> StoreResult<()> {
        on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO return_codes (code_hash, contact_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (code_hash, contact_id) DO NOTHING")
            .bind(code_hash).bind(contact).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Whether a return code was given for, or used at, `contact`.
    pub async fn has_return_code(self, contact: &str) -> StoreResult<bool> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT code_hash FROM return_codes WHERE contact_id = $1 LIMIT 1")
            .bind(contact).fetch_optional(pool).await)?;
        Ok(row.is_some())
    }

    /// Whether a return code (by its keyed hash) was ever given.
    pub async fn return_code_known(self, code_hash: &str) -> StoreResult<bool> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT contact_id FROM return_codes WHERE code_hash = $1 LIMIT 1")
            .bind(code_hash).fetch_optional(pool).await)?;
        Ok(row.is_some())
    }

    /// The earlier contacts of a caller who gave a return code at `contact`: the other contacts of the
    /// same code(s) queued before it, with a submitted form, newest first (at most `limit`), their
    /// forms' free text opened.
    pub async fn returning_history(self, contact: &str, limit: i64) -> StoreResult<Vec<EarlierForm>> {
        let forms: Vec<EarlierForm> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT c.id AS contact_id, c.helpline, c.queued_at, f.data, f.risk
             FROM return_codes k
             JOIN contacts me ON me.id = k.contact_id
             JOIN return_codes e ON e.code_hash = k.code_hash AND e.contact_id <> k.contact_id
             JOIN contacts c ON c.id = e.contact_id AND c.queued_at <= me.queued_at
             JOIN contact_forms f ON f.contact_id = c.id AND f.status = 'submitted'
             WHERE k.contact_id = $1
             ORDER BY c.queued_at DESC, c.id DESC LIMIT $2")
            .bind(contact).bind(limit).fetch_all(pool).await)?;
        forms
            .into_iter()
            .map(|mut f| {
                f.data = self.0.open_form(&f.contact_id, &f.data)?;
                Ok(f)
            })
            .collect()
    }
}

//! Case files: numbers allocated per helpline and year, stages with deadlines, linked contacts,
//! identifying details kept apart, and entries (assessments, notes, referrals, stage changes).

use super::sealed::place::{CASE_ENTRY_BODY, PERSON_ADDRESS, PERSON_BIRTH_DATE, PERSON_FULL_NAME, PERSON_PHONE};
use super::{both_engines, new_id, on_pool, on_writer, split_list, BeginWrite, Store, StoreResult};

/// A case file as stored (no identifying details: those are in [`PersonDetails`]).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct CaseRecord {
    pub id: String,
    pub number: String,
    pub helpline: String,
    pub stage: String,
    /// The pseudonym shown everywhere (e.g. `Person FV-2026-000123`).
    pub person_label: String,
    pub district: Option<String>,
    pub opened_by: String,
    pub case_manager_id: Option<String>,
    pub opened_at: i64,
    /// When the current deadline falls (None once closed).
    pub due_at: Option<i64>,
    /// What is due: `case_file`, `initial_assessment`, ….
    pub due_what: Option<String>,
    pub updated_at: i64,
}

/// What opening a case needs.
#[derive(Debug, Clone)]
pub struct NewCase {
    /// How the case is numbered and when its first deadline falls (the casework rules, handed in).
    pub rules: CaseRules,
    pub helpline: String,
    pub person_label: Option<String>,
    pub district: Option<String>,
    pub opened_by: String,
    pub contact_id: Option<String>,
    /// The case manager, when the case is opened by one (None: picked by district).
    pub case_manager_id: Option<String>,
    pub at: i64,
}

/// The casework rules a new case needs inside the transaction that takes its helpline's next number:
/// the store applies them and does not know them (`casework::CASE_RULES`).
#[derive(Debug, Clone, Copy)]
pub struct CaseRules {
    /// The year a case opened at this time (ms) is numbered in.
    pub year_of: fn(at: i64) -> i32,
    /// The case number: from the helpline, its prefix setting (`helplines.case_prefix`, may be empty),
    /// the year and the year's sequence number.
    pub number: fn(helpline: &str, prefix_setting: &str, year: i32, seq: i64) -> String,
    /// The first deadline (what is due, and in how many ms) from the helpline's case file setting.
    pub first_deadline: fn(case_file_ms: i64) -> (&'static str, i64),
}

/// The identifying details of a case's person, shown only to the case's own roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonDetails {
    pub full_name: Option<String>,
    pub birth_date: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
}

/// An assessment, note, referral or stage change.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct CaseEntry {
    pub id: String,
    pub kind: String,
    /// JSON text.
    pub body: String,
    pub author_id: String,
    pub at: i64,
}

/// Which cases to list by deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Every case that is not closed.
    Any,
    /// Past their deadline.
    Overdue,
    /// Due within the next 24 hours (not yet overdue).
    Within24h,
}

pub(crate) const CASE_COLUMNS: &str = "id, number, helpline, stage, person_label, district, opened_by, case_manager_id, \
     opened_at, due_at, due_what, updated_at";

/// Opening a case inside a write transaction (number, case manager by district, deadline, the contact
/// linked). Used alone and by a placement's reservation.
pub(crate) trait OpenCase {
    /// Opens the case and returns its record.
    async fn open_case_in(&mut self, new: &NewCase) -> Result<CaseRecord, sqlx::Error>;
}

both_engines!(impl OpenCase for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn open_case_in(&mut self, new: &NewCase) -> Result<CaseRecord, sqlx::Error> {
        let (prefix, case_file_ms): (String, i64) =
            sqlx::query_as("SELECT case_prefix, case_file_due_ms FROM helplines WHERE name = $1")
                .bind(&new.helpline)
                .fetch_one(&mut *self)
                .await?;
        let year = (new.rules.year_of)(new.at);
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO case_counters (helpline, year, last) VALUES ($1, $2, 1)
             ON CONFLICT (helpline, year) DO UPDATE SET last = case_counters.last + 1 RETURNING last",
        )
        .bind(&new.helpline)
        .bind(i64::from(year))
        .fetch_one(&mut *self)
        .await?;
        let number = (new.rules.number)(&new.helpline, &prefix, year, seq);
        let managers: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT u.id, u.districts, (SELECT COUNT(*) FROM cases c WHERE c.case_manager_id = u.id AND c.stage <> 'closed')
             FROM users u WHERE u.role = 'case_manager' AND u.disabled = FALSE ORDER BY u.id",
        )
        .fetch_all(&mut *self)
        .await?;
        let case_manager_id = new.case_manager_id.clone().or_else(|| pick_case_manager(new.district.as_deref(), &managers));
        let (due_what, due_ms) = (new.rules.first_deadline)(case_file_ms);
        let record = CaseRecord {
            id: new_id(),
            person_label: new.person_label.clone().filter(|l| !l.trim().is_empty()).unwrap_or_else(|| format!("Person {number}")),
            number,
            helpline: new.helpline.clone(),
            stage: "open".into(),
            district: new.district.clone(),
            opened_by: new.opened_by.clone(),
            case_manager_id,
            opened_at: new.at,
            due_at: Some(new.at + due_ms),
            due_what: Some(due_what.to_string()),
            updated_at: new.at,
        };
        sqlx::query(
            "INSERT INTO cases (id, number, helpline, stage, person_label, district, opened_by, case_manager_id,
                 opened_at, due_at, due_what, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&record.id).bind(&record.number).bind(&record.helpline).bind(&record.stage).bind(&record.person_label)
        .bind(&record.district).bind(&record.opened_by).bind(&record.case_manager_id).bind(record.opened_at)
        .bind(record.due_at).bind(&record.due_what).bind(record.updated_at)
        .execute(&mut *self)
        .await?;
        if let Some(contact) = &new.contact_id {
            sqlx::query("INSERT INTO case_contacts (case_id, contact_id, linked_at, linked_by) VALUES ($1, $2, $3, $4)")
                .bind(&record.id).bind(contact).bind(new.at).bind(&new.opened_by)
                .execute(&mut *self)
                .await?;
        }
        sqlx::query("INSERT INTO case_entries (id, case_id, kind, body, author_id, at) VALUES ($1, $2, 'stage', $3, $4, $5)")
            .bind(new_id()).bind(&record.id).bind(r#"{"to":"open"}"#).bind(&new.opened_by).bind(new.at)
            .execute(&mut *self)
            .await?;
        Ok(record)
    }
});

/// The case manager for a new case in `district`: among those covering it, the one with the fewest open cases.
pub(crate) fn pick_case_manager(district: Option<&str>, managers: &[(String, String, i64)]) -> Option<String> {
    let district = district?.trim().to_lowercase();
    managers
        .iter()
        .filter(|(_, districts, _)| split_list(districts).iter().any(|d| d.to_lowercase() == district))
        .min_by_key(|(id, _, open)| (*open, id.clone()))
        .map(|(id, _, _)| id.clone())
}

/// A view of the store: cases: their contacts, entries, stages, managers, persons; stage deadlines ([`Store::cases`]).
#[derive(Clone, Copy, Debug)]
pub struct Cases<'a>(pub(super) &'a Store);

impl Cases<'_> {
    /// Opens a case by hand (from a contact, or without one), with the reason it was opened as its
    /// first `reason` entry (`reason`: the entry's JSON body, sealed here) in the same transaction.
    pub async fn open_case(self, new: &NewCase, reason: Option<&str>) -> StoreResult<CaseRecord> {
        let entry = new_id();
        let reason = reason.map(|r| self.0.seal(CASE_ENTRY_BODY, &entry, r)).transpose()?;
        let record = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let record = tx.open_case_in(new).await?;
            if let Some(body) = &reason {
                sqlx::query("INSERT INTO case_entries (id, case_id, kind, body, author_id, at) VALUES ($1, $2, 'reason', $3, $4, $5)")
                    .bind(&entry).bind(&record.id).bind(body).bind(&new.opened_by).bind(new.at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(record)
        }.await)?;
        Ok(record)
    }

    pub async fn case(self, id: &str) -> StoreResult<Option<CaseRecord>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// The case with this number (numbers are unique; any stage).
    pub async fn case_by_number(self, number: &str) -> StoreResult<Option<CaseRecord>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE number = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(number).fetch_optional(pool).await)?)
    }

    /// Cases that are not closed, by deadline (soonest first), filtered by `due` at `now`.
    pub async fn cases_due(self, due: Due, now: i64) -> StoreResult<Vec<CaseRecord>> {
        // Every variant binds `now` and `now + 24 h`, so the same two parameters serve all three texts.
        let filter = match due {
            Due::Any => "$1 = $1 AND $2 = $2",
            Due::Overdue => "due_at <= $1 AND $2 = $2",
            Due::Within24h => "due_at > $1 AND due_at <= $2",
        };
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE stage <> 'closed' AND {filter} ORDER BY due_at, number");
        let until = now + 86_400_000;
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(now).bind(until).fetch_all(pool).await)?)
    }

    /// The contacts linked to a case, in the order they were linked.
    pub async fn case_contacts(self, case_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT contact_id FROM case_contacts WHERE case_id = $1 ORDER BY linked_at, contact_id")
            .bind(case_id).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The cases a contact is linked to.
    pub async fn cases_of_contact(self, contact_id: &str) -> StoreResult<Vec<CaseRecord>> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE id IN (SELECT case_id FROM case_contacts WHERE contact_id = $1) ORDER BY opened_at"
        );
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).fetch_all(pool).await)?)
    }

    /// Links one more contact; `Conflict` if it already is.
    pub async fn link_case_contact(self, case_id: &str, contact_id: &str, by: &str, at: i64) -> StoreResult<()> {
        let res = on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO case_contacts (case_id, contact_id, linked_at, linked_by) VALUES ($1, $2, $3, $4)")
            .bind(case_id).bind(contact_id).bind(at).bind(by).execute(pool).await.map(|_| ()));
        res.map_err(|e| super::StoreError::from_insert(e, "the contact is already linked to this case"))
    }

    pub async fn case_entries(self, case_id: &str) -> StoreResult<Vec<CaseEntry>> {
        let rows: Vec<CaseEntry> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, kind, body, author_id, at FROM case_entries WHERE case_id = $1 ORDER BY at, id")
            .bind(case_id).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|mut e| {
                e.body = self.0.open(CASE_ENTRY_BODY, &e.id, &e.body)?;
                Ok(e)
            })
            .collect()
    }

    /// Adds an assessment, note or referral; returns its id.
    pub async fn add_case_entry(self, case_id: &str, kind: &str, body: &str, author: &str, at: i64) -> StoreResult<String> {
        let id = new_id();
        let body = self.0.seal(CASE_ENTRY_BODY, &id, body)?;
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO case_entries (id, case_id, kind, body, author_id, at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&id).bind(case_id).bind(kind).bind(&body).bind(author).bind(at).execute(&mut *tx).await?;
            sqlx::query("UPDATE cases SET updated_at = $1 WHERE id = $2").bind(at).bind(case_id).execute(&mut *tx).await?;
            tx.commit().await
        }.await)?;
        Ok(id)
    }

    /// Moves a case from stage `from` to `to` with its new deadline; false if the case was no longer
    /// at `from` (someone else moved it first). The change is an entry too.
    pub async fn set_case_stage(
        self,
        case_id: &str,
        from: &str,
        to: &str,
        due: Option<(&str, i64)>,
        author: &str,
        at: i64,
    ) -> StoreResult<bool> {
        let body = serde_json::json!({ "from": from, "to": to }).to_string();
        let moved = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE cases SET stage = $1, due_at = $2, due_what = $3, updated_at = $4 WHERE id = $5 AND stage = $6")
                .bind(to).bind(due.map(|d| d.1)).bind(due.map(|d| d.0)).bind(at).bind(case_id).bind(from)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query("INSERT INTO case_entries (id, case_id, kind, body, author_id, at) VALUES ($1, $2, 'stage', $3, $4, $5)")
                    .bind(new_id()).bind(case_id).bind(&body).bind(author).bind(at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n == 1)
        }.await)?;
        Ok(moved)
    }

    /// Assigns (or unassigns) the case manager.
    pub async fn set_case_manager(self, case_id: &str, manager: Option<&str>, at: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE cases SET case_manager_id = $1, updated_at = $2 WHERE id = $3")
            .bind(manager).bind(at).bind(case_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn case_person(self, case_id: &str) -> StoreResult<PersonDetails> {
        let row: Option<PersonDetails> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT full_name, birth_date, address, phone FROM case_people WHERE case_id = $1")
            .bind(case_id).fetch_optional(pool).await)?;
        let p = row.unwrap_or_default();
        let open = |place, v: &Option<String>| self.0.open_opt(place, case_id, v.as_deref());
        Ok(PersonDetails {
            full_name: open(PERSON_FULL_NAME, &p.full_name)?,
            birth_date: open(PERSON_BIRTH_DATE, &p.birth_date)?,
            address: open(PERSON_ADDRESS, &p.address)?,
            phone: open(PERSON_PHONE, &p.phone)?,
        })
    }

    pub async fn set_case_person(self, case_id: &str, p: &PersonDetails, at: i64) -> StoreResult<()> {
        let seal = |place, v: &Option<String>| self.0.seal_opt(place, case_id, v.as_deref());
        let p = PersonDetails {
            full_name: seal(PERSON_FULL_NAME, &p.full_name)?,
            birth_date: seal(PERSON_BIRTH_DATE, &p.birth_date)?,
            address: seal(PERSON_ADDRESS, &p.address)?,
            phone: seal(PERSON_PHONE, &p.phone)?,
        };
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO case_people (case_id, full_name, birth_date, address, phone, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (case_id) DO UPDATE SET full_name = excluded.full_name, birth_date = excluded.birth_date,
                 address = excluded.address, phone = excluded.phone, updated_at = excluded.updated_at")
            .bind(case_id).bind(&p.full_name).bind(&p.birth_date).bind(&p.address).bind(&p.phone).bind(at)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

impl Cases<'_> {
    /// A helpline's case stage deadline settings: its case file setting (`helplines.case_file_due_ms`;
    /// None: no such helpline) and the stages it set (`case_stage_deadlines`: stage name, ms).
    pub async fn stage_deadline_settings(self, helpline: &str) -> StoreResult<(Option<i64>, Vec<(String, i64)>)> {
        let case_file: Option<(i64,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT case_file_due_ms FROM helplines WHERE name = $1")
            .bind(helpline).fetch_optional(pool).await)?;
        let rows: Vec<(String, i64)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT stage, due_ms FROM case_stage_deadlines WHERE helpline = $1").bind(helpline).fetch_all(pool).await)?;
        Ok((case_file.map(|r| r.0), rows))
    }

    /// Stores a helpline's stage deadline settings in one transaction (the case file's in `helplines`).
    pub async fn set_stage_deadline_settings(
        self,
        helpline: &str,
        case_file_ms: i64,
        stages: &[(&str, i64)],
        by: &str,
        at: i64,
    ) -> StoreResult<()> {
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE helplines SET case_file_due_ms = $1 WHERE name = $2")
                .bind(case_file_ms).bind(helpline).execute(&mut *tx).await?;
            for (stage, ms) in stages {
                sqlx::query(
                    "INSERT INTO case_stage_deadlines (helpline, stage, due_ms, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (helpline, stage) DO UPDATE SET due_ms = excluded.due_ms, updated_at = excluded.updated_at,
                         updated_by = excluded.updated_by")
                    .bind(helpline).bind(*stage).bind(*ms).bind(at).bind(by)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }
}

/// One row of the casework report: cases of a helpline at a stage, in a district, with a case manager.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseCount {
    pub helpline: String,
    pub stage: String,
    pub district: Option<String>,
    pub case_manager_id: Option<String>,
    pub cases: i64,
    /// Of those, not closed and past their deadline at the time asked.
    pub overdue: i64,
}

impl Cases<'_> {
    /// Cases counted by helpline, stage, district and case manager (one helpline, or all), with how
    /// many are overdue at `now`.
    pub async fn case_counts(self, helpline: Option<&str>, now: i64) -> StoreResult<Vec<CaseCount>> {
        let sql = "SELECT helpline, stage, district, case_manager_id, COUNT(*) AS cases,
                       SUM(CASE WHEN stage <> 'closed' AND due_at <= $1 THEN 1 ELSE 0 END) AS overdue
                   FROM cases WHERE ($2 IS NULL OR helpline = $2)
                   GROUP BY helpline, stage, district, case_manager_id
                   ORDER BY helpline, stage, district, case_manager_id";
        Ok(on_pool!(self.0, pool => sqlx::query_as(sql).bind(now).bind(helpline).fetch_all(pool).await)?)
    }
}

impl Cases<'_> {
    /// A helpline's own stage form definitions: (form, definition JSON), by form.
    pub async fn stage_forms(self, helpline: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as("SELECT form, definition FROM stage_forms WHERE helpline = $1 ORDER BY form")
            .bind(helpline).fetch_all(pool).await)?)
    }

    /// Sets a helpline's own definition of one stage form.
    pub async fn set_stage_form(self, helpline: &str, form: &str, definition: &str, by: &str, at: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO stage_forms (helpline, form, definition, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (helpline, form) DO UPDATE SET definition = excluded.definition, updated_by = excluded.updated_by,
                 updated_at = excluded.updated_at")
            .bind(helpline).bind(form).bind(definition).bind(by).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{queued_chat, seeded, write_tx};
    use crate::store::users::{NewUser, Role};

    fn new_case(helpline: &str, district: Option<&str>, contact: Option<&str>, by: &str) -> NewCase {
        NewCase {
            rules: CaseRules {
                year_of: |_| 2026,
                number: |helpline, prefix, year, seq| format!("{}-{year}-{seq:06}", if prefix.is_empty() { helpline } else { prefix }),
                first_deadline: |case_file_ms| ("case_file", case_file_ms),
            },
            helpline: helpline.into(),
            person_label: None,
            district: district.map(str::to_string),
            opened_by: by.into(),
            contact_id: contact.map(str::to_string),
            case_manager_id: None,
            at: 1_000,
        }
    }

    /// `open_case_in` numbers the case, picks the case manager of its district, links the contact and writes
    /// the first stage entry, all in the caller's transaction; an error comes back to the caller (who
    /// rolls back: nothing stays).
    #[tokio::test]
    async fn opening_a_case_in_a_transaction_numbers_links_and_assigns_it() {
        let store = seeded().await;
        let manager = store
            .accounts()
            .create_user(
                &NewUser {
                    username: "maria".into(),
                    display_name: "Maria".into(),
                    password_hash: "x".into(),
                    role: Role::CaseManager,
                    helplines: vec![],
                    backup_helplines: vec![],
                    languages: vec![],
                    capacity: 1,
                },
                1,
            )
            .await
            .expect("user");
        store.accounts().set_user_districts(&manager.id, &["Cluj".into()]).await.expect("districts");
        let contact = queued_chat(&store, 1).await;

        let mut tx = write_tx(&store).await;
        let first = tx.open_case_in(&new_case("children", Some("cluj"), Some(&contact), &manager.id)).await.expect("opened");
        let second = tx.open_case_in(&new_case("children", Some("Iasi"), None, &manager.id)).await.expect("opened");
        tx.commit().await.expect("commit");
        assert_eq!((first.number.as_str(), second.number.as_str()), ("children-2026-000001", "children-2026-000002"));
        assert_eq!(first.case_manager_id.as_deref(), Some(manager.id.as_str()), "the district's case manager");
        assert_eq!(second.case_manager_id, None, "nobody covers Iasi");
        let (case_file_ms, _) = store.cases().stage_deadline_settings("children").await.expect("read");
        let due = case_file_ms.map(|ms| 1_000 + ms);
        assert_eq!(
            (first.person_label.as_str(), first.due_at, first.due_what.as_deref()),
            ("Person children-2026-000001", due, Some("case_file")),
            "the first deadline from the helpline's case file setting"
        );
        assert_eq!(store.cases().case(&first.id).await.expect("read"), Some(first.clone()));
        assert_eq!(store.cases().case_contacts(&first.id).await.expect("read"), vec![contact.clone()]);
        assert_eq!(store.cases().case_entries(&first.id).await.expect("read")[0].kind, "stage");

        let mut tx = write_tx(&store).await;
        let unknown = tx.open_case_in(&new_case("no such helpline", None, None, &manager.id)).await;
        assert!(matches!(unknown, Err(sqlx::Error::RowNotFound)), "{unknown:?}");
        tx.rollback().await.expect("rollback");
        assert_eq!(store.cases().cases_due(Due::Any, 0).await.expect("read").len(), 2, "nothing of the failed one");
    }
}

//! Canned responses: short replies a helpline's counsellors insert in the console, per helpline and
//! language. Staff text written by supervisors and admins, not caller data: not sealed.

use super::{new_id, on_pool, on_writer, Store, StoreResult};

/// A canned response as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct CannedRecord {
    pub id: String,
    pub helpline: String,
    pub language: String,
    /// A short name to find it by.
    pub title: String,
    /// The text inserted in the reply box.
    pub body: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a create or an update writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedText {
    pub helpline: String,
    pub language: String,
    pub title: String,
    pub body: String,
}

/// The canned responses view.
#[derive(Clone, Copy)]
pub struct Canned<'a>(pub(super) &'a Store);

const COLUMNS: &str = "id, helpline, language, title, body, created_by, created_at, updated_at";

impl Canned<'_> {
    /// The responses of `helplines` (None: every helpline), of one language when named, by helpline,
    /// language and title.
    pub async fn list(self, helplines: Option<&[String]>, language: Option<&str>) -> StoreResult<Vec<CannedRecord>> {
        let sql =
            format!("SELECT {COLUMNS} FROM canned_responses WHERE ($1 IS NULL OR language = $1) ORDER BY helpline, language, title, id");
        let all: Vec<CannedRecord> =
            on_pool!(self.0, pool => sqlx::query_as(&sql).bind(language.map(str::to_string)).fetch_all(pool).await)?;
        Ok(match helplines {
            None => all,
            Some(list) => all.into_iter().filter(|c| list.contains(&c.helpline)).collect(),
        })
    }

    pub async fn get(self, id: &str) -> StoreResult<Option<CannedRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM canned_responses WHERE id = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Stores a new response by `by` at `now`.
    pub async fn create(self, text: &CannedText, by: &str, now: i64) -> StoreResult<CannedRecord> {
        let record = CannedRecord {
            id: new_id(),
            helpline: text.helpline.clone(),
            language: text.language.clone(),
            title: text.title.clone(),
            body: text.body.clone(),
            created_by: by.to_string(),
            created_at: now,
            updated_at: now,
        };
        let sql = format!("INSERT INTO canned_responses ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        on_writer!(self.0, pool => sqlx::query(&sql)
            .bind(&record.id).bind(&record.helpline).bind(&record.language).bind(&record.title).bind(&record.body)
            .bind(&record.created_by).bind(record.created_at).bind(record.updated_at)
            .execute(pool).await.map(|_| ()))?;
        Ok(record)
    }

    /// Replaces a response's helpline, language, title and text; None when there is no such response.
    pub async fn update(self, id: &str, text: &CannedText, now: i64) -> StoreResult<Option<CannedRecord>> {
        let done = on_writer!(self.0, pool => sqlx::query(
            "UPDATE canned_responses SET helpline = $1, language = $2, title = $3, body = $4, updated_at = $5 WHERE id = $6")
            .bind(&text.helpline).bind(&text.language).bind(&text.title).bind(&text.body).bind(now).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Ok(None);
        }
        self.get(id).await
    }

    /// Deletes a response; false when there was none.
    pub async fn delete(self, id: &str) -> StoreResult<bool> {
        let done = on_writer!(self.0, pool => sqlx::query("DELETE FROM canned_responses WHERE id = $1")
            .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }
}

//! Referrals: a case referred to a service of the registry, with its status, due date and the
//! provider's feedback (the reason and the feedback sealed), and where each service is told of them.

use super::sealed::place::{REFERRAL_FEEDBACK, REFERRAL_REASON};
use super::{new_id, on_pool, Store, StoreResult};

/// A referral as stored (reason and feedback opened).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReferralRecord {
    pub id: String,
    pub case_id: String,
    pub service_id: String,
    /// `sent`, `accepted`, `declined` or `completed`.
    pub status: String,
    pub reason: String,
    pub due_at: Option<i64>,
    pub feedback: Option<String>,
    pub provider_token_hash: String,
    pub created_by: String,
    pub created_at: i64,
    /// A user id, or `provider`.
    pub updated_by: String,
    pub updated_at: i64,
}

/// What a new referral needs.
#[derive(Debug, Clone)]
pub struct NewReferral {
    pub case_id: String,
    pub service_id: String,
    pub reason: String,
    pub due_at: Option<i64>,
    pub provider_token_hash: String,
    pub created_by: String,
    pub at: i64,
}

/// A change to a referral: its status (from `from`, so a change made meanwhile is not overwritten),
/// due date and feedback (None: unchanged).
#[derive(Debug, Clone)]
pub struct ReferralChange {
    pub from: String,
    pub status: Option<String>,
    pub due_at: Option<i64>,
    pub feedback: Option<String>,
    pub by: String,
    pub at: i64,
}

const COLUMNS: &str =
    "id, case_id, service_id, status, reason, due_at, feedback, provider_token_hash, created_by, created_at, updated_by, updated_at";

/// A view of the store: referrals and the services' webhooks ([`Store::referrals`]).
#[derive(Clone, Copy, Debug)]
pub struct Referrals<'a>(pub(super) &'a Store);

impl Referrals<'_> {
    fn opened(self, mut r: ReferralRecord) -> StoreResult<ReferralRecord> {
        r.reason = self.0.open(REFERRAL_REASON, &r.id, &r.reason)?;
        r.feedback = self.0.open_opt(REFERRAL_FEEDBACK, &r.id, r.feedback.as_deref())?;
        Ok(r)
    }

    /// Writes a new referral (status `sent`); returns it.
    pub async fn add(self, new: &NewReferral) -> StoreResult<ReferralRecord> {
        let id = new_id();
        let reason = self.0.seal(REFERRAL_REASON, &id, &new.reason)?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO referrals (id, case_id, service_id, status, reason, due_at, feedback, provider_token_hash, created_by, created_at, updated_by, updated_at)
             VALUES ($1, $2, $3, 'sent', $4, $5, NULL, $6, $7, $8, $7, $8)")
            .bind(&id).bind(&new.case_id).bind(&new.service_id).bind(&reason).bind(new.due_at)
            .bind(&new.provider_token_hash).bind(&new.created_by).bind(new.at)
            .execute(pool).await.map(|_| ()))?;
        self.referral(&id).await?.ok_or(super::StoreError::NotFound)
    }

    pub async fn referral(self, id: &str) -> StoreResult<Option<ReferralRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM referrals WHERE id = $1");
        let row: Option<ReferralRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(|r| self.opened(r)).transpose()
    }

    /// A case's referrals, oldest first.
    pub async fn of_case(self, case_id: &str) -> StoreResult<Vec<ReferralRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM referrals WHERE case_id = $1 ORDER BY created_at, id");
        let rows: Vec<ReferralRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(case_id).fetch_all(pool).await)?;
        rows.into_iter().map(|r| self.opened(r)).collect()
    }

    /// Applies a change if the referral is still at `change.from`; false if it moved meanwhile.
    pub async fn change(self, id: &str, change: &ReferralChange) -> StoreResult<bool> {
        let feedback = self.0.seal_opt(REFERRAL_FEEDBACK, id, change.feedback.as_deref())?;
        let n = on_pool!(self.0, pool => sqlx::query(
            "UPDATE referrals SET status = COALESCE($1, status), due_at = COALESCE($2, due_at), feedback = COALESCE($3, feedback),
                 updated_by = $4, updated_at = $5 WHERE id = $6 AND status = $7")
            .bind(&change.status).bind(change.due_at).bind(&feedback).bind(&change.by).bind(change.at).bind(id).bind(&change.from)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Where a service is told of referrals (None: nowhere).
    pub async fn webhook(self, service_id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT url FROM service_webhooks WHERE service_id = $1")
            .bind(service_id).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Sets (Some) or removes (None) a service's webhook.
    pub async fn set_webhook(self, service_id: &str, url: Option<&str>, at: i64) -> StoreResult<()> {
        match url {
            Some(url) => on_pool!(self.0, pool => sqlx::query(
                "INSERT INTO service_webhooks (service_id, url, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (service_id) DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at")
                .bind(service_id).bind(url).bind(at).execute(pool).await.map(|_| ()))?,
            None => on_pool!(self.0, pool => sqlx::query("DELETE FROM service_webhooks WHERE service_id = $1")
                .bind(service_id).execute(pool).await.map(|_| ()))?,
        }
        Ok(())
    }
}

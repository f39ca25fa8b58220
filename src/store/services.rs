//! The placement services registry (capacity and places in use) and placements, whose reservation is
//! one conditional update in the transaction that writes the placement (and opens its case).

use super::cases::{CaseRecord, NewCase, OpenCase, CASE_COLUMNS};
use super::{join_list, new_id, on_pool, on_writer, split_list, BeginWrite, Store, StoreError, StoreResult};

/// A placement service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ServiceRecord {
    pub id: String,
    pub name: String,
    /// One of [`crate::casework::SERVICE_KINDS`].
    pub kind: String,
    pub district: String,
    pub address: String,
    pub phone: String,
    pub admission_24_7: bool,
    pub capacity: i64,
    pub in_use: i64,
    /// Helplines that may place people here.
    pub helplines: Vec<String>,
    pub created_at: i64,
}

impl ServiceRecord {
    pub fn free(&self) -> i64 {
        (self.capacity - self.in_use).max(0)
    }
}

#[derive(sqlx::FromRow)]
struct ServiceRow {
    id: String,
    name: String,
    kind: String,
    district: String,
    address: String,
    phone: String,
    admission_24_7: bool,
    capacity: i64,
    in_use: i64,
    helplines: String,
    created_at: i64,
}

impl From<ServiceRow> for ServiceRecord {
    fn from(r: ServiceRow) -> Self {
        ServiceRecord {
            id: r.id,
            name: r.name,
            kind: r.kind,
            district: r.district,
            address: r.address,
            phone: r.phone,
            admission_24_7: r.admission_24_7,
            capacity: r.capacity,
            in_use: r.in_use,
            helplines: split_list(&r.helplines),
            created_at: r.created_at,
        }
    }
}

const SERVICE_COLUMNS: &str = "id, name, kind, district, address, phone, admission_24_7, capacity, in_use, helplines, created_at";

/// A placement as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct PlacementRecord {
    pub id: String,
    pub service_id: String,
    pub helpline: String,
    pub contact_id: Option<String>,
    pub escalation_id: Option<String>,
    pub case_id: Option<String>,
    /// `requested`, `admitted`, `left` or `cancelled`.
    pub status: String,
    pub requested_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const PLACEMENT_COLUMNS: &str =
    "id, service_id, helpline, contact_id, escalation_id, case_id, status, requested_by, created_at, updated_at";

/// A reservation request.
#[derive(Debug, Clone)]
pub struct NewPlacement {
    pub service_id: String,
    pub helpline: String,
    pub contact_id: Option<String>,
    pub escalation_id: Option<String>,
    pub requested_by: String,
    pub at: i64,
    /// The case to link the placement to; when None, `open_case` opens one in the same transaction.
    pub case_id: Option<String>,
    pub open_case: Option<NewCase>,
}

/// Why a place was not reserved. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("no such service")]
    NoService,
    #[error("this helpline may not place people in that service")]
    NotAllowed,
    #[error("the service has no free place")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a reservation wrote.
#[derive(Debug, Clone)]
pub struct Reserved {
    pub placement: PlacementRecord,
    /// The case opened by this placement, if one was.
    pub opened_case: Option<CaseRecord>,
}

enum Outcome {
    Done(Box<Reserved>),
    NoService,
    NotAllowed,
    Full,
}

/// A view of the store: services, suggestions and placements ([`Store::placements`]).
#[derive(Clone, Copy, Debug)]
pub struct Placements<'a>(pub(super) &'a Store);

impl Placements<'_> {
    pub async fn add_service(self, s: &ServiceRecord) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO services (id, name, kind, district, address, phone, admission_24_7, capacity, in_use, helplines, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&s.id).bind(&s.name).bind(&s.kind).bind(&s.district).bind(&s.address).bind(&s.phone)
            .bind(s.admission_24_7).bind(s.capacity).bind(s.in_use).bind(join_list(&s.helplines)).bind(s.created_at)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Every service, by district and name.
    pub async fn services(self) -> StoreResult<Vec<ServiceRecord>> {
        let sql = format!("SELECT {SERVICE_COLUMNS} FROM services ORDER BY district, name, id");
        let rows: Vec<ServiceRow> = on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(ServiceRecord::from).collect())
    }

    pub async fn service(self, id: &str) -> StoreResult<Option<ServiceRecord>> {
        let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE id = $1");
        let row: Option<ServiceRow> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(ServiceRecord::from))
    }

    /// Services a helpline may use, of one of `kinds`, with a free place: the person's district first,
    /// then the kinds in the order given, then the most free places.
    pub async fn suggestions(self, helpline: &str, kinds: &[&str], district: Option<&str>) -> StoreResult<Vec<ServiceRecord>> {
        let district = district.map(|d| d.trim().to_lowercase());
        let mut list: Vec<ServiceRecord> = self
            .services()
            .await?
            .into_iter()
            .filter(|s| s.free() > 0 && kinds.contains(&s.kind.as_str()) && s.helplines.iter().any(|h| h == helpline))
            .collect();
        list.sort_by_key(|s| {
            let elsewhere = district.as_deref() != Some(s.district.to_lowercase().as_str());
            let kind_rank = kinds.iter().position(|k| *k == s.kind).unwrap_or(usize::MAX);
            (elsewhere, kind_rank, -s.free(), s.name.clone())
        });
        Ok(list)
    }

    /// Reserves a place: in one write transaction, checks the service and the helpline's right to use
    /// it, takes a place with `in_use = in_use + 1 WHERE in_use < capacity` (so concurrent reservations
    /// never exceed capacity), writes the placement and opens (or links) its case. All or nothing.
    pub async fn reserve_place(self, p: &NewPlacement) -> Result<Reserved, ReserveError> {
        let outcome = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let allowed: Option<(String,)> = sqlx::query_as("SELECT helplines FROM services WHERE id = $1")
                .bind(&p.service_id).fetch_optional(&mut *tx).await?;
            let Some((helplines,)) = allowed else { return Ok(Outcome::NoService) };
            if !split_list(&helplines).contains(&p.helpline) {
                return Ok(Outcome::NotAllowed);
            }
            let taken = sqlx::query("UPDATE services SET in_use = in_use + 1 WHERE id = $1 AND in_use < capacity")
                .bind(&p.service_id).execute(&mut *tx).await?.rows_affected();
            if taken != 1 {
                return Ok(Outcome::Full);
            }
            let opened_case = match (&p.case_id, &p.open_case) {
                (None, Some(new)) => Some(tx.open_case_in(new).await?),
                _ => None,
            };
            let placement = PlacementRecord {
                id: new_id(),
                service_id: p.service_id.clone(),
                helpline: p.helpline.clone(),
                contact_id: p.contact_id.clone(),
                escalation_id: p.escalation_id.clone(),
                case_id: p.case_id.clone().or_else(|| opened_case.as_ref().map(|c| c.id.clone())),
                status: "requested".into(),
                requested_by: p.requested_by.clone(),
                created_at: p.at,
                updated_at: p.at,
            };
            sqlx::query(
                "INSERT INTO placements (id, service_id, helpline, contact_id, escalation_id, case_id, status, requested_by,
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(&placement.id).bind(&placement.service_id).bind(&placement.helpline).bind(&placement.contact_id)
                .bind(&placement.escalation_id).bind(&placement.case_id).bind(&placement.status)
                .bind(&placement.requested_by).bind(placement.created_at).bind(placement.updated_at)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Outcome::Done(Box::new(Reserved { placement, opened_case })))
        }.await)
        .map_err(StoreError::from)?;
        match outcome {
            Outcome::Done(r) => Ok(*r),
            Outcome::NoService => Err(ReserveError::NoService),
            Outcome::NotAllowed => Err(ReserveError::NotAllowed),
            Outcome::Full => Err(ReserveError::Full),
        }
    }

    pub async fn placement(self, id: &str) -> StoreResult<Option<PlacementRecord>> {
        let sql = format!("SELECT {PLACEMENT_COLUMNS} FROM placements WHERE id = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    pub async fn placements_of_case(self, case_id: &str) -> StoreResult<Vec<PlacementRecord>> {
        let sql = format!("SELECT {PLACEMENT_COLUMNS} FROM placements WHERE case_id = $1 ORDER BY created_at, id");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(case_id).fetch_all(pool).await)?)
    }

    /// Moves a placement from `from` to `to`; leaving or cancelling frees its place in the same
    /// transaction. False if the placement was no longer at `from`.
    pub async fn set_placement_status(self, id: &str, from: &str, to: &str, at: i64) -> StoreResult<bool> {
        let frees = matches!(to, "left" | "cancelled");
        let moved = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE placements SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
                .bind(to).bind(at).bind(id).bind(from).execute(&mut *tx).await?.rows_affected();
            if n == 1 && frees {
                sqlx::query("UPDATE services SET in_use = in_use - 1
                             WHERE id = (SELECT service_id FROM placements WHERE id = $1) AND in_use > 0")
                    .bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n == 1)
        }.await)?;
        Ok(moved)
    }

    /// The open case a contact is linked to, if any (a second placement joins it instead of opening another).
    pub async fn open_case_of_contact(self, contact_id: &str) -> StoreResult<Option<CaseRecord>> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE stage <> 'closed'
             AND id IN (SELECT case_id FROM case_contacts WHERE contact_id = $1) ORDER BY opened_at LIMIT 1"
        );
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).fetch_optional(pool).await)?)
    }
}

//! Accounts: counsellors, supervisors and admins, with what they serve and their chosen status.

use super::{join_list, new_id, on_pool, on_writer, split_list, BeginWrite, Store, StoreError, StoreResult};

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Counsellor,
    Supervisor,
    Admin,
    /// A social worker who manages case files in their districts.
    #[value(name = "case_manager")]
    CaseManager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Counsellor => "counsellor",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::CaseManager => "case_manager",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "counsellor" => Some(Role::Counsellor),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            "case_manager" => Some(Role::CaseManager),
            _ => None,
        }
    }
}

/// A counsellor away now, by her last status change ([`Accounts::away_now`]).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AwayNow {
    pub user_id: String,
    pub at: i64,
    /// Who set it when not she (`supervisor`, `missed_offers`).
    pub reason: Option<String>,
    /// The reason she gave (one of her helplines' away reasons).
    pub away_reason: Option<String>,
}

/// An account as stored (the password hash stays in the store module).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub helplines: Vec<String>,
    pub backup_helplines: Vec<String>,
    pub languages: Vec<String>,
    pub capacity: i64,
    /// The status the counsellor last chose: `available`, `away` or `offline`.
    pub status: String,
    pub disabled: bool,
    pub created_at: i64,
    /// Phone extension the exchange rings for this counsellor's calls; None: never offered calls.
    pub extension: Option<String>,
    /// A senior counsellor: takes the contacts of callers routed to seniors instead of blocked.
    pub senior: bool,
    /// A supervisor granted every helpline (an explicit, audited grant; an empty `helplines` list grants nothing).
    #[serde(default)]
    pub all_helplines: bool,
    /// The language chosen for the staff pages (`ro`, `ru`, `uk`, `en`); None until chosen.
    #[serde(default)]
    pub locale: Option<String>,
}

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub helplines: Vec<String>,
    pub backup_helplines: Vec<String>,
    pub languages: Vec<String>,
    pub capacity: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    helplines: String,
    backup_helplines: String,
    languages: String,
    capacity: i64,
    status: String,
    disabled: bool,
    created_at: i64,
    extension: Option<String>,
    senior: bool,
    all_helplines: bool,
    locale: Option<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role: Role::parse(&r.role).unwrap_or(Role::Counsellor),
            helplines: split_list(&r.helplines),
            backup_helplines: split_list(&r.backup_helplines),
            languages: split_list(&r.languages),
            capacity: r.capacity,
            status: r.status,
            disabled: r.disabled,
            created_at: r.created_at,
            extension: r.extension,
            senior: r.senior,
            all_helplines: r.all_helplines,
            locale: r.locale,
        }
    }
}

const USER_COLUMNS: &str =
    "id, username, display_name, role, helplines, backup_helplines, languages, capacity, status, disabled, created_at, extension, senior, all_helplines, locale";

/// A view of the store: staff accounts: roles, status, extension, districts ([`Store::accounts`]).
#[derive(Clone, Copy, Debug)]
pub struct Accounts<'a>(pub(super) &'a Store);

impl Accounts<'_> {
    /// Creates an account; `Conflict` if the username is taken.
    pub async fn create_user(self, u: &NewUser, now: i64) -> StoreResult<User> {
        let id = new_id();
        let res = on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, helplines, backup_helplines,
                 languages, capacity, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(&id).bind(&u.username).bind(&u.display_name).bind(&u.password_hash).bind(u.role.as_str())
            .bind(join_list(&u.helplines)).bind(join_list(&u.backup_helplines)).bind(join_list(&u.languages))
            .bind(u.capacity).bind(now)
            .execute(pool).await.map(|_| ()));
        res.map_err(|e| StoreError::from_insert(e, "username taken"))?;
        self.user(&id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn user(self, id: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_pool!(self.0, pool =>
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(User::from))
    }

    /// The accounts with these ids (unknown ids are left out), in one query per 500 ids.
    pub async fn users_by_ids(self, ids: &[String]) -> StoreResult<Vec<User>> {
        let mut all = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id IN ({})", marks.join(", "));
            let rows: Vec<UserRow> = on_pool!(self.0, pool => {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            })?;
            all.extend(rows.into_iter().map(User::from));
        }
        Ok(all)
    }

    /// The account and its password hash, for login.
    pub async fn user_with_hash(self, username: &str) -> StoreResult<Option<(User, String)>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        let row: Option<UserRow> = on_pool!(self.0, pool =>
            sqlx::query_as(&sql).bind(username).fetch_optional(pool).await)?;
        let Some(row) = row else { return Ok(None) };
        let (hash,): (String,) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT password_hash FROM users WHERE id = $1").bind(&row.id).fetch_one(pool).await)?;
        Ok(Some((User::from(row), hash)))
    }

    pub async fn users(self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows: Vec<UserRow> = on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Disables (or re-enables) an account by username; returns the account. Disabling also voids
    /// the account's refresh tokens (re-enabling does not bring them back).
    pub async fn set_user_disabled(self, username: &str, disabled: bool) -> StoreResult<User> {
        let done = on_pool!(self.0, pool => sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
            .bind(disabled).bind(username).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        if disabled {
            // The store reads no clock: a revoked token records its own creation time as the revocation.
            on_pool!(self.0, pool => sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = created_at
                 WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE username = $1)")
                .bind(username).execute(pool).await.map(|_| ()))?;
        }
        self.user_with_hash(username).await?.map(|(u, _)| u).ok_or(StoreError::NotFound)
    }

    /// Marks an account senior (or not): seniors take the contacts of callers routed to them.
    pub async fn set_user_senior(self, id: &str, senior: bool) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE users SET senior = $1 WHERE id = $2")
            .bind(senior).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Grants (or takes back) every helpline to an account by username; returns the account.
    pub async fn set_user_all_helplines(self, username: &str, all: bool) -> StoreResult<User> {
        let done = on_pool!(self.0, pool => sqlx::query("UPDATE users SET all_helplines = $1 WHERE username = $2")
            .bind(all).bind(username).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.user_with_hash(username).await?.map(|(u, _)| u).ok_or(StoreError::NotFound)
    }

    /// Sets (or clears) an account's phone extension.
    pub async fn set_user_extension(self, id: &str, extension: Option<&str>) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE users SET extension = $1 WHERE id = $2")
            .bind(extension).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The ids among `ids` whose accounts are disabled or gone (to close their sockets).
    pub async fn disabled_users(self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self.0, pool =>
            sqlx::query_as("SELECT id FROM users WHERE disabled = TRUE").fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Records a counsellor's status (chosen, or set by the router) and logs the change.
    pub async fn set_user_status(self, id: &str, status: &str, reason: Option<&str>, at: i64) -> StoreResult<()> {
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET status = $1 WHERE id = $2").bind(status).bind(id).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO status_changes (id, user_id, at, status, reason) VALUES ($1, $2, $3, $4, $5)")
                .bind(new_id()).bind(id).bind(at).bind(status).bind(reason).execute(&mut *tx).await?;
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// Sets the districts a case manager covers (new cases there are assigned to them).
    /// The counsellors away now (enabled accounts): each one's last status change (at, who set it
    /// (`reason`), the away reason she gave), what a restarted router restores.
    pub async fn away_now(self) -> StoreResult<Vec<AwayNow>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT s.user_id, s.at, s.reason, s.away_reason FROM status_changes s JOIN users u ON u.id = s.user_id
             WHERE u.status = 'away' AND u.disabled = FALSE AND s.status = 'away'
               AND s.at = (SELECT MAX(l.at) FROM status_changes l WHERE l.user_id = s.user_id)
             ORDER BY s.user_id, s.at, s.id").fetch_all(pool).await)?)
    }

    pub async fn set_user_districts(self, id: &str, districts: &[String]) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE users SET districts = $1 WHERE id = $2")
            .bind(join_list(districts)).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Keeps the language an account chose for the staff pages; `NotFound` for an unknown id.
    pub async fn set_locale(self, id: &str, locale: &str) -> StoreResult<()> {
        let done = on_pool!(self.0, pool => sqlx::query("UPDATE users SET locale = $1 WHERE id = $2")
            .bind(locale).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The districts an account covers.
    pub async fn user_districts(self, id: &str) -> StoreResult<Vec<String>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT districts FROM users WHERE id = $1")
            .bind(id).fetch_optional(pool).await)?;
        Ok(row.map(|r| split_list(&r.0)).unwrap_or_default())
    }
}

/// A (account, address) pair locked out after too many failed logins, as supervisors see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LoginLockout {
    /// The account's username; None when the name typed is no account (it is kept only as a keyed hash).
    pub username: Option<String>,
    pub user_id: Option<String>,
    /// The client network the failures came from.
    pub address: String,
    pub locked_at: i64,
    pub locked_until: i64,
    /// How many times this pair has been locked out lately (each lockout lasts twice the one before).
    pub strikes: i64,
}

/// What a failed login leaves counted (see `Accounts::login_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// The pair's failures within its window and since its last lockout, this one included.
    pub pair: u32,
    /// The account's failures from every address within its window, this one included.
    pub account: u32,
    /// The pair's last lockout remembered: its strikes and when it began.
    pub last_lockout: Option<(u32, i64)>,
}

/// An account's second factor as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totp {
    /// Base32; set at enrolment.
    pub secret: Option<String>,
    /// Confirmed with a code: required at every login from then on.
    pub enabled: bool,
}

impl Accounts<'_> {
    /// Sets an account's password hash (a change or an admin's reset); `NotFound` for an unknown id.
    pub async fn set_password_hash(self, id: &str, password_hash: &str) -> StoreResult<()> {
        let done = on_pool!(self.0, pool => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The password hash of an account, by id.
    pub async fn password_hash(self, id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
            .bind(id).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// An account's second factor.
    pub async fn totp(self, id: &str) -> StoreResult<Totp> {
        let row: Option<(Option<String>, bool)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT totp_secret, totp_enabled FROM users WHERE id = $1").bind(id).fetch_optional(pool).await)?;
        let Some((secret, enabled)) = row else { return Ok(Totp::default()) };
        Ok(Totp { secret: self.0.open_opt(super::sealed::place::TOTP_SECRET, id, secret.as_deref())?, enabled })
    }

    /// Starts (or restarts) an enrolment: a new secret, not yet required. `Conflict` when the account
    /// already has a confirmed second factor (an admin resets it first).
    pub async fn begin_totp(self, id: &str, secret: &str) -> StoreResult<()> {
        let secret = self.0.seal(super::sealed::place::TOTP_SECRET, id, secret)?;
        let done = on_pool!(self.0, pool => sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE id = $2 AND totp_enabled = FALSE")
            .bind(&secret).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::Conflict("the second factor is already set up; an admin can reset it".into()));
        }
        Ok(())
    }

    /// Confirms an enrolment (the code of `step` was right): the second factor is required from now on,
    /// and `recovery_hashes` replace any earlier recovery codes.
    pub async fn enable_totp(self, id: &str, step: i64, recovery_hashes: &[String]) -> StoreResult<()> {
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET totp_enabled = TRUE, totp_last_step = $1 WHERE id = $2")
                .bind(step).bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            for hash in recovery_hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(id).bind(hash).execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// Takes the code of `step` for the account: false when a code of this step or a later one was
    /// already accepted (a code is never accepted twice).
    pub async fn use_totp_step(self, id: &str, step: i64) -> StoreResult<bool> {
        let done = on_pool!(self.0, pool => sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)")
            .bind(step).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Uses up a recovery code (by hash): false when it is unknown or was used already.
    pub async fn use_recovery_code(self, id: &str, code_hash: &str, now: i64) -> StoreResult<bool> {
        let done = on_pool!(self.0, pool => sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(now).bind(id).bind(code_hash).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Removes an account's second factor and recovery codes (an admin's reset, for a lost phone).
    pub async fn reset_totp(self, id: &str) -> StoreResult<()> {
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = NULL WHERE id = $1")
                .bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// Records a lockout of the pair (`account_hash`, `address`) until `until` (replacing an earlier
    /// one), and forgets lockouts that ended before `forget_before` (their addresses are not kept
    /// longer; an ended lockout is kept until then only so the pair's next one lasts longer).
    pub async fn lock_login(self, lock: &NewLockout<'_>, forget_before: i64) -> StoreResult<()> {
        let NewLockout { account_hash, address, user_id, now, until, strikes } = *lock;
        on_pool!(self.0, pool => sqlx::query("DELETE FROM login_lockouts WHERE locked_until <= $1")
            .bind(forget_before).execute(pool).await.map(|_| ()))?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO login_lockouts (account_hash, address, user_id, locked_at, locked_until, strikes)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_hash, address) DO UPDATE SET
                 user_id = excluded.user_id, locked_at = excluded.locked_at,
                 locked_until = excluded.locked_until, strikes = excluded.strikes")
            .bind(account_hash).bind(address).bind(user_id).bind(now).bind(until).bind(i64::from(strikes))
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Counts a failed login of the pair (`account_hash`, `address`) at `now`, for every node, and
    /// returns what decides its lockout: the pair's failures since `pair_since` and since its last
    /// lockout, the account's failures (from every address) since `account_since`, and the pair's
    /// last lockout (its strikes and when it was, if one is remembered). Failures from before
    /// `account_since` are forgotten.
    pub async fn login_failure(
        self,
        account_hash: &str,
        address: &str,
        now: i64,
        pair_since: i64,
        account_since: i64,
    ) -> StoreResult<LoginFailures> {
        let (pair, account, last): (i64, i64, Option<(i64, i64)>) = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM login_failures WHERE failed_at <= $1").bind(account_since).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO login_failures (account_hash, address, failed_at) VALUES ($1, $2, $3)")
                .bind(account_hash).bind(address).bind(now).execute(&mut *tx).await?;
            let last: Option<(i64, i64)> = sqlx::query_as(
                "SELECT CAST(strikes AS BIGINT), locked_at FROM login_lockouts WHERE account_hash = $1 AND address = $2")
                .bind(account_hash).bind(address).fetch_optional(&mut *tx).await?;
            let since = last.map_or(pair_since, |(_, at)| at.max(pair_since));
            let (pair,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM login_failures WHERE account_hash = $1 AND address = $2 AND failed_at > $3")
                .bind(account_hash).bind(address).bind(since).fetch_one(&mut *tx).await?;
            let (account,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM login_failures WHERE account_hash = $1 AND failed_at > $2")
                .bind(account_hash).bind(account_since).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((pair, account, last))
        }.await)?;
        Ok(LoginFailures {
            pair: u32::try_from(pair).unwrap_or(u32::MAX),
            account: u32::try_from(account).unwrap_or(u32::MAX),
            last_lockout: last.map(|(strikes, at)| (u32::try_from(strikes).unwrap_or(u32::MAX), at)),
        })
    }

    /// The account's failed logins (from every address, every node) since `since`.
    pub async fn account_failures(self, account_hash: &str, since: i64) -> StoreResult<u32> {
        let (n,): (i64,) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM login_failures WHERE account_hash = $1 AND failed_at > $2")
            .bind(account_hash).bind(since).fetch_one(pool).await)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The pair signed in: its failures no longer count towards its lockout (they still count towards
    /// the account's delay, without their address), and its ended lockouts are forgotten.
    pub async fn login_succeeded(self, account_hash: &str, address: &str, now: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE login_failures SET address = '' WHERE account_hash = $1 AND address = $2")
            .bind(account_hash).bind(address).execute(pool).await.map(|_| ()))?;
        on_pool!(self.0, pool => sqlx::query("DELETE FROM login_lockouts WHERE account_hash = $1 AND address = $2 AND locked_until <= $3")
            .bind(account_hash).bind(address).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Until when the pair is locked out, if it is at `now`.
    pub async fn login_locked_until(self, account_hash: &str, address: &str, now: i64) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT locked_until FROM login_lockouts WHERE account_hash = $1 AND address = $2 AND locked_until > $3")
            .bind(account_hash).bind(address).bind(now).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// The lockouts in force at `now`, latest first (at most 1000).
    pub async fn login_lockouts(self, now: i64) -> StoreResult<Vec<LoginLockout>> {
        let rows: Vec<LoginLockout> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT u.username, l.user_id, l.address, l.locked_at, l.locked_until, CAST(l.strikes AS BIGINT) AS strikes
             FROM login_lockouts l LEFT JOIN users u ON u.id = l.user_id
             WHERE l.locked_until > $1 ORDER BY l.locked_at DESC LIMIT 1000")
            .bind(now).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Lifts every lockout of an account name (by its keyed hash), from every address, and forgets
    /// its failures and ended lockouts (its delays and doubling start afresh on every node); returns
    /// how many lockouts were in force.
    pub async fn unlock_login(self, account_hash: &str, now: i64) -> StoreResult<u64> {
        let done = on_pool!(self.0, pool => sqlx::query(
            "DELETE FROM login_lockouts WHERE account_hash = $1 AND locked_until > $2")
            .bind(account_hash).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        on_pool!(self.0, pool => sqlx::query("DELETE FROM login_lockouts WHERE account_hash = $1")
            .bind(account_hash).execute(pool).await.map(|_| ()))?;
        on_pool!(self.0, pool => sqlx::query("DELETE FROM login_failures WHERE account_hash = $1")
            .bind(account_hash).execute(pool).await.map(|_| ()))?;
        Ok(done)
    }
}

/// A lockout to record ([`Accounts::lock_login`]): the pair (`account_hash`, `address`), the account
/// if one has that name, when it starts and ends, and how many lockouts the pair has had.
#[derive(Debug, Clone, Copy)]
pub struct NewLockout<'a> {
    pub account_hash: &'a str,
    pub address: &'a str,
    pub user_id: Option<&'a str>,
    pub now: i64,
    pub until: i64,
    pub strikes: u32,
}

/// What an admin may set on an account (checked by [`crate`]'s account rules before it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFields {
    pub display_name: String,
    pub role: Role,
    pub helplines: Vec<String>,
    pub backup_helplines: Vec<String>,
    pub languages: Vec<String>,
    pub capacity: i64,
    pub extension: Option<String>,
    pub senior: bool,
    pub districts: Vec<String>,
}

impl Accounts<'_> {
    /// Sets every field an admin edits on an account at once; `NotFound` for an unknown id.
    pub async fn set_fields(self, id: &str, f: &AccountFields) -> StoreResult<()> {
        let done = on_pool!(self.0, pool => sqlx::query(
            "UPDATE users SET display_name = $1, role = $2, helplines = $3, backup_helplines = $4, languages = $5,
                 capacity = $6, extension = $7, senior = $8, districts = $9 WHERE id = $10")
            .bind(&f.display_name).bind(f.role.as_str()).bind(join_list(&f.helplines)).bind(join_list(&f.backup_helplines))
            .bind(join_list(&f.languages)).bind(f.capacity).bind(f.extension.as_deref()).bind(f.senior)
            .bind(join_list(&f.districts)).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Every account's districts, by account id (accounts without any left out).
    pub async fn all_districts(self) -> StoreResult<std::collections::HashMap<String, Vec<String>>> {
        let rows: Vec<(String, String)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, districts FROM users WHERE districts <> ''").fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(id, d)| (id, split_list(&d))).collect())
    }

    /// How many enabled admin accounts there are (the last one may not be disabled nor demoted).
    pub async fn enabled_admins(self) -> StoreResult<i64> {
        let (n,): (i64,) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = FALSE").fetch_one(pool).await)?;
        Ok(n)
    }

    /// Whether the account has a confirmed second factor.
    pub async fn totp_enabled(self, id: &str) -> StoreResult<bool> {
        let row: Option<(bool,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT totp_enabled FROM users WHERE id = $1").bind(id).fetch_optional(pool).await)?;
        Ok(row.is_some_and(|r| r.0))
    }

    /// Records a one-time reset code (its hash) for an account, valid until `expires_at`; the account's
    /// earlier unused codes are void from now on.
    pub async fn create_reset(self, user_id: &str, code_hash: &str, by: &str, now: i64, expires_at: i64) -> StoreResult<()> {
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM password_resets WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO password_resets (code_hash, user_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(code_hash).bind(user_id).bind(by).bind(now).bind(expires_at).execute(&mut *tx).await?;
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// The account a reset code (by hash) is for, while it is unused and unexpired at `now`.
    pub async fn reset_account(self, code_hash: &str, now: i64) -> StoreResult<Option<User>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT user_id FROM password_resets WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(code_hash).bind(now).fetch_optional(pool).await)?;
        match row {
            Some((id,)) => self.user(&id).await,
            None => Ok(None),
        }
    }

    /// Uses up a reset code and sets the account's new password hash in one transaction: false (nothing
    /// changed) when the code is unknown, used (also by a request racing this one) or expired at `now`.
    pub async fn redeem_reset(self, code_hash: &str, user_id: &str, password_hash: &str, now: i64) -> StoreResult<bool> {
        let used = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE password_resets SET used_at = $1 WHERE code_hash = $2 AND user_id = $3 AND used_at IS NULL AND expires_at > $1")
                .bind(now).bind(code_hash).bind(user_id).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(password_hash).bind(user_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n == 1)
        }.await)?;
        Ok(used)
    }
}

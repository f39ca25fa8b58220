//! Messaging channels (`channels()`): the channels' settings (credentials sealed), their
//! conversations (the reply address sealed, the sender known by a keyed hash only), the provider
//! ids of inbound messages (a retry is stored once) and the durable outbox of replies.

use super::sealed::place;
use super::{new_id, on_pool, on_writer, Store, StoreError, StoreResult};

/// A channel as listed: no credentials.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ChannelSummary {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub helpline: String,
    pub language: String,
    pub public_url: String,
    pub api_base: String,
    pub account: Option<String>,
    pub sender: Option<String>,
    pub idle_limit_ms: i64,
    pub created_at: i64,
    pub removed_at: Option<i64>,
}

/// A channel with its credentials opened (for the server's own use only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    pub summary: ChannelSummary,
    /// The provider's credential (Kannel's sendsms password, a bot token).
    pub token: String,
    /// What the provider must present on its way in.
    pub inbound_secret: String,
}

/// What `channel add` stores.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub kind: String,
    pub helpline: String,
    pub language: String,
    pub public_url: String,
    pub api_base: String,
    pub account: Option<String>,
    pub sender: Option<String>,
    pub token: String,
    pub inbound_secret: String,
    pub idle_limit_ms: i64,
}

/// A messaging conversation, its address opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub contact_id: String,
    pub channel_id: String,
    pub sender_hash: String,
    /// None once forgotten (retention).
    pub address: Option<String>,
    pub last_activity: i64,
    pub started_at: i64,
    pub closed_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ConversationRow {
    contact_id: String,
    channel_id: String,
    sender_hash: String,
    address: Option<String>,
    last_activity: i64,
    started_at: i64,
    closed_at: Option<i64>,
}

/// An open conversation of a contact that a counsellor answered, with its channel's idle limit.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenConversation {
    pub contact_id: String,
    pub state: String,
    pub last_activity: i64,
    pub idle_limit_ms: i64,
}

/// A row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub contact_id: String,
    pub seq: i64,
    pub channel_id: String,
    pub state: String,
    pub attempts: i64,
    pub next_at: i64,
    pub provider_ref: Option<String>,
    pub last_error: Option<String>,
}

/// The messaging channels view.
#[derive(Clone, Copy)]
pub struct Channels<'a>(pub(super) &'a Store);

const SUMMARY: &str = "id, name, kind, helpline, language, public_url, api_base, account, sender, idle_limit_ms, created_at, removed_at";
const OUTBOX: &str = "contact_id, seq, channel_id, state, attempts, next_at, provider_ref, last_error";

impl Channels<'_> {
    /// Stores a new channel (its credentials sealed); `Conflict` when the name is taken.
    pub async fn add(self, c: &NewChannel, now: i64) -> StoreResult<ChannelSummary> {
        let id = new_id();
        let token = self.0.seal(place::CHANNEL_TOKEN, &id, &c.token)?;
        let secret = self.0.seal(place::CHANNEL_INBOUND_SECRET, &id, &c.inbound_secret)?;
        on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO messaging_channels (id, name, kind, helpline, language, public_url, api_base, account, sender, token,
                inbound_secret, idle_limit_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
            .bind(&id).bind(&c.name).bind(&c.kind).bind(&c.helpline).bind(&c.language).bind(&c.public_url).bind(&c.api_base)
            .bind(&c.account).bind(&c.sender).bind(&token).bind(&secret).bind(c.idle_limit_ms).bind(now)
            .execute(pool).await.map(|_| ()))
        .map_err(|e| StoreError::from_insert(e, "a channel of that name exists"))?;
        self.summary(&id).await?.ok_or(StoreError::NotFound)
    }

    async fn summary(self, id: &str) -> StoreResult<Option<ChannelSummary>> {
        let sql = format!("SELECT {SUMMARY} FROM messaging_channels WHERE id = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// Every channel not removed, by name.
    pub async fn list(self) -> StoreResult<Vec<ChannelSummary>> {
        let sql = format!("SELECT {SUMMARY} FROM messaging_channels WHERE removed_at IS NULL ORDER BY name");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
    }

    /// Removes a channel (it takes no more messages; its row stays for its conversations). False: no such channel.
    pub async fn remove(self, name: &str, now: i64) -> StoreResult<bool> {
        let n = on_writer!(self.0, pool => sqlx::query("UPDATE messaging_channels SET removed_at = $1 WHERE name = $2 AND removed_at IS NULL")
            .bind(now).bind(name).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// A channel not removed, by kind and name, its credentials opened.
    pub async fn active(self, kind: &str, name: &str) -> StoreResult<Option<ChannelConfig>> {
        let sql = format!("SELECT {SUMMARY} FROM messaging_channels WHERE kind = $1 AND name = $2 AND removed_at IS NULL");
        let found: Option<ChannelSummary> =
            on_pool!(self.0, pool => sqlx::query_as(&sql).bind(kind).bind(name).fetch_optional(pool).await)?;
        match found {
            Some(s) => self.config(s).await.map(Some),
            None => Ok(None),
        }
    }

    /// A channel by id (removed or not: its conversations' replies still go out), credentials opened.
    pub async fn by_id(self, id: &str) -> StoreResult<Option<ChannelConfig>> {
        match self.summary(id).await? {
            Some(s) => self.config(s).await.map(Some),
            None => Ok(None),
        }
    }

    async fn config(self, summary: ChannelSummary) -> StoreResult<ChannelConfig> {
        let (token, secret): (String, String) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT token, inbound_secret FROM messaging_channels WHERE id = $1").bind(&summary.id).fetch_one(pool).await)?;
        let token = self.0.open(place::CHANNEL_TOKEN, &summary.id, &token)?;
        let inbound_secret = self.0.open(place::CHANNEL_INBOUND_SECRET, &summary.id, &secret)?;
        Ok(ChannelConfig { summary, token, inbound_secret })
    }

    /// The open conversation of this sender on this channel, if any.
    pub async fn open_conversation(self, channel_id: &str, sender_hash: &str) -> StoreResult<Option<String>> {
        let found: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT contact_id FROM channel_conversations WHERE channel_id = $1 AND sender_hash = $2 AND closed_at IS NULL
             ORDER BY started_at DESC LIMIT 1")
            .bind(channel_id).bind(sender_hash).fetch_optional(pool).await)?;
        Ok(found.map(|r| r.0))
    }

    /// Stores a new conversation of `contact_id`: its reply address sealed.
    pub async fn start_conversation(
        self,
        contact_id: &str,
        channel_id: &str,
        sender_hash: &str,
        address: &str,
        now: i64,
    ) -> StoreResult<()> {
        let sealed = self.0.seal(place::CHANNEL_ADDRESS, contact_id, address)?;
        on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO channel_conversations (contact_id, channel_id, sender_hash, address, last_activity, started_at)
             VALUES ($1, $2, $3, $4, $5, $5)")
            .bind(contact_id).bind(channel_id).bind(sender_hash).bind(&sealed).bind(now)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A conversation, its address opened.
    pub async fn conversation(self, contact_id: &str) -> StoreResult<Option<Conversation>> {
        let row: Option<ConversationRow> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT contact_id, channel_id, sender_hash, address, last_activity, started_at, closed_at
             FROM channel_conversations WHERE contact_id = $1").bind(contact_id).fetch_optional(pool).await)?;
        let Some(r) = row else { return Ok(None) };
        let address = self.0.open_opt(place::CHANNEL_ADDRESS, &r.contact_id, r.address.as_deref())?;
        Ok(Some(Conversation {
            contact_id: r.contact_id,
            channel_id: r.channel_id,
            sender_hash: r.sender_hash,
            address,
            last_activity: r.last_activity,
            started_at: r.started_at,
            closed_at: r.closed_at,
        }))
    }

    /// Something happened in the conversation at `now` (a message either way).
    pub async fn touch(self, contact_id: &str, now: i64) -> StoreResult<()> {
        on_writer!(self.0, pool => sqlx::query("UPDATE channel_conversations SET last_activity = $1 WHERE contact_id = $2 AND last_activity < $1")
            .bind(now).bind(contact_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The conversation ended (its contact did).
    pub async fn close(self, contact_id: &str, now: i64) -> StoreResult<()> {
        on_writer!(self.0, pool => sqlx::query("UPDATE channel_conversations SET closed_at = $1 WHERE contact_id = $2 AND closed_at IS NULL")
            .bind(now).bind(contact_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// How many other contacts came from the same keyed hash since `since`: messaging conversations on
    /// any channel, and calls (the same keyed hash of a number).
    pub async fn repeat_count(self, contact_id: &str, sender_hash: &str, since: i64) -> StoreResult<i64> {
        let (n,): (i64,) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM channel_conversations WHERE sender_hash = $1 AND contact_id <> $2 AND started_at >= $3)
                  + (SELECT COUNT(*) FROM calls WHERE caller_hash = $1 AND contact_id <> $2 AND offered_at >= $3)")
            .bind(sender_hash).bind(contact_id).bind(since).fetch_one(pool).await)?;
        Ok(n)
    }

    /// The contact an inbound message of the provider's id `provider_id` went to, if it came before.
    pub async fn inbound_seen(self, channel_id: &str, provider_id: &str) -> StoreResult<Option<String>> {
        let found: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT contact_id FROM channel_inbound WHERE channel_id = $1 AND provider_id = $2")
            .bind(channel_id).bind(provider_id).fetch_optional(pool).await)?;
        Ok(found.map(|r| r.0))
    }

    /// Remembers an inbound message by the provider's id (once).
    pub async fn record_inbound(self, channel_id: &str, provider_id: &str, contact_id: &str, now: i64) -> StoreResult<()> {
        on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO channel_inbound (channel_id, provider_id, contact_id, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel_id, provider_id) DO NOTHING")
            .bind(channel_id).bind(provider_id).bind(contact_id).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Open conversations whose contact is not waiting any more, with their idle limits.
    pub async fn open_conversations(self) -> StoreResult<Vec<OpenConversation>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT cc.contact_id, c.state, cc.last_activity, ch.idle_limit_ms
             FROM channel_conversations cc
             JOIN contacts c ON c.id = cc.contact_id
             JOIN messaging_channels ch ON ch.id = cc.channel_id
             WHERE cc.closed_at IS NULL")
            .fetch_all(pool).await)?)
    }

    /// Writes an outbox row for every counsellor message of a messaging conversation since `since`
    /// that has none (the messages are committed by the relay; this makes each one's sending durable).
    /// Returns how many were added.
    pub async fn enqueue(self, now: i64, since: i64) -> StoreResult<u64> {
        Ok(on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO channel_outbox (contact_id, seq, channel_id, state, attempts, next_at, created_at, updated_at)
             SELECT m.contact_id, m.seq, cc.channel_id, 'pending', 0, $1, $1, $1
             FROM channel_conversations cc JOIN messages m ON m.contact_id = cc.contact_id
             WHERE m.sender = 'counsellor' AND cc.address IS NOT NULL AND m.at >= $2
             ON CONFLICT (contact_id, seq) DO NOTHING")
            .bind(now).bind(since).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// Pending rows, oldest first (at most `limit`).
    pub async fn pending(self, limit: i64) -> StoreResult<Vec<OutboxRow>> {
        let sql = format!("SELECT {OUTBOX} FROM channel_outbox WHERE state = 'pending' ORDER BY next_at, contact_id, seq LIMIT $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(limit).fetch_all(pool).await)?)
    }

    /// An outbox row.
    pub async fn outbox_row(self, contact_id: &str, seq: i64) -> StoreResult<Option<OutboxRow>> {
        let sql = format!("SELECT {OUTBOX} FROM channel_outbox WHERE contact_id = $1 AND seq = $2");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).bind(seq).fetch_optional(pool).await)?)
    }

    /// Takes a pending row for one attempt (any node): its `next_at` moves to `lease_until` and its
    /// attempts count up, if nobody took it meanwhile. True: this caller holds the attempt.
    pub async fn claim(self, row: &OutboxRow, lease_until: i64, now: i64) -> StoreResult<bool> {
        let n = on_writer!(self.0, pool => sqlx::query(
            "UPDATE channel_outbox SET next_at = $1, attempts = attempts + 1, updated_at = $2
             WHERE contact_id = $3 AND seq = $4 AND state = 'pending' AND next_at = $5 AND attempts = $6")
            .bind(lease_until).bind(now).bind(&row.contact_id).bind(row.seq).bind(row.next_at).bind(row.attempts)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Records what an attempt (or a delivery report) made of a row: its state, the provider's
    /// reference, when to try again, the error. Only a row in `from` states changes; true if it did.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        self,
        contact_id: &str,
        seq: i64,
        from: &[&str],
        state: &str,
        next_at: i64,
        provider_ref: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let allowed = from.iter().map(|s| format!("'{}'", s.replace('\'', ""))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE channel_outbox SET state = $1, next_at = $2, provider_ref = COALESCE($3, provider_ref), last_error = $4, updated_at = $5
             WHERE contact_id = $6 AND seq = $7 AND state IN ({allowed})"
        );
        let n = on_writer!(self.0, pool => sqlx::query(&sql)
            .bind(state).bind(next_at).bind(provider_ref).bind(error).bind(now).bind(contact_id).bind(seq)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// The text of a stored message (opened), if it is there.
    pub async fn message_text(self, contact_id: &str, seq: i64) -> StoreResult<Option<String>> {
        let found: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT body FROM messages WHERE contact_id = $1 AND seq = $2").bind(contact_id).bind(seq).fetch_optional(pool).await)?;
        match found {
            Some((body,)) => Ok(Some(self.0.open(place::MESSAGE_BODY, &super::messages::message_row(contact_id, seq), &body)?)),
            None => Ok(None),
        }
    }
}

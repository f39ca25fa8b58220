//! Durable commands to telephone exchanges: stored with the step that caused them, pending until the exchange acknowledges them, superseded when a later step makes them stale.

use super::{both_engines, new_id, on_pool, on_writer, BeginWrite, Store, StoreResult};

/// Every command kind.
pub const ALL_KINDS: &[&str] = &["connect", "cancel", "hold", "unhold", "hangup"];

/// A command to store and deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// The command id (also in `frame`).
    pub id: String,
    pub gateway_id: String,
    pub call_id: String,
    pub contact_id: Option<String>,
    /// `connect`, `cancel`, `hold`, `unhold` or `hangup`.
    pub kind: &'static str,
    /// The JSON frame sent to the exchange.
    pub frame: String,
    pub created_at: i64,
    /// The call's pending commands of these kinds are stale once this one exists (e.g. a new
    /// `connect` or a `cancel` supersedes an older `connect`).
    pub supersedes: &'static [&'static str],
}

/// A durable change to the command table, committed with a routing step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandChange {
    Issue(NewCommand),
    /// The call's pending commands of these kinds are stale (the call was offered again, or ended).
    Supersede {
        gateway_id: String,
        call_id: String,
        kinds: &'static [&'static str],
        at: i64,
    },
}

impl CommandChange {
    /// Whether this change makes `command` (of the same gateway) stale.
    pub fn supersedes(&self, gateway_id: &str, call_id: &str, kind: &str) -> bool {
        let (g, c, kinds) = match self {
            CommandChange::Issue(n) => (&n.gateway_id, &n.call_id, n.supersedes),
            CommandChange::Supersede { gateway_id, call_id, kinds, .. } => (gateway_id, call_id, *kinds),
        };
        g == gateway_id && c == call_id && kinds.contains(&kind)
    }
}

/// The `UPDATE` that supersedes a call's pending commands of `kinds` (known constants, never client input).
pub(crate) fn supersede_sql(kinds: &[&str]) -> String {
    let list = kinds.iter().filter(|k| ALL_KINDS.contains(k)).map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ");
    format!(
        "UPDATE telephony_commands SET superseded_at = $1
         WHERE gateway_id = $2 AND call_id = $3 AND acked_at IS NULL AND superseded_at IS NULL AND kind IN ({})",
        if list.is_empty() { "''".to_string() } else { list }
    )
}

/// Applying a [`CommandChange`] inside a write transaction.
pub(crate) trait ApplyCommandChange {
    async fn apply_command_change(&mut self, change: &CommandChange) -> Result<(), sqlx::Error>;
}

both_engines!(impl ApplyCommandChange for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn apply_command_change(&mut self, change: &CommandChange) -> Result<(), sqlx::Error> {
        match change {
            CommandChange::Issue(n) => {
                if !n.supersedes.is_empty() {
                    sqlx::query(&supersede_sql(n.supersedes))
                        .bind(n.created_at).bind(&n.gateway_id).bind(&n.call_id)
                        .execute(&mut *self).await?;
                }
                sqlx::query(
                    "INSERT INTO telephony_commands (id, gateway_id, call_id, contact_id, kind, frame, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&n.id).bind(&n.gateway_id).bind(&n.call_id).bind(&n.contact_id).bind(n.kind)
                    .bind(&n.frame).bind(n.created_at)
                    .execute(&mut *self).await?;
            }
            CommandChange::Supersede { gateway_id, call_id, kinds, at } => {
                sqlx::query(&supersede_sql(kinds)).bind(*at).bind(gateway_id).bind(call_id)
                    .execute(&mut *self).await?;
            }
        }
        Ok(())
    }
});

/// A command waiting for its exchange's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingCommand {
    pub id: String,
    pub call_id: String,
    pub kind: String,
    pub frame: String,
}

/// What an exchange's `command_ack` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// Acknowledged now.
    Now,
    /// Acknowledged before (a repeat): nothing changed.
    Before,
    /// No such command for this exchange.
    Unknown,
}

/// A view of the store: durable commands to exchanges: issue, claim, acknowledge, release ([`Store::commands`]).
#[derive(Clone, Copy, Debug)]
pub struct Commands<'a>(pub(super) &'a Store);

impl Commands<'_> {
    /// Stores one command (superseding what it makes stale), with a line in its contact's event
    /// log (`log`: kind and counsellor), in one transaction.
    pub async fn issue_command(self, command: &NewCommand, log: Option<(&str, &str)>) -> StoreResult<()> {
        let change = CommandChange::Issue(command.clone());
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            tx.apply_command_change(&change).await?;
            if let (Some((kind, counsellor)), Some(contact)) = (log, &command.contact_id) {
                sqlx::query("INSERT INTO contact_events (id, contact_id, at, kind, counsellor_id, detail) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(new_id()).bind(contact).bind(command.created_at).bind(kind).bind(counsellor).bind(&command.id)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// An exchange's commands not yet acknowledged nor superseded, oldest first.
    pub async fn pending_commands(self, gateway_id: &str) -> StoreResult<Vec<PendingCommand>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, call_id, kind, frame FROM telephony_commands
             WHERE gateway_id = $1 AND acked_at IS NULL AND superseded_at IS NULL ORDER BY created_at, id")
            .bind(gateway_id).fetch_all(pool).await)?)
    }

    /// Every command of a call, oldest first: (kind, acknowledged, superseded), for tests and operators.
    pub async fn call_commands(self, gateway_id: &str, call_id: &str) -> StoreResult<Vec<(String, bool, bool)>> {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT kind, acked_at, superseded_at FROM telephony_commands WHERE gateway_id = $1 AND call_id = $2 ORDER BY created_at, id")
            .bind(gateway_id).bind(call_id).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(k, a, s)| (k, a.is_some(), s.is_some())).collect())
    }

    /// The exchange acknowledges a command; from now on the exchange counts as one that acknowledges.
    /// An acknowledged command counts as carried out, never as superseded, whatever raced it.
    pub async fn ack_command(self, gateway_id: &str, command_id: &str, at: i64) -> StoreResult<Acked> {
        let acked = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let found: Option<(Option<i64>,)> = sqlx::query_as(
                "SELECT acked_at FROM telephony_commands WHERE id = $1 AND gateway_id = $2")
                .bind(command_id).bind(gateway_id).fetch_optional(&mut *tx).await?;
            let acked = match found {
                None => Acked::Unknown,
                Some((Some(_),)) => Acked::Before,
                Some((None,)) => {
                    // The exchange carried it out, even if a later step had made it stale meanwhile
                    // (an ack racing a newer `unhold` or the call's end): the ack wins.
                    sqlx::query("UPDATE telephony_commands SET acked_at = $1, superseded_at = NULL WHERE id = $2")
                        .bind(at).bind(command_id).execute(&mut *tx).await?;
                    Acked::Now
                }
            };
            if acked != Acked::Unknown {
                sqlx::query("UPDATE gateways SET acks_commands = TRUE WHERE id = $1 AND acks_commands = FALSE")
                    .bind(gateway_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(acked)
        }.await)?;
        Ok(acked)
    }

    /// For an exchange that does not acknowledge commands: these were handed over (on its socket or
    /// in a webhook answer), which is all it will ever confirm.
    pub async fn commands_handed_over(self, gateway_id: &str, ids: &[String], at: i64) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            for id in ids {
                sqlx::query("UPDATE telephony_commands SET acked_at = $1 WHERE id = $2 AND gateway_id = $3 AND acked_at IS NULL")
                    .bind(at).bind(id).bind(gateway_id).execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// Claims for socket `conn` of node `node` every pending command of `gateway` (only `only`, if
    /// given) that no other socket holds, and returns the ones it holds now, oldest first: what it
    /// alone may hand to the exchange. One transaction; a concurrent claim by another node waits for
    /// it and then finds the commands taken.
    pub async fn claim_commands(
        self,
        gateway_id: &str,
        node: &str,
        conn: u64,
        only: Option<&str>,
        at: i64,
    ) -> StoreResult<Vec<PendingCommand>> {
        let conn = conn as i64;
        let pending = "gateway_id = $1 AND acked_at IS NULL AND superseded_at IS NULL AND ($2 = '' OR id = $2)";
        let claim = format!(
            "UPDATE telephony_commands SET handed_node = $3, handed_conn = $4,
                 handed_at = CASE WHEN handed_node IS NULL THEN $5 ELSE handed_at END
             WHERE {pending} AND (handed_node IS NULL OR (handed_node = $3 AND handed_conn = $4))"
        );
        let held = format!(
            "SELECT id, call_id, kind, frame FROM telephony_commands
             WHERE {pending} AND handed_node = $3 AND handed_conn = $4 ORDER BY created_at, id"
        );
        let only = only.unwrap_or("");
        Ok(on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(&claim).bind(gateway_id).bind(only).bind(node).bind(conn).bind(at).execute(&mut *tx).await?;
            let held: Vec<PendingCommand> =
                sqlx::query_as(&held).bind(gateway_id).bind(only).bind(node).bind(conn).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(held)
        }.await)?)
    }

    /// Releases the commands socket `conn` of node `node` holds and has not had acknowledged (it
    /// closed): another socket may be handed them. Returns how many.
    pub async fn release_commands(self, gateway_id: &str, node: &str, conn: u64) -> StoreResult<u64> {
        Ok(on_pool!(self.0, pool => sqlx::query(
            "UPDATE telephony_commands SET handed_node = NULL, handed_conn = NULL, handed_at = NULL
             WHERE gateway_id = $1 AND handed_node = $2 AND handed_conn = $3 AND acked_at IS NULL")
            .bind(gateway_id).bind(node).bind(conn as i64).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// Releases every claim of node `node` (all exchanges): the node starts again, so the sockets
    /// that held them are gone.
    pub async fn release_node_commands(self, node: &str) -> StoreResult<u64> {
        Ok(on_pool!(self.0, pool => sqlx::query(
            "UPDATE telephony_commands SET handed_node = NULL, handed_conn = NULL, handed_at = NULL
             WHERE handed_node = $1 AND acked_at IS NULL")
            .bind(node).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// Who holds `gateway`'s pending commands: (node, socket id, when it was handed the oldest it
    /// holds unacknowledged) per socket.
    pub async fn command_holders(self, gateway_id: &str) -> StoreResult<Vec<(String, u64, i64)>> {
        let rows: Vec<(String, i64, i64)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT handed_node, handed_conn, MIN(handed_at) FROM telephony_commands
             WHERE gateway_id = $1 AND handed_node IS NOT NULL AND acked_at IS NULL AND superseded_at IS NULL
             GROUP BY handed_node, handed_conn")
            .bind(gateway_id).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(node, conn, at)| (node, conn as u64, at)).collect())
    }

    /// Marks the exchange as one that acknowledges commands (it said so when connecting).
    pub async fn set_gateway_acks_commands(self, gateway_id: &str) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE gateways SET acks_commands = TRUE WHERE id = $1 AND acks_commands = FALSE")
            .bind(gateway_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Whether the exchange has ever acknowledged a command (then commands wait for its `command_ack`).
    pub async fn gateway_acks_commands(self, gateway_id: &str) -> StoreResult<bool> {
        let row: Option<(bool,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT acks_commands FROM gateways WHERE id = $1").bind(gateway_id).fetch_optional(pool).await)?;
        Ok(row.is_some_and(|r| r.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{seeded, write_tx};

    fn command(gateway: &str, id: &str, kind: &'static str, supersedes: &'static [&'static str], at: i64) -> CommandChange {
        CommandChange::Issue(NewCommand {
            id: id.into(),
            gateway_id: gateway.into(),
            call_id: "call".into(),
            contact_id: None,
            kind,
            frame: format!("{{\"id\":\"{id}\"}}"),
            created_at: at,
            supersedes,
        })
    }

    /// `apply_command_change` stores a command after superseding what it makes stale, and supersedes alone.
    #[tokio::test]
    async fn command_changes_issue_and_supersede_in_the_callers_transaction() {
        let store = seeded().await;
        let gw = store.exchanges().create_gateway("exchange", "hash", 1).await.expect("gateway").id;
        let gw = gw.as_str();
        let mut tx = write_tx(&store).await;
        tx.apply_command_change(&command(gw, "c1", "connect", &[], 1)).await.expect("issue");
        tx.apply_command_change(&command(gw, "c2", "hold", &[], 2)).await.expect("issue");
        tx.apply_command_change(&command(gw, "c3", "connect", &["connect"], 3)).await.expect("issue, superseding c1");
        tx.commit().await.expect("commit");
        let state = |rows: Vec<(String, bool, bool)>| rows.into_iter().map(|(k, _, superseded)| (k, superseded)).collect::<Vec<_>>();
        let s = |k: &str, b| (k.to_string(), b);
        assert_eq!(
            state(store.commands().call_commands(gw, "call").await.expect("read")),
            vec![s("connect", true), s("hold", false), s("connect", false)]
        );

        let mut tx = write_tx(&store).await;
        let all = CommandChange::Supersede { gateway_id: gw.into(), call_id: "call".into(), kinds: &["connect", "hold"], at: 4 };
        tx.apply_command_change(&all).await.expect("supersede");
        tx.commit().await.expect("commit");
        assert_eq!(
            state(store.commands().call_commands(gw, "call").await.expect("read")),
            vec![s("connect", true), s("hold", true), s("connect", true)]
        );
        assert!(store.commands().pending_commands(gw).await.expect("read").is_empty());
    }

    #[test]
    fn supersede_sql_lists_only_known_kinds() {
        let sql = supersede_sql(&["connect", "x'; DROP TABLE users; --"]);
        assert!(sql.ends_with("kind IN ('connect')"), "{sql}");
        assert!(supersede_sql(&[]).ends_with("kind IN ('')"));
    }
}

//! The phone channel's side of the core: the exchanges' open sockets, and the delivery of durable
//! commands to them (`connect`, `cancel`, `hold`, …, committed with the routing step that caused them,
//! then handed to one socket of the exchange at a time, on whatever node, until acknowledged), and a
//! call's routing facts with the caller's history. Telephony's webhook and event handling sit above
//! in `crate::telephony`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::chat::hub::{Outbox, Outgoing};
use crate::protocol::{EarlierContact, TelephonyCommand, EARLIER_CONTACTS, EARLIER_SUMMARY_CHARS};
use crate::store::calls::EarlierForm;
use crate::store::commands::NewCommand;
use crate::store::new_id;

/// A day in ms.
const DAY_MS: i64 = 86_400_000;

/// How often the exchanges' commands that no socket holds are handed again to their sockets (a
/// single node's loop, and in cluster mode the link's sweep, which also knows which nodes are alive).
pub const GATEWAY_SWEEP: Duration = Duration::from_secs(2);

/// Repeat callers are counted over this many days.
pub const REPEAT_DAYS: i64 = 30;

/// The exchanges' open sockets. Commands themselves live in the database (`store::commands`)
/// until acknowledged; this only hands them to a socket, at most once per socket.
#[derive(Default)]
pub struct Gateways {
    inner: Mutex<HashMap<String, Vec<GatewaySocket>>>,
    /// Cluster mode: tells the other nodes that an exchange has a command no socket here took.
    wake_hook: std::sync::OnceLock<WakeHook>,
    /// This process in delivery claims: the cluster node's id, or [`LOCAL_NODE`].
    node: std::sync::OnceLock<String>,
}

/// The node name in delivery claims on a single node.
pub const LOCAL_NODE: &str = "local";

/// Cluster mode: `hook(gateway)` wakes the other nodes for an exchange's pending commands.
pub type WakeHook = Box<dyn Fn(&str) + Send + Sync>;

/// Command ids remembered per socket (so a command is not handed to the same socket twice).
const SENT_MEMORY: usize = 65_536;

struct GatewaySocket {
    outbox: Outbox,
    /// The exchange acknowledges commands (else handing one over counts as its acknowledgement).
    acks: bool,
    sent: HashSet<String>,
    order: VecDeque<String>,
}

impl GatewaySocket {
    /// Queues the frame unless this socket had it already; false when the socket is gone or too slow.
    fn push(&mut self, id: &str, frame: &str) -> bool {
        if self.sent.contains(id) {
            return true;
        }
        if !self.outbox.push(Outgoing::Frame(frame.to_string().into())) {
            return false;
        }
        self.sent.insert(id.to_string());
        self.order.push_back(id.to_string());
        if self.order.len() > SENT_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.sent.remove(&old);
            }
        }
        true
    }
}

impl Gateways {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<GatewaySocket>>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cluster mode: `hook(gateway)` runs when a command of `gateway` found no socket on this node.
    pub fn set_wake_hook(&self, hook: WakeHook) {
        let _ = self.wake_hook.set(hook);
    }

    /// Cluster mode: this node's id, in the delivery claims of commands handed to its sockets.
    pub fn set_node(&self, node: &str) {
        let _ = self.node.set(node.to_string());
    }

    /// This process in delivery claims.
    pub fn node(&self) -> &str {
        self.node.get().map_or(LOCAL_NODE, String::as_str)
    }

    /// The socket of `gateway` here that a command goes to: `conn` if open, else the newest open one.
    fn pick(&self, gateway: &str, conn: Option<crate::chat::hub::ConnId>) -> Option<crate::chat::hub::ConnId> {
        let inner = self.lock();
        let list = inner.get(gateway)?;
        list.iter().rev().filter(|s| !s.outbox.is_closed()).map(|s| s.outbox.id).find(|id| conn.is_none_or(|c| c == *id))
    }

    /// The exchanges with a socket open here.
    pub fn ids(&self) -> Vec<String> {
        self.lock().iter().filter(|(_, list)| list.iter().any(|s| !s.outbox.is_closed())).map(|(g, _)| g.clone()).collect()
    }

    /// Whether this node holds a socket of `gateway`.
    pub fn connected(&self, gateway: &str) -> bool {
        self.lock().get(gateway).is_some_and(|list| list.iter().any(|s| !s.outbox.is_closed()))
    }

    pub fn attach(&self, gateway: &str, outbox: Outbox, acks: bool) {
        let socket = GatewaySocket { outbox, acks, sent: HashSet::new(), order: VecDeque::new() };
        self.lock().entry(gateway.to_string()).or_default().push(socket);
    }

    pub fn detach(&self, gateway: &str, conn: crate::chat::hub::ConnId) {
        let mut inner = self.lock();
        if let Some(list) = inner.get_mut(gateway) {
            list.retain(|s| s.outbox.id != conn && !s.outbox.is_closed());
            if list.is_empty() {
                inner.remove(gateway);
            }
        }
    }

    /// The exchange sent a `command_ack`: from now on its commands wait for acknowledgements.
    pub fn set_acks(&self, gateway: &str) {
        for socket in self.lock().get_mut(gateway).into_iter().flatten() {
            socket.acks = true;
        }
    }

    /// Hands a stored command to socket `conn` of the exchange. `Some(acks)` when handed over;
    /// None when the socket is gone or too slow (the command waits in the database).
    fn push(&self, gateway: &str, conn: crate::chat::hub::ConnId, id: &str, frame: &str) -> Option<bool> {
        let mut inner = self.lock();
        let list = inner.get_mut(gateway)?;
        list.retain(|s| !s.outbox.is_closed());
        list.iter_mut().find(|s| s.outbox.id == conn).and_then(|s| s.push(id, frame).then_some(s.acks))
    }
}

/// Hands a command just committed to its exchange, if a socket of it is open here (and no other
/// socket holds the command). An exchange that does not acknowledge commands has it marked
/// acknowledged once handed over (at most once, as it expects). Cluster mode: with no socket of the
/// exchange on this node, the other nodes are woken to hand over its pending commands
/// ([`deliver_pending_to`]) to the sockets they hold.
pub async fn deliver(state_store: &crate::store::Store, hub: &crate::chat::hub::Hub, now: i64, gateway: &str, id: &str) {
    if !hand_over(state_store, hub, now, gateway, None, Some(id)).await {
        if let Some(wake) = hub.gateways.wake_hook.get() {
            wake(gateway);
        }
    }
}

/// Hands every command of `gateway` not yet acknowledged, and held by no other socket, to its
/// socket `conn` of this node (None: its newest), in order, each at most once per socket.
pub async fn deliver_pending_to(
    store: &crate::store::Store,
    hub: &crate::chat::hub::Hub,
    now: i64,
    gateway: &str,
    conn: Option<crate::chat::hub::ConnId>,
) {
    hand_over(store, hub, now, gateway, conn, None).await;
}

/// Claims the pending commands of `gateway` (only `only`, if given) for socket `conn` here (None:
/// the newest), then hands it those it holds. One socket at a time holds a command, whatever node
/// its socket is on: the exchange never gets a command on two sockets at once, and gets it on
/// another socket only once the one that held it closed unacknowledged. False when no socket of the
/// exchange is open here.
async fn hand_over(
    store: &crate::store::Store,
    hub: &crate::chat::hub::Hub,
    now: i64,
    gateway: &str,
    conn: Option<crate::chat::hub::ConnId>,
    only: Option<&str>,
) -> bool {
    let Some(conn) = hub.gateways.pick(gateway, conn) else { return false };
    let held = match store.commands().claim_commands(gateway, hub.gateways.node(), conn, only, now).await {
        Ok(held) => held,
        Err(err) => {
            tracing::error!(error = %err, gateway, "claiming telephony commands failed; they go out with the next sweep or connection");
            return true;
        }
    };
    let mut handed = Vec::new();
    for command in held {
        match hub.gateways.push(gateway, conn, &command.id, &command.frame) {
            Some(false) => handed.push(command.id),
            Some(true) => {}
            // Gone or too slow: its session closes and releases what it holds.
            None => break,
        }
    }
    if let Err(err) = store.commands().commands_handed_over(gateway, &handed, now).await {
        tracing::error!(error = %err, gateway, "marking commands handed over failed; they will be sent again");
    }
    true
}

/// Releases the claims on `gateway`'s commands that no open socket stands behind: those of sockets
/// of this node that are closed (a release that failed), and (cluster mode) those of nodes not in
/// `alive` made before `dead_before` (the node died; a node that just started may not be in
/// `alive` yet). True when some were released.
pub async fn release_stale(
    store: &crate::store::Store,
    hub: &crate::chat::hub::Hub,
    gateway: &str,
    alive: &[String],
    dead_before: i64,
) -> bool {
    let holders = match store.commands().command_holders(gateway).await {
        Ok(h) => h,
        Err(err) => {
            tracing::warn!(error = %err, gateway, "reading who holds telephony commands failed");
            return false;
        }
    };
    let me = hub.gateways.node();
    let mut released = false;
    for (node, conn, at) in holders {
        let stale = if node == me { hub.gateways.pick(gateway, Some(conn)).is_none() } else { !alive.contains(&node) && at < dead_before };
        if stale {
            tracing::warn!(gateway, node = %node, conn, "releasing telephony commands held by a socket that is gone");
            released |= store.commands().release_commands(gateway, &node, conn).await.is_ok_and(|n| n > 0);
        }
    }
    released
}

/// How long a socket of an exchange that acknowledges commands may hold one unacknowledged before it
/// is closed ([`close_unresponsive`]): far shorter than the idle timeout, since a caller is waiting.
pub const ACK_WAIT_MS: i64 = 10_000;

/// Closes this node's sockets of `gateway` that have held a command unacknowledged for longer than
/// [`ACK_WAIT_MS`] at `now` (a half-open socket, or a stuck adapter): their commands are released
/// when they close and go to another socket of the exchange. True when one was closed.
pub async fn close_unresponsive(store: &crate::store::Store, hub: &crate::chat::hub::Hub, gateway: &str, now: i64) -> bool {
    let Ok(holders) = store.commands().command_holders(gateway).await else { return false };
    let me = hub.gateways.node();
    let mut closed = false;
    for (node, conn, oldest) in holders {
        if node == me && oldest < now - ACK_WAIT_MS && hub.gateways.pick(gateway, Some(conn)).is_some() {
            tracing::warn!(gateway, conn, waited_ms = now - oldest, "an exchange's socket left a command unacknowledged: closing it");
            closed |=
                hub.push_local(conn, Outgoing::Close { code: crate::protocol::close::UNACKNOWLEDGED, reason: "command not acknowledged" });
        }
    }
    closed
}

/// For every exchange with a socket here: closes sockets that sit on a command unacknowledged
/// ([`close_unresponsive`]), releases the stale claims ([`release_stale`]), then hands
/// the pending commands no socket holds to its socket here. Run every few seconds (by the cluster
/// link on each node, by the server on a single node), so a lost wake-up or a claim whose release
/// failed delays a command, never loses it.
pub async fn sweep(store: &crate::store::Store, hub: &crate::chat::hub::Hub, now: i64, alive: &[String], dead_before: i64) {
    for gateway in hub.gateways.ids() {
        // Mostly nothing waits: a read, and no write transaction.
        if store.commands().pending_commands(&gateway).await.is_ok_and(|p| p.is_empty()) {
            continue;
        }
        close_unresponsive(store, hub, &gateway, now).await;
        release_stale(store, hub, &gateway, alive, dead_before).await;
        deliver_pending_to(store, hub, now, &gateway, None).await;
    }
}

/// A socket of `gateway` closed: the commands it held unacknowledged go to another socket of the
/// exchange, here or (woken) on another node.
pub async fn socket_closed(
    store: &crate::store::Store,
    hub: &crate::chat::hub::Hub,
    now: i64,
    gateway: &str,
    conn: crate::chat::hub::ConnId,
) {
    hub.gateways.detach(gateway, conn);
    match store.commands().release_commands(gateway, hub.gateways.node(), conn).await {
        Ok(0) => {}
        Ok(_) => {
            if !hand_over(store, hub, now, gateway, None, None).await {
                if let Some(wake) = hub.gateways.wake_hook.get() {
                    wake(gateway);
                }
            }
        }
        // The node's next start, or the other nodes once it is gone, release them.
        Err(err) => tracing::error!(error = %err, gateway, "releasing a closed socket's telephony commands failed"),
    }
}

/// A new command for a call, as stored and sent: `make` builds the frame from the command id.
pub fn new_command(
    call: &CallInfo,
    contact: Option<String>,
    now: i64,
    supersedes: &'static [&'static str],
    make: impl FnOnce(String, String) -> TelephonyCommand,
) -> NewCommand {
    let id = new_id();
    let command = make(id.clone(), call.call_id.clone());
    NewCommand {
        id,
        gateway_id: call.gateway_id.clone(),
        call_id: call.call_id.clone(),
        contact_id: contact,
        kind: command.kind(),
        frame: command.to_json(),
        created_at: now,
        supersedes,
    }
}

/// A call's routing facts the engine task keeps while the call is open (they cross nodes with
/// the `StartCall` command, in cluster mode).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallInfo {
    pub gateway_id: String,
    pub call_id: String,
    pub caller_last2: Option<String>,
    /// Earlier contacts from the same number in the last [`REPEAT_DAYS`] days.
    pub repeat: i64,
    /// The latest of them on the call's helpline with a submitted form, newest first.
    pub earlier: Vec<EarlierContact>,
}

/// A call's repeat count and earlier contacts, from stored data (the same after a restart). A
/// failed read is logged and shows nothing: the call is routed all the same.
pub async fn caller_history(store: &crate::store::Store, contact_id: &str) -> (i64, Vec<EarlierContact>) {
    match store.calls().caller_history(contact_id, REPEAT_DAYS * DAY_MS, EARLIER_CONTACTS as i64).await {
        Ok((n, forms)) => (n, forms.into_iter().map(earlier_contact).collect()),
        Err(err) => {
            tracing::error!(error = %err, contact = contact_id, "reading a caller's history failed; the offer shows none");
            (0, Vec::new())
        }
    }
}

/// What an offer shows of an earlier contact's submitted form.
pub fn earlier_contact(f: EarlierForm) -> EarlierContact {
    let form: serde_json::Value = serde_json::from_str(&f.data).unwrap_or_default();
    let text = |key: &str| form.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let categories = form
        .get("categories")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    EarlierContact {
        contact_id: f.contact_id,
        helpline: f.helpline,
        at: crate::protocol::rfc3339(f.queued_at),
        categories,
        risk: f.risk.or_else(|| text("risk")),
        outcome: text("outcome"),
        summary: text("summary").map(|s| shorten(s.trim(), EARLIER_SUMMARY_CHARS)),
    }
}

/// At most `max` characters, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The phone channel (see [`crate::chat::channel`]): the caller is on the line at an exchange, so
/// they hear no frames; they are present until the exchange says the call ended (through a restart
/// too); the routing steps of a call are the exchange's durable commands (`connect`, `cancel`, stale
/// ones superseded), committed with the step.
#[derive(Debug, Default, Clone, Copy)]
pub struct Phone;

impl Phone {
    pub const KIND: &'static str = "call";
}

impl crate::chat::channel::ContactChannel for Phone {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn rules(&self) -> crate::routing::Channel {
        crate::routing::Channel::Call
    }
    fn present_after_restart(&self) -> bool {
        true
    }
    fn deliver(&self, _frame: crate::chat::channel::ToCaller<'_>, _sockets: &[Outbox]) {}
    fn present(&self, _contact: &str, _sockets: usize) -> bool {
        true
    }
    fn exchange_step(&self, output: &crate::routing::Output) -> Option<crate::chat::engine_task::translate::CallStep> {
        crate::chat::engine_task::translate::call_step(output).map(|(_, step)| step)
    }
}

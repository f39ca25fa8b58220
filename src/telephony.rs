//! Phone calls: the gateway interface for telephone exchanges (events in, durable commands out), caller-number hashing, repeat callers' history, console call controls, call records and offline calls.
//!
//! The audio stays in the exchange. An exchange's adapter authenticates with its service token
//! (`helpline gateway add NAME`) and sends events on `/ws/telephony` or `POST /api/v1/telephony/events`.
//! Every event is stored (once: its `event_id` is remembered) before it is acknowledged; a call
//! becomes a contact with channel `call` and is routed by the same engine as chats.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::oneshot;

use crate::app::AppState;
use crate::engine_task::{contact_key, counsellor_key, EngineCommand};
use crate::error::AppError;
use crate::hub::{Outbox, Outgoing};
use crate::http::AuthUser;
use crate::casework::DAY_MS;
use crate::protocol::{
    decode, parse_rfc3339, At, EarlierContact, ErrorCode, TelephonyCommand, TelephonyEvent, EARLIER_CONTACTS, EARLIER_SUMMARY_CHARS,
};
use crate::routing::{Channel, Input, NewContact};
use crate::store::calls::{CallEvent, CallRecord, EarlierForm, NewCall, Stored};
use crate::store::commands::{Acked, NewCommand};
use crate::store::contacts::NewContactRecord;
use crate::store::gateways::Gateway;
use crate::store::new_id;
use crate::store::users::Role;

/// Repeat callers are counted over this many days.
pub const REPEAT_DAYS: i64 = 30;
/// Name of the HMAC key for caller numbers in `server_secrets`.
const CALLER_KEY: &str = "caller_number_hmac";

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
    fn pick(&self, gateway: &str, conn: Option<crate::hub::ConnId>) -> Option<crate::hub::ConnId> {
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

    pub fn detach(&self, gateway: &str, conn: crate::hub::ConnId) {
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
    fn push(&self, gateway: &str, conn: crate::hub::ConnId, id: &str, frame: &str) -> Option<bool> {
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
pub async fn deliver(state_store: &crate::store::Store, hub: &crate::hub::Hub, now: i64, gateway: &str, id: &str) {
    if !hand_over(state_store, hub, now, gateway, None, Some(id)).await {
        if let Some(wake) = hub.gateways.wake_hook.get() {
            wake(gateway);
        }
    }
}

/// A socket of `gateway` opened: every command it has not acknowledged goes out first, in order
/// (those another open socket holds excepted).
pub async fn deliver_pending(state: &AppState, gateway: &str, conn: crate::hub::ConnId) {
    release_stale(&state.store, &state.hub, gateway, &[], 0).await;
    deliver_pending_to(&state.store, &state.hub, state.clock.now_ms(), gateway, Some(conn)).await;
}

/// Hands every command of `gateway` not yet acknowledged, and held by no other socket, to its
/// socket `conn` of this node (None: its newest), in order, each at most once per socket.
pub async fn deliver_pending_to(
    store: &crate::store::Store,
    hub: &crate::hub::Hub,
    now: i64,
    gateway: &str,
    conn: Option<crate::hub::ConnId>,
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
    hub: &crate::hub::Hub,
    now: i64,
    gateway: &str,
    conn: Option<crate::hub::ConnId>,
    only: Option<&str>,
) -> bool {
    let Some(conn) = hub.gateways.pick(gateway, conn) else { return false };
    let held = match store.claim_commands(gateway, hub.gateways.node(), conn, only, now).await {
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
    if let Err(err) = store.commands_handed_over(gateway, &handed, now).await {
        tracing::error!(error = %err, gateway, "marking commands handed over failed; they will be sent again");
    }
    true
}

/// Releases the claims on `gateway`'s commands that no open socket stands behind: those of sockets
/// of this node that are closed (a release that failed), and (cluster mode) those of nodes not in
/// `alive` made before `dead_before` (the node died; a node that just started may not be in
/// `alive` yet). True when some were released.
pub async fn release_stale(store: &crate::store::Store, hub: &crate::hub::Hub, gateway: &str, alive: &[String], dead_before: i64) -> bool {
    let holders = match store.command_holders(gateway).await {
        Ok(h) => h,
        Err(err) => {
            tracing::warn!(error = %err, gateway, "reading who holds telephony commands failed");
            return false;
        }
    };
    let me = hub.gateways.node();
    let mut released = false;
    for (node, conn, at) in holders {
        let stale = if node == me {
            hub.gateways.pick(gateway, Some(conn)).is_none()
        } else {
            !alive.contains(&node) && at < dead_before
        };
        if stale {
            tracing::warn!(gateway, node = %node, conn, "releasing telephony commands held by a socket that is gone");
            released |= store.release_commands(gateway, &node, conn).await.is_ok_and(|n| n > 0);
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
pub async fn close_unresponsive(store: &crate::store::Store, hub: &crate::hub::Hub, gateway: &str, now: i64) -> bool {
    let Ok(holders) = store.command_holders(gateway).await else { return false };
    let me = hub.gateways.node();
    let mut closed = false;
    for (node, conn, oldest) in holders {
        if node == me && oldest < now - ACK_WAIT_MS && hub.gateways.pick(gateway, Some(conn)).is_some() {
            tracing::warn!(gateway, conn, waited_ms = now - oldest, "an exchange's socket left a command unacknowledged: closing it");
            closed |= hub.push_local(conn, Outgoing::Close { code: crate::ws::close::UNACKNOWLEDGED, reason: "command not acknowledged" });
        }
    }
    closed
}

/// For every exchange with a socket here: closes sockets that sit on a command unacknowledged
/// ([`close_unresponsive`]), releases the stale claims ([`release_stale`]), then hands
/// the pending commands no socket holds to its socket here. Run every few seconds (by the cluster
/// link on each node, by the server on a single node), so a lost wake-up or a claim whose release
/// failed delays a command, never loses it.
pub async fn sweep(store: &crate::store::Store, hub: &crate::hub::Hub, now: i64, alive: &[String], dead_before: i64) {
    for gateway in hub.gateways.ids() {
        // Mostly nothing waits: a read, and no write transaction.
        if store.pending_commands(&gateway).await.is_ok_and(|p| p.is_empty()) {
            continue;
        }
        close_unresponsive(store, hub, &gateway, now).await;
        release_stale(store, hub, &gateway, alive, dead_before).await;
        deliver_pending_to(store, hub, now, &gateway, None).await;
    }
}

/// A socket of `gateway` closed: the commands it held unacknowledged go to another socket of the
/// exchange, here or (woken) on another node.
pub async fn socket_closed(store: &crate::store::Store, hub: &crate::hub::Hub, now: i64, gateway: &str, conn: crate::hub::ConnId) {
    hub.gateways.detach(gateway, conn);
    match store.release_commands(gateway, hub.gateways.node(), conn).await {
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

/// A call's routing facts the engine task keeps while the call is open.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    match store.caller_history(contact_id, REPEAT_DAYS * DAY_MS, EARLIER_CONTACTS as i64).await {
        Ok((n, forms)) => (n, forms.into_iter().map(earlier_contact).collect()),
        Err(err) => {
            tracing::error!(error = %err, contact = contact_id, "reading a caller's history failed; the offer shows none");
            (0, Vec::new())
        }
    }
}

/// What an offer shows of an earlier contact's submitted form.
fn earlier_contact(f: EarlierForm) -> EarlierContact {
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
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The caller's number reduced to its digits (`+373 22 123-456` → `37322123456`); None when withheld.
pub fn normalise_number(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// HMAC-SHA256 of the normalised number under the server's key, hex: recognises repeat callers
/// without keeping the number.
pub fn caller_hash(key: &str, digits: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(digits.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash and the last two digits of a caller's number (both None when withheld).
async fn caller_identity(state: &AppState, caller: Option<&str>) -> Result<(Option<String>, Option<String>), AppError> {
    let Some(digits) = caller.and_then(normalise_number) else {
        return Ok((None, None));
    };
    let key = state.store.secret_or_create(CALLER_KEY, state.clock.now_ms(), crate::auth::random_secret).await?;
    let last2 = digits[digits.len().saturating_sub(2)..].to_string();
    Ok((Some(caller_hash(&key, &digits)), Some(last2)))
}

/// The gateway a bearer service token belongs to, or 401.
pub async fn authenticate_gateway(state: &AppState, headers: &HeaderMap) -> Result<Gateway, AppError> {
    let token = crate::http::bearer(headers).ok_or_else(|| AppError::unauthorized("a gateway bearer token is required"))?;
    state
        .store
        .gateway_by_token_hash(&crate::auth::token_hash(token))
        .await?
        .ok_or_else(|| AppError::unauthorized("unknown or revoked gateway token"))
}

fn error_frame(code: ErrorCode, message: impl Into<String>, reference: &str) -> TelephonyCommand {
    TelephonyCommand::Error { code, message: message.into(), reference: Some(reference.to_string()) }
}

/// Handles one event from `gateway`: stores it (with its effect) and then tells the router.
/// Returns the frames to answer with: `ack` once stored, plus an `error` for an orphan; only an
/// `error` when nothing was stored.
pub async fn handle_event(state: &AppState, gateway: &Gateway, event: TelephonyEvent) -> Vec<TelephonyCommand> {
    let event_id = match &event {
        TelephonyEvent::CallOffered { event_id, .. }
        | TelephonyEvent::CallAnswered { event_id, .. }
        | TelephonyEvent::CallEnded { event_id, .. }
        | TelephonyEvent::CallAbandoned { event_id, .. } => event_id.clone(),
        TelephonyEvent::Ping {} => return vec![TelephonyCommand::Pong {}],
        TelephonyEvent::CommandAck { command_id } => return command_ack(state, gateway, command_id).await,
    };
    if event_id.is_empty() || event_id.len() > 128 {
        return vec![error_frame(ErrorCode::BadField, "event_id must be 1 to 128 bytes", &event_id)];
    }
    match apply(state, gateway, event).await {
        Ok(frames) => frames,
        Err(e) => vec![error_frame(e.code, e.message, &event_id)],
    }
}

/// `command_ack`: the command is never sent again (a repeat changes nothing); unknown ids get `error`.
async fn command_ack(state: &AppState, gateway: &Gateway, command_id: &str) -> Vec<TelephonyCommand> {
    if command_id.is_empty() || command_id.len() > 64 {
        return vec![error_frame(ErrorCode::BadField, "command_id must be 1 to 64 bytes", command_id)];
    }
    match state.store.ack_command(&gateway.id, command_id, state.clock.now_ms()).await {
        Ok(Acked::Now | Acked::Before) => {
            state.hub.gateways.set_acks(&gateway.id);
            Vec::new()
        }
        Ok(Acked::Unknown) => vec![error_frame(ErrorCode::NotFound, "no such command for this exchange", command_id)],
        Err(e) => {
            let e = AppError::from(e);
            vec![error_frame(e.code, e.message, command_id)]
        }
    }
}

async fn apply(state: &AppState, gateway: &Gateway, event: TelephonyEvent) -> Result<Vec<TelephonyCommand>, AppError> {
    let now = state.clock.now_ms();
    let (event_id, call_id, at, what) = match event {
        TelephonyEvent::CallOffered { event_id, call_id, dialled, caller, language, at } => {
            return offered(state, gateway, event_id, call_id, dialled, caller, language, at).await;
        }
        TelephonyEvent::CallAnswered { event_id, call_id, at } => (event_id, call_id, at, CallEvent::Answered),
        TelephonyEvent::CallEnded { event_id, call_id, by, at } => (event_id, call_id, at, CallEvent::Ended { by: by.as_str() }),
        TelephonyEvent::CallAbandoned { event_id, call_id, at } => (event_id, call_id, at, CallEvent::Abandoned),
        TelephonyEvent::Ping {} => return Ok(vec![TelephonyCommand::Pong {}]),
        TelephonyEvent::CommandAck { command_id } => return Ok(command_ack(state, gateway, &command_id).await),
    };
    check_call_id(&call_id)?;
    let ack = TelephonyCommand::Ack { event_id: event_id.clone() };
    match state.store.record_call_event(&gateway.id, &event_id, now, &call_id, at.0, what).await? {
        Stored::Repeat => Ok(vec![ack]),
        Stored::Orphan => {
            tracing::warn!(gateway = %gateway.name, %call_id, kind = what.kind(), "telephony event for an unknown call, stored as an orphan");
            Ok(vec![ack, error_frame(ErrorCode::UnknownCall, format!("no call {call_id:?}; the event is stored as an orphan"), &call_id)])
        }
        Stored::New(contact) => {
            let open = contact.state == "queued" || contact.state == "active";
            if let (true, Some(key)) = (open, contact_key(&contact.contact_id)) {
                let by_counsellor = matches!(what, CallEvent::Ended { by: "counsellor" });
                let counsellor = contact.counsellor_id.as_deref().and_then(counsellor_key);
                let input = match (what, by_counsellor, counsellor) {
                    (CallEvent::Answered, ..) => None,
                    (_, true, Some(counsellor)) if contact.state == "active" => {
                        Some(Input::EndByCounsellor { counsellor, contact: key })
                    }
                    _ => Some(Input::EndByCaller { contact: key }),
                };
                if let Some(input) = input {
                    state.engine.input(input).await;
                }
            }
            Ok(vec![ack])
        }
    }
}

fn check_call_id(call_id: &str) -> Result<(), AppError> {
    if call_id.is_empty() || call_id.len() > 128 {
        return Err(AppError::bad_field("call_id must be 1 to 128 bytes"));
    }
    Ok(())
}

/// `call_offered`: find the helpline and language, store the call, queue it.
#[allow(clippy::too_many_arguments)]
async fn offered(
    state: &AppState,
    gateway: &Gateway,
    event_id: String,
    call_id: String,
    dialled: String,
    caller: Option<String>,
    language: Option<String>,
    at: At,
) -> Result<Vec<TelephonyCommand>, AppError> {
    check_call_id(&call_id)?;
    if dialled.len() > 64 {
        return Err(AppError::bad_field("dialled is limited to 64 characters"));
    }
    let now = state.clock.now_ms();
    let number = normalise_number(&dialled).unwrap_or_default();
    let (helpline, config_error) = match state.store.helpline_for_number(&number).await? {
        Some(h) => (h, None),
        None => {
            let fallback = state.store.default_call_helpline().await?;
            let h = fallback
                .filter(|f| state.helplines.iter().any(|h| &h.name == f))
                .or_else(|| state.helplines.first().map(|h| h.name.clone()))
                .ok_or_else(|| AppError::new(ErrorCode::Unavailable, "no helpline is configured"))?;
            let problem = format!("dialled number {dialled:?} is not in the map; answered by {h}");
            tracing::error!(gateway = %gateway.name, %dialled, helpline = %h, "configuration error: unknown dialled number");
            (h, Some(problem))
        }
    };
    let h = state
        .helplines
        .iter()
        .find(|x| x.name == helpline)
        .ok_or_else(|| AppError::new(ErrorCode::UnknownHelpline, format!("helpline {helpline:?} is not configured")))?;
    // The IVR's language when the helpline serves it; otherwise the helpline's first language.
    let language = language.filter(|l| h.languages.contains(l)).or_else(|| h.languages.first().cloned()).unwrap_or_default();
    let (hash, last2) = caller_identity(state, caller.as_deref()).await?;
    let senior_only = match crate::abuse::call_door(state, hash.as_deref(), &helpline, now).await {
        crate::abuse::Door::Open { senior_only } => senior_only,
        crate::abuse::Door::Refused { block_id } => {
            state.store.record_blocked_call(&block_id, &gateway.id, &event_id, &call_id, now, at.0).await?;
            tracing::info!(gateway = %gateway.name, %call_id, %helpline, "a call from a blocked number was rejected");
            let reject = TelephonyCommand::Reject { call_id, reason: "blocked".into() };
            return Ok(vec![TelephonyCommand::Ack { event_id }, reject]);
        }
    };
    let id = new_id();
    let record = NewContactRecord {
        id: id.clone(),
        channel: "call".into(),
        helpline: helpline.clone(),
        language: language.clone(),
        priority: 0,
        // Calls have no resume token; the column is unique, so a random one that nobody holds.
        resume_token_hash: crate::auth::token_hash(&crate::auth::random_secret()),
        queued_at: now,
    };
    let call = NewCall {
        contact: record,
        gateway_id: gateway.id.clone(),
        call_id: call_id.clone(),
        dialled,
        caller_hash: hash,
        caller_last2: last2.clone(),
        offered_at: at.0,
        config_error,
        senior_only,
    };
    let ack = TelephonyCommand::Ack { event_id: event_id.clone() };
    match state.store.record_call_offered(&event_id, now, &call).await? {
        Stored::New(()) => {}
        Stored::Repeat | Stored::Orphan => return Ok(vec![ack]),
    }
    let (repeat, earlier) = caller_history(&state.store, &id).await;
    let key = contact_key(&id).ok_or_else(AppError::internal)?;
    let contact = NewContact {
        id: key,
        channel: Channel::Call,
        helpline,
        language,
        priority: 0,
        queued_at: now,
        caller_connected: true,
        senior_only,
    };
    let info = CallInfo { gateway_id: gateway.id.clone(), call_id, caller_last2: last2, repeat, earlier };
    let (done, queued) = oneshot::channel();
    state.engine.send(EngineCommand::StartCall { contact, call: info, done }).await;
    let _ = queued.await;
    Ok(vec![ack])
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/telephony", get(crate::ws::telephony::upgrade))
        .route("/api/v1/telephony/events", post(webhook))
        .route("/api/v1/contacts", post(record_offline))
        .route("/api/v1/calls/{id}", get(call_record))
}

/// `POST /api/v1/telephony/events` (gateway bearer token): one event; the answer lists the frames
/// a socket would have received (`ack`, an `error`, and commands waiting for this exchange).
async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, AppError> {
    let gateway = authenticate_gateway(&state, &headers).await?;
    let text = std::str::from_utf8(&body).map_err(|_| AppError::new(ErrorCode::BadJson, "the body is not UTF-8"))?;
    let event: TelephonyEvent = decode(text).map_err(|e| AppError::new(e.code, e.message))?;
    let frames = handle_event(&state, &gateway, event).await;
    let refused = frames.first().and_then(|f| match f {
        TelephonyCommand::Error { code, message, .. } => Some(AppError::new(*code, message.clone())),
        _ => None,
    });
    if let Some(e) = refused {
        return Err(e);
    }
    let mut frames: Vec<serde_json::Value> = frames.iter().filter_map(|f| serde_json::to_value(f).ok()).collect();
    frames.extend(pending_for_webhook(&state, &gateway).await);
    Ok(Json(serde_json::json!({ "frames": frames })).into_response())
}

/// The commands a webhook answer carries: every one not acknowledged yet, oldest first (again in
/// each answer until acknowledged). For an exchange that does not acknowledge commands, being in
/// an answer counts as acknowledged.
async fn pending_for_webhook(state: &AppState, gateway: &Gateway) -> Vec<serde_json::Value> {
    let read = async {
        let pending = state.store.pending_commands(&gateway.id).await?;
        let acks = state.store.gateway_acks_commands(&gateway.id).await?;
        Ok::<_, crate::store::StoreError>((pending, acks))
    };
    let (pending, acks) = match read.await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, gateway = %gateway.name, "reading pending commands failed; they come with a later answer");
            return Vec::new();
        }
    };
    if !acks {
        let ids: Vec<String> = pending.iter().map(|c| c.id.clone()).collect();
        if let Err(err) = state.store.commands_handed_over(&gateway.id, &ids, state.clock.now_ms()).await {
            tracing::error!(error = %err, gateway = %gateway.name, "marking commands handed over failed");
        }
    }
    pending.into_iter().filter_map(|c| serde_json::from_str(&c.frame).ok()).collect()
}

/// What a counsellor asks of their own active call from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAction {
    Hold,
    Resume,
    Hangup,
}

impl CallAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CallAction::Hold => "hold",
            CallAction::Resume => "resume",
            CallAction::Hangup => "hangup",
        }
    }
}

/// `call_hold`, `call_resume`, `call_hangup` from a counsellor: only on their own active call
/// still connected at the exchange. Stores the command (`hold`, `unhold`, `hangup`) with a line in
/// the contact's log, then hands it to the exchange. The exchange's `call_ended` closes the record.
pub async fn call_control(state: &AppState, counsellor: &str, contact_id: &str, action: CallAction) -> Result<(), AppError> {
    let not_yours = || AppError::new(ErrorCode::UnknownContact, "no such active call of yours");
    let contact = state.store.contact(contact_id).await?.ok_or_else(not_yours)?;
    if contact.state != "active" || contact.counsellor_id.as_deref() != Some(counsellor) {
        return Err(not_yours());
    }
    if contact.channel != "call" {
        return Err(AppError::new(ErrorCode::NotAllowed, "this conversation is a chat, not a phone call"));
    }
    let record = state.store.call_record(contact_id).await?.ok_or_else(not_yours)?;
    let Some(gateway_id) = record.gateway_id else {
        return Err(AppError::new(ErrorCode::NotAllowed, "this call was recorded offline"));
    };
    if record.ended_at.is_some() {
        return Err(AppError::new(ErrorCode::NotAllowed, "the call has already ended at the exchange"));
    }
    let call = CallInfo { gateway_id, call_id: record.call_id, caller_last2: None, repeat: 0, earlier: Vec::new() };
    let now = state.clock.now_ms();
    const HOLDS: &[&str] = &["hold", "unhold"];
    let command = new_command(&call, Some(contact_id.to_string()), now, HOLDS, |command_id, call_id| match action {
        CallAction::Hold => TelephonyCommand::Hold { command_id, call_id },
        CallAction::Resume => TelephonyCommand::Unhold { command_id, call_id },
        CallAction::Hangup => TelephonyCommand::Hangup { command_id, call_id },
    });
    let log = match action {
        CallAction::Hold => "call_hold",
        CallAction::Resume => "call_resume",
        CallAction::Hangup => "call_hangup",
    };
    state.store.issue_command(&command, Some((log, counsellor))).await?;
    deliver(&state.store, &state.hub, now, &command.gateway_id, &command.id).await;
    Ok(())
}

/// `GET /api/v1/calls/{contact_id}`: a call's record, for supervisors and admins (audited).
async fn call_record(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Response, AppError> {
    if !matches!(auth.user.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden("supervisors and admins only"));
    }
    let record = state.store.call_record(&id).await?.ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such call"))?;
    state.store.audit(state.clock.now_ms(), &auth.user.id, "view_call", Some(&id), None).await?;
    Ok(Json(record).into_response())
}

/// A call handled outside the system, as a counsellor reports it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineContact {
    channel: String,
    helpline: String,
    #[serde(default)]
    language: Option<String>,
    /// The caller's number, if known: only its hash and last two digits are kept.
    #[serde(default)]
    caller: Option<String>,
    /// When the phone rang, when it was answered (absent: not answered), when it ended.
    started_at: String,
    #[serde(default)]
    answered_at: Option<String>,
    ended_at: String,
}

/// `POST /api/v1/contacts` (counsellor): records a call handled outside the system (a backup
/// phone during an outage) so statistics stay complete. 422 with `fields` for bad values.
async fn record_offline(State(state): State<AppState>, auth: AuthUser, body: axum::body::Bytes) -> Result<Response, AppError> {
    if auth.user.role != Role::Counsellor {
        return Err(AppError::forbidden("counsellors record their own calls"));
    }
    let req: OfflineContact = serde_json::from_slice(&body).map_err(|e| AppError::bad_field(format!("bad contact: {e}")))?;
    let now = state.clock.now_ms();
    let mut fields = serde_json::Map::new();
    let mut bad = |field: &str, why: &str| {
        fields.insert(field.to_string(), why.into());
    };
    if req.channel != "call" {
        bad("channel", "only \"call\" can be recorded offline");
    }
    let helpline = state.helplines.iter().find(|h| h.name == req.helpline);
    if helpline.is_none() {
        bad("helpline", "unknown helpline");
    }
    let language = req.language.clone().or_else(|| helpline.and_then(|h| h.languages.first().cloned())).unwrap_or_default();
    if helpline.is_some_and(|h| !h.languages.contains(&language)) {
        bad("language", "not a language of this helpline");
    }
    let time = |t: &str| parse_rfc3339(t);
    let started = time(&req.started_at);
    let answered = req.answered_at.as_deref().map(time);
    let ended = time(&req.ended_at);
    if started.is_none() {
        bad("started_at", "expected an RFC 3339 time");
    }
    if answered == Some(None) {
        bad("answered_at", "expected an RFC 3339 time");
    }
    if ended.is_none() {
        bad("ended_at", "expected an RFC 3339 time");
    }
    let (started, answered, ended) = (started.unwrap_or(0), answered.flatten(), ended.unwrap_or(0));
    if ended > now + 60_000 {
        bad("ended_at", "is in the future");
    }
    if started > ended || answered.is_some_and(|a| a < started || a > ended) {
        bad("ended_at", "times must be in order: started_at <= answered_at <= ended_at");
    }
    if now.saturating_sub(started) > REPEAT_DAYS * 24 * 3600 * 1000 {
        bad("started_at", "more than 30 days ago");
    }
    if !fields.is_empty() {
        let body = serde_json::json!({ "code": ErrorCode::BadField, "message": "some fields are not valid", "fields": fields });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    let (hash, last2) = caller_identity(&state, req.caller.as_deref()).await?;
    let id = new_id();
    let record = NewContactRecord {
        id: id.clone(),
        channel: "call".into(),
        helpline: req.helpline.clone(),
        language,
        priority: 0,
        resume_token_hash: crate::auth::token_hash(&crate::auth::random_secret()),
        queued_at: started,
    };
    let outcome = crate::store::calls::outcome(started, answered.is_some(), answered, ended, false);
    let call = CallRecord {
        contact_id: id.clone(),
        gateway_id: None,
        call_id: format!("offline-{id}"),
        dialled: None,
        caller_hash: hash,
        caller_last2: last2,
        offered_at: started,
        answered_at: answered,
        ended_at: Some(ended),
        ended_by: None,
        outcome: Some(outcome.to_string()),
        wait_ms: Some(answered.unwrap_or(ended) - started),
        talk_ms: answered.map(|a| ended - a),
        offline: true,
    };
    state.store.record_offline_call(&record, &call, &auth.user.id, now).await?;
    state.store.audit(now, &auth.user.id, "record_offline_call", Some(&id), None).await?;
    Ok((StatusCode::CREATED, Json(call)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_reduced_to_digits_and_hashed_with_the_key() {
        assert_eq!(normalise_number("+373 (22) 123-456").as_deref(), Some("37322123456"));
        assert_eq!(normalise_number("anonymous"), None);
        let a = caller_hash("k1", "37322123456");
        assert_eq!(a, caller_hash("k1", "37322123456"));
        assert_ne!(a, caller_hash("k2", "37322123456"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("123456"));
    }
}

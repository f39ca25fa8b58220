//! The connection registry: which sockets belong to which caller contact and which counsellor, and delivery to them.
//!
//! Each socket has a bounded outbox. Delivery never waits: a socket whose outbox is
//! full is cut off (its session closes the socket, and the client resumes), so one
//! slow phone never slows the hub.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, Notify};

use crate::protocol::ServerEvent;

/// Frames one socket may have waiting before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 512;

/// A socket's id, unique in this process.
pub type ConnId = u64;

/// What a session is asked to do with its socket.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// Send this text frame.
    Frame(Utf8Bytes),
    /// Send these text frames, in order: a resume's missed messages, as one item, so that a long
    /// history does not overflow the outbox (it is already in memory; the socket takes it at its pace).
    Frames(Vec<Utf8Bytes>),
    /// Send this `contact_ended` frame; the caller's session forgets the contact.
    Ended { contact_id: String, frame: Utf8Bytes },
    /// Send this answer to message `client_id` the socket sent (its `ack`, or an `error` naming
    /// it): the session crosses it off what it must answer ([`crate::chat::promise`]).
    Answer { client_id: String, frame: Utf8Bytes },
    /// Send a close frame and stop (account disabled, shutdown).
    Close { code: u16, reason: &'static str },
}

/// The sending half of a socket's outbox: a socket of this process, or (cluster mode, on the
/// leader) a socket held by another node, reached through [`RemotePush`].
#[derive(Clone, Debug)]
pub struct Outbox {
    pub id: ConnId,
    sink: Sink,
}

#[derive(Clone, Debug)]
enum Sink {
    Local { tx: mpsc::Sender<Outgoing>, overflow: Arc<Notify> },
    Remote { node: Arc<str>, link: Arc<dyn RemotePush> },
}

/// Cluster mode: carries an outgoing item to socket `conn` on node `node` (never waits).
pub trait RemotePush: Send + Sync + std::fmt::Debug {
    fn push(&self, node: &str, conn: ConnId, item: Outgoing) -> bool;
}

/// Cluster mode: a socket of this node was detached from a contact (caller) or an account (counsellor).
pub type DetachHook = Box<dyn Fn(bool, &str, ConnId) + Send + Sync>;

/// What a socket of this process speaks for with the engine and relay: what cluster mode registers
/// again with a new leader, so that the socket stays open through a leader change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// A caller's socket of this contact.
    Caller { contact: String },
    /// A counsellor's console of this account. (Named `Agent` between nodes, as releases before the
    /// rename call it: nodes of both can run side by side.)
    #[serde(rename = "Agent")]
    Counsellor { user: String },
}

/// Cluster mode: carries a frame for supervisors (`helpline`: what it is about, None: everyone) to the other nodes.
pub type SupervisorHook = Box<dyn Fn(&Audience, &Utf8Bytes) + Send + Sync>;

/// Which supervisors a frame is for: every one, or those whose scope covers at least one of these
/// helplines (a supervisor of every helpline gets them all).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Audience {
    All,
    Of(Vec<String>),
}

impl Audience {
    /// The supervisors of `helpline`, or every supervisor for None.
    pub fn of(helpline: Option<&str>) -> Audience {
        match helpline {
            Some(h) => Audience::Of(vec![h.to_string()]),
            None => Audience::All,
        }
    }

    /// A supervisor whose scope is `scope` (None: every helpline) is in this audience.
    pub fn includes(&self, scope: Option<&[String]>) -> bool {
        match (scope, self) {
            (None, _) | (_, Audience::All) => true,
            (Some(list), Audience::Of(helplines)) => helplines.iter().any(|h| list.contains(h)),
        }
    }
}

/// The receiving half, owned by the socket's session.
pub struct Inbox {
    pub rx: mpsc::Receiver<Outgoing>,
    /// Notified when the outbox overflowed: the session must close the socket.
    pub overflow: Arc<Notify>,
}

impl Outbox {
    /// Queues an outgoing item; returns false (and flags the overflow) when the socket is too slow or gone.
    pub fn push(&self, item: Outgoing) -> bool {
        let (tx, overflow) = match &self.sink {
            Sink::Local { tx, overflow } => (tx, overflow),
            Sink::Remote { node, link } => return link.push(node, self.id, item),
        };
        match tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// A socket `conn` held by node `node`, reached through `link` (cluster mode).
    pub fn remote(node: Arc<str>, conn: ConnId, link: Arc<dyn RemotePush>) -> Outbox {
        Outbox { id: conn, sink: Sink::Remote { node, link } }
    }

    /// The node holding this socket when it is another node's (cluster mode).
    pub fn remote_node(&self) -> Option<&str> {
        match &self.sink {
            Sink::Local { .. } => None,
            Sink::Remote { node, .. } => Some(node),
        }
    }

    pub fn send(&self, event: &ServerEvent) -> bool {
        self.push(Outgoing::Frame(event.to_json().into()))
    }

    /// Sends the answer to message `client_id` this socket sent (see [`Outgoing::Answer`]).
    pub fn answer(&self, client_id: &str, event: &ServerEvent) -> bool {
        self.push(Outgoing::Answer { client_id: client_id.to_string(), frame: event.to_json().into() })
    }

    pub fn is_closed(&self) -> bool {
        match &self.sink {
            Sink::Local { tx, .. } => tx.is_closed(),
            Sink::Remote { .. } => false,
        }
    }
}

/// Registry of live sockets.
#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    inner: Mutex<Inner>,
    /// Telephone exchanges' sockets and waiting commands.
    pub gateways: crate::chat::exchange::Gateways,
    /// The kinds of contact and which open contact is on which: how a caller is reached
    /// ([`crate::chat::channel`]).
    pub channels: crate::chat::channel::Channels,
    /// Cluster mode: tells the leader when a socket of this node is detached.
    detach_hook: std::sync::OnceLock<DetachHook>,
    /// Cluster mode: sends supervisor frames to the other nodes' supervisors.
    supervisor_hook: std::sync::OnceLock<SupervisorHook>,
}

#[derive(Default)]
struct Inner {
    /// Caller sockets by contact id.
    callers: Registry,
    /// Counsellor sockets by user id.
    counsellors: Registry,
    /// Supervisor sockets, with the helplines each may see (None: all).
    supervisors: BTreeMap<ConnId, (Outbox, Option<Vec<String>>)>,
    /// Every staff socket (counsellor console, supervisor dashboard) by user id: what logout and
    /// disabling an account close.
    staff: Registry,
    /// Every socket of this process by id, until its session ends (cluster mode delivers by id).
    local: HashMap<ConnId, Outbox>,
    /// What each socket of this process is registered as (cluster mode re-registers them with a new leader).
    roles: HashMap<ConnId, Role>,
    /// The conversations each supervisor socket of this process watches, and as whom it joined
    /// them (None: monitor only): also registered again with a new leader in cluster mode.
    watches: HashMap<ConnId, BTreeMap<String, Option<String>>>,
    /// Cluster mode, while this node follows: the newest message seq each socket of this process
    /// was sent, per conversation (see [`Hub::note_seen`]). A socket without an entry is unknown.
    seen: HashMap<ConnId, HashMap<String, i64>>,
    /// Whether [`Inner::seen`] is kept: on a follower in cluster mode, never on a leader.
    tracking_seen: bool,
}

/// Cluster mode: the newest message seq socket `conn` of a node was sent in conversation `contact`.
/// A new leader sends it every message committed after `seq` (by a leader that died before it could).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub conn: ConnId,
    pub contact: String,
    pub seq: i64,
}

/// A conversation a supervisor socket of this process watches (see [`Hub::watches`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watch {
    pub conn: ConnId,
    pub contact: String,
    /// The supervisor's user id when they joined (may write), None when they only monitor.
    pub joined: Option<String>,
}

impl Hub {
    /// Sends every supervisor socket of this process the part of the board they may see. The board is
    /// serialised once per distinct scope, not once per socket (a wall of 100 screens costs one JSON).
    pub fn board_to_supervisors(&self, board: &crate::protocol::board::Dashboard) {
        let mut frames: HashMap<Option<Vec<String>>, Utf8Bytes> = HashMap::new();
        for (outbox, scope) in self.supervisors() {
            let frame = frames
                .entry(scope)
                .or_insert_with_key(|scope| ServerEvent::Dashboard(Box::new(board.scoped(scope.as_deref()))).to_json().into())
                .clone();
            outbox.push(Outgoing::Frame(frame));
        }
    }

    pub fn new() -> Hub {
        Hub::default()
    }

    /// A hub whose socket ids start at `base` (cluster mode: ids unique across nodes).
    pub fn with_id_base(base: u64) -> Hub {
        let hub = Hub::default();
        hub.next_id.store(base, Ordering::Relaxed);
        hub
    }

    /// Cluster mode: `hook(is_caller, key, conn)` runs on every detach of a caller or counsellor socket.
    pub fn set_detach_hook(&self, hook: DetachHook) {
        let _ = self.detach_hook.set(hook);
    }

    fn detached(&self, caller: bool, key: &str, conn: ConnId) {
        if let Some(hook) = self.detach_hook.get() {
            hook(caller, key, conn);
        }
    }

    /// Queues an item for socket `conn` of this process; false if it is gone.
    pub fn push_local(&self, conn: ConnId, item: Outgoing) -> bool {
        let outbox = self.lock().local.get(&conn).cloned();
        outbox.is_some_and(|o| o.push(item))
    }

    /// The outbox of socket `conn` of this process.
    pub fn local_outbox(&self, conn: ConnId) -> Option<Outbox> {
        self.lock().local.get(&conn).cloned()
    }

    /// Forgets a socket whose session has ended.
    pub fn forget(&self, conn: ConnId) {
        let mut inner = self.lock();
        inner.local.remove(&conn);
        inner.roles.remove(&conn);
        inner.watches.remove(&conn);
        inner.seen.remove(&conn);
    }

    /// Records what socket `conn` of this process speaks for (see [`Role`]). `seen`: for a caller,
    /// the newest message it already has (0 on a new chat, its `last_seq` on a resume).
    pub fn set_role(&self, conn: ConnId, role: Role, seen: i64) {
        let mut inner = self.lock();
        if inner.local.contains_key(&conn) {
            if let (true, Role::Caller { contact }) = (inner.tracking_seen, &role) {
                let seq = inner.seen.entry(conn).or_default().entry(contact.clone()).or_insert(seen);
                *seq = (*seq).max(seen);
            }
            inner.roles.insert(conn, role);
        }
    }

    /// Cluster mode: starts (a follower) or stops (a leader, whose sockets are sent to directly)
    /// keeping what each socket was sent; stopping forgets it all and returns it.
    pub fn track_seen(&self, on: bool) -> Vec<Seen> {
        let mut inner = self.lock();
        inner.tracking_seen = on;
        if on {
            return Vec::new();
        }
        let all = seen_list(&inner.seen);
        inner.seen.clear();
        all
    }

    /// Cluster mode, on a follower: socket `conn` of this process was sent message `seq` (or a
    /// history up to it) of conversation `contact`.
    pub fn note_seen(&self, conn: ConnId, contact: &str, seq: i64) {
        let mut inner = self.lock();
        if inner.tracking_seen && inner.local.contains_key(&conn) {
            let entry = inner.seen.entry(conn).or_default();
            match entry.get_mut(contact) {
                Some(s) => *s = (*s).max(seq),
                None => {
                    entry.insert(contact.to_string(), seq);
                }
            }
        }
    }

    /// What each socket of this process was sent, per conversation (see [`Hub::note_seen`]).
    pub fn seen(&self) -> Vec<Seen> {
        seen_list(&self.lock().seen)
    }

    /// The sockets of this process with a role: what a new leader must know of this node.
    pub fn roles(&self) -> Vec<(ConnId, Role)> {
        let mut all: Vec<(ConnId, Role)> = self.lock().roles.iter().map(|(c, r)| (*c, r.clone())).collect();
        all.sort_by_key(|(c, _)| *c);
        all
    }

    /// Records that supervisor socket `conn` of this process watches `contact` (monitor), or joined it
    /// as `joined`; a join is kept when the same socket monitors again.
    pub fn set_watch(&self, conn: ConnId, contact: &str, joined: Option<String>) {
        let mut inner = self.lock();
        if inner.local.contains_key(&conn) {
            let entry = inner.watches.entry(conn).or_default().entry(contact.to_string()).or_default();
            if joined.is_some() {
                *entry = joined;
            }
        }
    }

    /// Supervisor socket `conn` stopped watching `contact`.
    pub fn unset_watch(&self, conn: ConnId, contact: &str) {
        let mut inner = self.lock();
        if let Some(watches) = inner.watches.get_mut(&conn) {
            watches.remove(contact);
            if watches.is_empty() {
                inner.watches.remove(&conn);
            }
        }
    }

    /// The conversations watched by supervisor sockets of this process: what a new leader's relay
    /// must know of this node so that they keep receiving them (cluster mode).
    pub fn watches(&self) -> Vec<Watch> {
        let inner = self.lock();
        let mut all: Vec<Watch> = inner
            .watches
            .iter()
            .flat_map(|(conn, w)| w.iter().map(|(contact, joined)| Watch { conn: *conn, contact: contact.clone(), joined: joined.clone() }))
            .collect();
        all.sort_by(|a, b| (a.conn, &a.contact).cmp(&(b.conn, &b.contact)));
        all
    }

    /// Cluster mode, at a takeover: forgets which sockets (of any node) belong to which contact and
    /// counsellor; the nodes register their live sockets again with the new leader.
    pub fn reset_routes(&self) {
        let mut inner = self.lock();
        inner.callers.clear();
        inner.counsellors.clear();
    }

    /// Cluster mode: `hook(helpline, frame)` runs on every frame for supervisors sent on this node.
    pub fn set_supervisor_hook(&self, hook: SupervisorHook) {
        let _ = self.supervisor_hook.set(hook);
    }

    /// Asks every socket of this process to close (cluster mode: the leader changed; clients resume).
    pub fn close_local(&self, code: u16, reason: &'static str) -> usize {
        let all: Vec<Outbox> = self.lock().local.values().cloned().collect();
        for o in &all {
            o.push(Outgoing::Close { code, reason });
        }
        all.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent (single inserts/removes).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new outbox/inbox pair for a socket.
    pub fn new_connection(&self) -> (Outbox, Inbox) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let overflow = Arc::new(Notify::new());
        let outbox = Outbox { id, sink: Sink::Local { tx, overflow: overflow.clone() } };
        self.lock().local.insert(id, outbox.clone());
        (outbox, Inbox { rx, overflow })
    }

    /// Registers a caller socket for a contact; returns how many it now has.
    pub fn attach_caller(&self, contact: &str, outbox: Outbox) -> usize {
        attach(&mut self.lock().callers, contact, outbox)
    }

    /// A resumed caller socket: it replaces the contact's other caller sockets, which are asked to
    /// close ([`crate::protocol::close::REPLACED`]): one live caller socket per contact, so a stolen
    /// resume token cannot read along unnoticed.
    pub fn replace_caller(&self, contact: &str, outbox: Outbox) -> usize {
        let mut inner = self.lock();
        for old in inner.callers.get(contact).into_iter().flat_map(|c| c.values()).filter(|o| o.id != outbox.id) {
            old.push(Outgoing::Close { code: crate::protocol::close::REPLACED, reason: "the chat was resumed elsewhere" });
        }
        attach(&mut inner.callers, contact, outbox)
    }

    /// Removes a caller socket; returns how many the contact still has.
    pub fn detach_caller(&self, contact: &str, conn: ConnId) -> usize {
        let left = {
            let mut inner = self.lock();
            if inner.roles.get(&conn).is_some_and(|r| matches!(r, Role::Caller { contact: c } if c == contact)) {
                inner.roles.remove(&conn);
            }
            detach(&mut inner.callers, contact, conn)
        };
        self.detached(true, contact, conn);
        left
    }

    /// How many sockets of a contact's caller are attached.
    pub fn caller_sockets(&self, contact: &str) -> usize {
        self.lock().callers.get(contact).map_or(0, BTreeMap::len)
    }

    /// Whether a contact's caller is present, as its channel measures it (a web chat: a socket attached).
    pub fn caller_online(&self, contact: &str) -> bool {
        self.channels.of(contact).present(contact, self.caller_sockets(contact))
    }

    /// Registers a counsellor socket; returns how many the counsellor now has.
    pub fn attach_counsellor(&self, user: &str, outbox: Outbox) -> usize {
        attach(&mut self.lock().counsellors, user, outbox)
    }

    /// Removes a counsellor socket; returns how many the counsellor still has.
    pub fn detach_counsellor(&self, user: &str, conn: ConnId) -> usize {
        let left = {
            let mut inner = self.lock();
            if inner.roles.get(&conn).is_some_and(|r| matches!(r, Role::Counsellor { user: u } if u == user)) {
                inner.roles.remove(&conn);
            }
            detach(&mut inner.counsellors, user, conn)
        };
        self.detached(false, user, conn);
        left
    }

    /// Removes a socket of another node (cluster mode, on the leader), without running the detach hook.
    pub fn detach_remote(&self, caller: bool, key: &str, conn: ConnId) {
        let mut inner = self.lock();
        detach(if caller { &mut inner.callers } else { &mut inner.counsellors }, key, conn);
    }

    pub fn counsellor_online(&self, user: &str) -> bool {
        self.lock().counsellors.get(user).is_some_and(|c| !c.is_empty())
    }

    /// Registers any staff socket under its account (see [`Hub::close_staff`]).
    pub fn attach_staff(&self, user: &str, outbox: Outbox) {
        attach(&mut self.lock().staff, user, outbox);
    }

    pub fn detach_staff(&self, user: &str, conn: ConnId) {
        detach(&mut self.lock().staff, user, conn);
    }

    /// The user ids with at least one staff socket open.
    pub fn online_staff(&self) -> Vec<String> {
        self.lock().staff.iter().filter(|(_, c)| !c.is_empty()).map(|(u, _)| u.clone()).collect()
    }

    /// Closes every staff socket of an account (logout, account disabled).
    pub fn close_staff(&self, user: &str, code: u16, reason: &'static str) {
        if let Some(conns) = self.lock().staff.get(user) {
            for o in conns.values() {
                o.push(Outgoing::Close { code, reason });
            }
        }
    }

    /// The user ids with at least one counsellor socket.
    pub fn online_counsellors(&self) -> Vec<String> {
        self.lock().counsellors.keys().cloned().collect()
    }

    /// Sends a frame (`text`: `event` as JSON) to a contact's caller over its channel, except to
    /// socket `except`; `ending`: the conversation's last frame, after which the contact's channel
    /// binding is forgotten.
    pub fn tell_caller(&self, contact: &str, event: &ServerEvent, text: &Utf8Bytes, ending: bool, except: Option<ConnId>) {
        let outboxes = sockets(&self.lock().callers, contact);
        let channel = self.channels.of(contact);
        channel.deliver(crate::chat::channel::ToCaller { contact, event, text, ending, except }, &outboxes);
        if ending {
            self.channels.unbind(contact);
        }
    }

    /// Sends to every socket of a counsellor, except `skip`.
    pub fn to_counsellor(&self, user: &str, item: Outgoing, skip: Option<ConnId>) {
        let outboxes = sockets(&self.lock().counsellors, user);
        push_all(&outboxes, item, skip);
    }

    pub fn event_to_caller(&self, contact: &str, event: &ServerEvent) {
        self.tell_caller(contact, event, &event.to_json().into(), false, None);
    }

    pub fn event_to_counsellor(&self, user: &str, event: &ServerEvent) {
        self.to_counsellor(user, Outgoing::Frame(event.to_json().into()), None);
    }

    /// Registers a supervisor socket that sees `helplines` (None: all).
    pub fn attach_supervisor(&self, outbox: Outbox, helplines: Option<Vec<String>>) {
        self.lock().supervisors.insert(outbox.id, (outbox, helplines));
    }

    pub fn detach_supervisor(&self, conn: ConnId) {
        self.lock().supervisors.remove(&conn);
    }

    /// The supervisor sockets and what each may see.
    pub fn supervisors(&self) -> Vec<(Outbox, Option<Vec<String>>)> {
        self.lock().supervisors.values().cloned().collect()
    }

    /// Sends a frame about `helpline` to every supervisor who may see it (cluster mode: on every node).
    pub fn event_to_supervisors(&self, helpline: Option<&str>, event: &ServerEvent) {
        self.event_to_audience(&Audience::of(helpline), event);
    }

    /// Sends a frame to the supervisors of `audience` (cluster mode: on every node).
    pub fn event_to_audience(&self, audience: &Audience, event: &ServerEvent) {
        let text: Utf8Bytes = event.to_json().into();
        if let Some(hook) = self.supervisor_hook.get() {
            hook(audience, &text);
        }
        self.text_to_supervisors(audience, text);
    }

    /// Sends a frame to the supervisors of this process in `audience`.
    pub fn text_to_supervisors(&self, audience: &Audience, text: Utf8Bytes) {
        for (outbox, scope) in self.supervisors() {
            if audience.includes(scope.as_deref()) {
                outbox.push(Outgoing::Frame(text.clone()));
            }
        }
    }

    /// Closes every socket of a counsellor (account disabled).
    pub fn close_counsellor(&self, user: &str, code: u16, reason: &'static str) {
        self.to_counsellor(user, Outgoing::Close { code, reason }, None);
    }

    /// Asks every socket to close (shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        let inner = self.lock();
        for o in inner.callers.values().chain(inner.counsellors.values()).flat_map(|c| c.values()) {
            o.push(Outgoing::Close { code, reason });
        }
        for (o, _) in inner.supervisors.values() {
            o.push(Outgoing::Close { code, reason });
        }
    }

    /// Number of open sockets (callers, counsellors, supervisors).
    pub fn counts(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (inner.callers.values().map(BTreeMap::len).sum(), inner.counsellors.values().map(BTreeMap::len).sum(), inner.supervisors.len())
    }
}

type Registry = HashMap<String, BTreeMap<ConnId, Outbox>>;

fn attach(registry: &mut Registry, key: &str, outbox: Outbox) -> usize {
    let conns = registry.entry(key.to_string()).or_default();
    conns.insert(outbox.id, outbox);
    conns.len()
}

fn detach(registry: &mut Registry, key: &str, conn: ConnId) -> usize {
    let Some(conns) = registry.get_mut(key) else { return 0 };
    conns.remove(&conn);
    let left = conns.len();
    if left == 0 {
        registry.remove(key);
    }
    left
}

/// A copy of the outboxes under `key`, so delivery happens outside the lock.
fn sockets(registry: &Registry, key: &str) -> Vec<Outbox> {
    registry.get(key).map(|c| c.values().cloned().collect()).unwrap_or_default()
}

fn seen_list(seen: &HashMap<ConnId, HashMap<String, i64>>) -> Vec<Seen> {
    let mut all: Vec<Seen> = seen
        .iter()
        .flat_map(|(conn, m)| m.iter().map(|(contact, seq)| Seen { conn: *conn, contact: contact.clone(), seq: *seq }))
        .collect();
    all.sort_by(|a, b| (a.conn, &a.contact).cmp(&(b.conn, &b.contact)));
    all
}

fn push_all(outboxes: &[Outbox], item: Outgoing, skip: Option<ConnId>) {
    for o in outboxes.iter().filter(|o| Some(o.id) != skip) {
        o.push(item.clone());
    }
}

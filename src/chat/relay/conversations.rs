//! The conversation rules, as plain data and functions: no tokio, no store, no hub.
//!
//! Who may write to a conversation (its caller, its counsellor, supervisors who joined it), who
//! watches it, what it becomes when it is assigned, transferred or ended, and what a batch of
//! messages turns into: rows to store, then, once they are committed, an ack to each sender and the
//! message to everyone else in the conversation, in seq order. The relay's actor
//! ([`super::actor`]) asks, commits, and sends what it is told to, in order.
//!
//! Seqs: each conversation's messages are numbered from 1 without gaps, in commit order, and a
//! sender's repeated client id is answered with the earlier copy. This part gives the numbers
//! ([`NextSeqs::number`]): it keeps the next seq of each conversation written to between commits,
//! learns a conversation's last seq when it is first used (read once by the actor), numbers a batch
//! in its order, answers a repeat of an earlier message of the batch with that message and a repeat
//! of a stored one with the stored copy (the store names those when its write finds one, and the
//! batch is numbered again around them), and forgets a conversation's next seq when it ends and when
//! a commit of it failed (it may have gone through). The store writes the rows as numbered; its
//! `(contact_id, seq)` key refuses a wrong one. A repeat is delivered again only if nobody can have
//! seen it (its first commit was reported as failed, and may have gone through).

use std::collections::{HashMap, HashSet};

use crate::protocol::{rfc3339, ErrorCode, MessageView, Notice, Party, ServerEvent};
use crate::store::messages::{NewMessage, Stored, StoredMessage};

/// A socket's id, unique in the cluster.
pub type SocketId = u64;

/// A socket the relay writes to, as this part sees it: an id, and whether it is gone.
pub trait Socket: Clone {
    fn id(&self) -> SocketId;
    fn is_closed(&self) -> bool;
}

/// Most messages whose commit was reported as failed that are remembered (see [`Conversations::commit_failed`]).
pub const MAX_UNSURE: usize = 10_000;

/// Where a frame goes.
#[derive(Debug, Clone, PartialEq)]
pub enum To<W> {
    /// Every socket of the contact's caller, but `except`.
    Caller { contact: String, except: Option<SocketId> },
    /// Every socket of the contact's caller, as the conversation's last frame (the caller's
    /// session forgets the contact).
    CallerEnding { contact: String },
    /// Every socket of the counsellor, but `except`.
    Counsellor { user: String, except: Option<SocketId> },
    /// This socket (a sender, a watching supervisor).
    Socket(W),
}

/// A frame and everyone it goes to, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tell<W> {
    pub frame: ServerEvent,
    pub to: Vec<To<W>>,
}

/// A message someone sends to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub contact: String,
    pub party: Party,
    /// The counsellor's (or joined supervisor's) user id; None for the caller.
    pub sender_id: Option<String>,
    pub client_id: String,
    pub text: String,
    /// After this (ms) the message is refused rather than stored ([`crate::chat::promise`]).
    pub take_by: i64,
}

/// Messages admitted and not yet committed, with the socket each came from.
#[derive(Debug)]
pub struct Batch<W> {
    rows: Vec<NewMessage>,
    from: Vec<W>,
}

impl<W> Batch<W> {
    /// The rows to store, in the order they were posted.
    pub fn rows(&self) -> &[NewMessage] {
        &self.rows
    }
}

/// The next seq of each conversation the relay wrote to (it is the only writer of messages), so
/// that a batch needs no read of the last seq. A conversation missing is read on first use
/// ([`NextSeqs::unknown`]); it is forgotten when it ends, and when a commit of it failed (it may
/// have committed with its answer lost). A wrong entry cannot write a gap or a second copy: a seq
/// already taken is refused by the store's key, and the batch fails (and is numbered from a new read).
#[derive(Debug, Default)]
pub struct NextSeqs(HashMap<String, i64>);

/// A batch numbered ([`NextSeqs::number`]): the rows to write, and what each message is stored as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// For each message of the batch, in order: its new row, or the copy it repeats.
    stored: Vec<Stored>,
    /// Which of them are new: the rows to write, in order.
    new: Vec<usize>,
    /// Each conversation's next seq once the rows are committed.
    next: Vec<(String, i64)>,
}

impl Numbered {
    /// The rows to write: the new messages as numbered, in the batch's order.
    pub fn rows(&self) -> Vec<&StoredMessage> {
        self.new.iter().map(|i| &self.stored[*i].message).collect()
    }

    /// What each message of the batch is stored as, in order (once its rows are committed).
    pub fn into_stored(self) -> Vec<Stored> {
        self.stored
    }
}

impl NextSeqs {
    /// The next seq known for `contact`, if any.
    pub fn get(&self, contact: &str) -> Option<i64> {
        self.0.get(contact).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets a conversation (ended, or its last commit's outcome is unknown).
    pub fn forget(&mut self, contact: &str) {
        self.0.remove(contact);
    }

    /// The conversations of `batch` whose next seq is not known, each once: their last seq is to be
    /// read before the batch is numbered.
    pub fn unknown(&self, batch: &[NewMessage]) -> Vec<String> {
        let mut once = HashSet::new();
        batch
            .iter()
            .filter(|m| !self.0.contains_key(&m.contact_id) && once.insert(m.contact_id.as_str()))
            .map(|m| m.contact_id.clone())
            .collect()
    }

    /// Numbers `batch`, in its order: each new message gets its conversation's next seq (the one
    /// known, else one more than `last`, the last seq read for the conversations [`NextSeqs::unknown`]
    /// named, a conversation missing from it having none: from 1), and the next one the following; a
    /// message that repeats (same contact, sender and client id) one of `earlier` (stored copies the
    /// store named) or an earlier message of the batch takes no seq and is answered with that copy.
    pub fn number(&self, batch: &[NewMessage], last: &HashMap<String, i64>, earlier: &[StoredMessage]) -> Numbered {
        let mut next: HashMap<&str, i64> = HashMap::new();
        let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(batch.len());
        let earlier: HashMap<(&str, &str, &str), &StoredMessage> =
            earlier.iter().map(|m| ((m.contact_id.as_str(), m.sender.as_str(), m.client_id.as_str()), m)).collect();
        let mut stored: Vec<Stored> = Vec::with_capacity(batch.len());
        let mut new = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let key = (m.contact_id.as_str(), m.sender, m.client_id.as_str());
            if let Some(copy) = earlier.get(&key) {
                stored.push(Stored { message: (*copy).clone(), duplicate: true });
                continue;
            }
            if let Some(first) = seen.get(&key) {
                stored.push(Stored { message: stored[*first].message.clone(), duplicate: true });
                continue;
            }
            let seq = next.entry(&m.contact_id).or_insert_with(|| match self.0.get(&m.contact_id) {
                Some(known) => *known,
                None => last.get(&m.contact_id).copied().unwrap_or(0) + 1,
            });
            stored.push(Stored { message: m.stored(*seq), duplicate: false });
            *seq += 1;
            seen.insert(key, i);
            new.push(i);
        }
        Numbered { stored, new, next: next.into_iter().map(|(contact, seq)| (contact.to_string(), seq)).collect() }
    }

    /// A numbered batch was committed: its conversations' next seqs are known.
    pub fn committed(&mut self, numbered: &Numbered) {
        self.0.extend(numbered.next.iter().cloned());
    }

    /// A commit of `batch` failed (it may have gone through): its conversations are forgotten, and
    /// read again on their next use.
    pub fn failed(&mut self, batch: &[NewMessage]) {
        for m in batch {
            self.0.remove(&m.contact_id);
        }
    }
}

/// Who a rejoining socket speaks for (see [`Conversations::missed`]).
#[derive(Debug, Clone, Copy)]
pub enum Member<'a> {
    /// A caller's socket of this contact.
    Caller(&'a str),
    /// A counsellor's socket of this account.
    Counsellor(&'a str),
}

#[derive(Debug, Clone)]
struct Conversation<W> {
    counsellor: Option<String>,
    /// Supervisors who joined and may write.
    joined: Vec<String>,
    /// Supervisor sockets watching (monitor or join).
    watchers: Vec<W>,
}

impl<W> Default for Conversation<W> {
    fn default() -> Self {
        Conversation { counsellor: None, joined: Vec::new(), watchers: Vec::new() }
    }
}

impl<W> Conversation<W> {
    fn may_write(&self, sender: Option<&str>) -> bool {
        let Some(sender) = sender else { return false };
        self.counsellor.as_deref() == Some(sender) || self.joined.iter().any(|j| j == sender)
    }
}

type UnsureKey = (String, &'static str, String);

fn unsure_key(m: &NewMessage) -> UnsureKey {
    (m.contact_id.clone(), m.sender, m.client_id.clone())
}

/// The open conversations and everything the relay knows of them.
#[derive(Debug)]
pub struct Conversations<W> {
    open: HashMap<String, Conversation<W>>,
    /// The next seq of each open conversation written to (see the module's note on seqs).
    seqs: NextSeqs,
    /// Messages whose commit was reported as failed (contact, sender, client id): committed or not, nobody knows.
    unsure: HashSet<UnsureKey>,
    batch: Batch<W>,
}

impl<W: Socket> Conversations<W> {
    /// The open conversations (contact, counsellor if assigned), as restored from the database.
    pub fn new(open: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        Conversations {
            open: open.into_iter().map(|(contact, counsellor)| (contact, Conversation { counsellor, ..Default::default() })).collect(),
            seqs: NextSeqs::default(),
            unsure: HashSet::new(),
            batch: Batch { rows: Vec::new(), from: Vec::new() },
        }
    }

    /// None when the conversation is not open; else its counsellor, if it has one yet.
    pub fn counsellor(&self, contact: &str) -> Option<Option<&str>> {
        self.open.get(contact).map(|c| c.counsellor.as_deref())
    }

    /// The counsellor of an open conversation.
    pub fn counsellor_of(&self, contact: &str) -> Option<&str> {
        self.counsellor(contact).flatten()
    }

    pub fn is_open(&self, contact: &str) -> bool {
        self.open.contains_key(contact)
    }

    /// The open conversations assigned to `user`.
    pub fn conversations_of(&self, user: &str) -> Vec<String> {
        self.open.iter().filter(|(_, c)| c.counsellor.as_deref() == Some(user)).map(|(id, _)| id.clone()).collect()
    }

    /// A caller started the conversation.
    pub fn open(&mut self, contact: &str) {
        self.open.entry(contact.to_string()).or_default();
    }

    /// A message is posted at `now` from socket `from`: admitted into the batch, or refused (the
    /// frame to send its sender at once) when the sender may not write to the conversation.
    pub fn post(&mut self, now: i64, post: Post, from: W) -> Option<Tell<W>> {
        let allowed = match (self.open.get(&post.contact), post.party) {
            (Some(_), Party::Caller) => true,
            (Some(conv), Party::Counsellor) => conv.may_write(post.sender_id.as_deref()),
            _ => false,
        };
        if !allowed {
            let frame =
                ServerEvent::error_about(ErrorCode::UnknownContact, "no open conversation of yours with that contact", post.client_id);
            return Some(Tell { frame, to: vec![To::Socket(from)] });
        }
        // Waited too long to be taken (the relay was behind): its socket is about to refuse it; say
        // so now rather than store a copy the sender will send again.
        if now > post.take_by {
            let retry = crate::chat::promise::RETRY_AFTER.as_millis() as u64;
            return Some(Tell { frame: ServerEvent::overloaded(post.client_id, retry), to: vec![To::Socket(from)] });
        }
        self.batch.rows.push(NewMessage {
            contact_id: post.contact,
            sender: post.party.as_str(),
            sender_id: post.sender_id,
            client_id: post.client_id,
            body: post.text,
            at: now,
        });
        self.batch.from.push(from);
        None
    }

    /// The messages admitted since the last batch, if any: to be committed together.
    pub fn take_batch(&mut self) -> Option<Batch<W>> {
        if self.batch.rows.is_empty() {
            return None;
        }
        Some(std::mem::replace(&mut self.batch, Batch { rows: Vec::new(), from: Vec::new() }))
    }

    /// The next seqs known, lent to the store for a commit (it keeps them up to date).
    pub fn seqs(&mut self) -> &mut NextSeqs {
        &mut self.seqs
    }

    /// A commit of `batch` was reported as failed: it may have gone through with its answer lost,
    /// so a repeat of one of its messages found later is delivered then (nobody has seen it).
    pub fn commit_failed(&mut self, batch: &Batch<W>) {
        if self.unsure.len() + batch.rows.len() > MAX_UNSURE {
            self.unsure.clear();
        }
        self.unsure.extend(batch.rows.iter().map(unsure_key));
    }

    /// What a batch's commit turns into, in order: for each message, an ack to its sender (the seq
    /// it was stored with, or its earlier copy's) and the message to everyone else in the
    /// conversation (not for a repeat someone has seen); or, if it was not stored (`None`), an
    /// `unavailable` error for each sender, who sends it again with the same client id.
    pub fn committed(&mut self, batch: Batch<W>, stored: Option<Vec<Stored>>) -> Vec<Tell<W>> {
        let Batch { rows, from } = batch;
        let mut out = Vec::with_capacity(rows.len() * 2);
        match stored {
            Some(stored) => {
                for ((row, origin), s) in rows.iter().zip(from).zip(stored) {
                    let frame = ServerEvent::Ack {
                        contact_id: s.message.contact_id.clone(),
                        client_id: s.message.client_id.clone(),
                        seq: s.message.seq,
                    };
                    let origin_id = origin.id();
                    out.push(Tell { frame, to: vec![To::Socket(origin)] });
                    // A repeat is not delivered again, unless its first try was reported as failed:
                    // that transaction may have committed with its answer lost, and then nobody has seen it.
                    let unsure = !self.unsure.is_empty() && self.unsure.remove(&unsure_key(row));
                    if !s.duplicate || unsure {
                        out.push(self.delivery(&s.message, Some(origin_id)));
                    }
                }
            }
            None => {
                for (row, origin) in rows.into_iter().zip(from) {
                    let frame =
                        ServerEvent::error_about(ErrorCode::Unavailable, "the message was not stored; send it again", row.client_id);
                    out.push(Tell { frame, to: vec![To::Socket(origin)] });
                }
            }
        }
        out
    }

    /// A stored message to both parties' sockets and the watchers, except the socket it came from.
    pub fn delivery(&self, m: &StoredMessage, origin: Option<SocketId>) -> Tell<W> {
        let mut to = vec![To::Caller { contact: m.contact_id.clone(), except: origin }];
        if let Some(conv) = self.open.get(&m.contact_id) {
            if let Some(counsellor) = &conv.counsellor {
                to.push(To::Counsellor { user: counsellor.clone(), except: origin });
            }
            to.extend(conv.watchers.iter().filter(|w| Some(w.id()) != origin).cloned().map(To::Socket));
        }
        Tell { frame: ServerEvent::Message(view(m)), to }
    }

    /// Stored messages that came from no socket (a join notice), to everyone in the conversation.
    pub fn deliveries(&self, stored: &[Stored]) -> Vec<Tell<W>> {
        stored.iter().map(|s| self.delivery(&s.message, None)).collect()
    }

    /// A typing indicator, to the other party: the caller's to the counsellor; the counsellor's to
    /// the caller (only the assigned counsellor's).
    pub fn typing(&self, contact: &str, party: Party, sender_id: Option<&str>, active: bool) -> Option<Tell<W>> {
        let conv = self.open.get(contact)?;
        let frame = ServerEvent::Typing { contact_id: contact.to_string(), from: party, active };
        let to = match party {
            Party::Caller => To::Counsellor { user: conv.counsellor.clone()?, except: None },
            _ => {
                let counsellor = conv.counsellor.as_deref()?;
                if Some(counsellor) != sender_id {
                    return None;
                }
                To::Caller { contact: contact.to_string(), except: None }
            }
        };
        Some(Tell { frame, to: vec![to] })
    }

    /// The router assigned the conversation to `counsellor` (committed).
    pub fn assigned(&mut self, contact: &str, counsellor: &str) {
        self.open.entry(contact.to_string()).or_default().counsellor = Some(counsellor.to_string());
    }

    /// The conversation ended (committed): it is forgotten, and everyone in it is told.
    pub fn ended(&mut self, contact: &str, reason: &str) -> Tell<W> {
        let conv = self.open.remove(contact).unwrap_or_default();
        self.seqs.forget(contact);
        let frame = ServerEvent::ContactEnded { contact_id: contact.to_string(), reason: reason.to_string() };
        let mut to = vec![To::CallerEnding { contact: contact.to_string() }];
        if let Some(c) = conv.counsellor {
            to.push(To::Counsellor { user: c, except: None });
        }
        to.extend(conv.watchers.into_iter().map(To::Socket));
        Tell { frame, to }
    }

    /// A supervisor moved the conversation (committed) from counsellor `from` to counsellor `to`, or
    /// back into `helpline`'s queue: what to send, in order (`from` is told it ended for them; if it
    /// went back to a queue, the caller is told), then the counsellor it is now assigned to, if it
    /// is (the caller hears who, and they get the conversation with its history, as on an assignment).
    pub fn transferred(&mut self, contact: &str, from: &str, to: Option<&str>, helpline: &str) -> (Vec<Tell<W>>, Option<String>) {
        let ended = ServerEvent::ContactEnded { contact_id: contact.to_string(), reason: "transferred".into() };
        let mut tells = vec![Tell { frame: ended, to: vec![To::Counsellor { user: from.to_string(), except: None }] }];
        let Some(conv) = self.open.get_mut(contact) else { return (tells, None) };
        conv.counsellor = to.map(str::to_string);
        if to.is_none() {
            tells.push(Tell {
                frame: ServerEvent::Transferred { contact_id: contact.to_string(), helpline: helpline.to_string() },
                to: vec![To::Caller { contact: contact.to_string(), except: None }],
            });
        }
        (tells, to.map(str::to_string))
    }

    /// The caller's connection dropped or came back: their counsellor is told.
    pub fn caller_presence(&self, contact: &str, online: bool) -> Option<Tell<W>> {
        let user = self.counsellor_of(contact)?.to_string();
        let frame = ServerEvent::CallerPresence { contact_id: contact.to_string(), online };
        Some(Tell { frame, to: vec![To::Counsellor { user, except: None }] })
    }

    /// A supervisor socket starts watching an open conversation (sockets gone are dropped from its
    /// watchers on the way); None when it is not open, else its counsellor.
    pub fn watch(&mut self, contact: &str, socket: W) -> Option<Option<String>> {
        let conv = self.open.get_mut(contact)?;
        conv.watchers.retain(|w| !w.is_closed());
        if !conv.watchers.iter().any(|w| w.id() == socket.id()) {
            conv.watchers.push(socket);
        }
        Some(conv.counsellor.clone())
    }

    /// A supervisor who watches the conversation joins it: they may write.
    pub fn join(&mut self, contact: &str, supervisor: &str) {
        if let Some(conv) = self.open.get_mut(contact) {
            if !conv.joined.iter().any(|j| j == supervisor) {
                conv.joined.push(supervisor.to_string());
            }
        }
    }

    /// The system message that tells both parties a supervisor joined.
    pub fn join_notice(now: i64, contact: &str, supervisor: &str, name: &str) -> NewMessage {
        NewMessage {
            contact_id: contact.to_string(),
            sender: "system",
            sender_id: Some(supervisor.to_string()),
            client_id: format!("{JOIN_PREFIX}{supervisor}-{now}"),
            body: format!("{name}{JOINED}"),
            at: now,
        }
    }

    /// Socket `conn` stops watching.
    pub fn unwatch(&mut self, contact: &str, conn: SocketId) {
        if let Some(conv) = self.open.get_mut(contact) {
            conv.watchers.retain(|w| w.id() != conn);
        }
    }

    /// Cluster mode, on a new leader: a supervisor socket that watched (and, `joined`, joined) the
    /// conversation with the last leader goes on doing so. False when it is no longer open.
    pub fn rewatch(&mut self, contact: &str, socket: W, joined: Option<String>) -> bool {
        let Some(conv) = self.open.get_mut(contact) else { return false };
        if !conv.watchers.iter().any(|w| w.id() == socket.id()) {
            conv.watchers.push(socket);
        }
        if let Some(supervisor) = joined.filter(|s| !conv.joined.contains(s)) {
            conv.joined.push(supervisor);
        }
        true
    }

    /// A whisper: to the counsellor and the other watchers (not the socket it came from). None when
    /// the conversation has no counsellor.
    pub fn whisper(&self, contact: &str, frame: ServerEvent, origin: SocketId) -> Option<Tell<W>> {
        let conv = self.open.get(contact)?;
        let mut to = vec![To::Counsellor { user: conv.counsellor.clone()?, except: None }];
        to.extend(conv.watchers.iter().filter(|w| w.id() != origin).cloned().map(To::Socket));
        Some(Tell { frame, to })
    }

    /// Cluster mode, on a new leader: of what a rejoining socket was sent (conversation, newest
    /// seq), the open conversations it is a party to: those it may have missed messages of.
    pub fn missed(&self, member: Member<'_>, seen: &[(String, i64)]) -> Vec<(String, i64)> {
        seen.iter()
            .filter(|(contact, _)| match (member, self.open.get(contact)) {
                (_, None) => false,
                (Member::Caller(mine), Some(_)) => mine == contact,
                (Member::Counsellor(user), Some(conv)) => conv.counsellor.as_deref() == Some(user),
            })
            .cloned()
            .collect()
    }
}

/// A stored message as clients see it.
pub fn view(m: &StoredMessage) -> MessageView {
    MessageView {
        contact_id: m.contact_id.clone(),
        seq: m.seq,
        from: Party::parse(&m.sender),
        text: m.body.clone(),
        at: rfc3339(m.at),
        client_id: m.client_id.clone(),
        notice: notice_of(&m.sender, &m.client_id, &m.body),
    }
}

/// The `client_id` of a supervisor's join notice starts so (then the supervisor's id and the time).
const JOIN_PREFIX: &str = "join-";
/// A join notice's English words after the supervisor's name.
const JOINED: &str = " joined the conversation";

/// The code of a server-made system message (a join notice, as [`Conversations::join_notice`] writes
/// it, live or from the history), so that each page words it in its language; None for any other.
pub fn notice_of(sender: &str, client_id: &str, body: &str) -> Option<Notice> {
    if sender != "system" || !client_id.starts_with(JOIN_PREFIX) {
        return None;
    }
    let name = body.strip_suffix(JOINED)?;
    Some(Notice { kind: "joined".into(), name: name.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::Written;
    use proptest::prelude::*;

    /// A socket in the tests: an id, and the party it writes as.
    #[derive(Debug, Clone, PartialEq)]
    struct Sock {
        id: SocketId,
        party: Party,
        sender_id: Option<String>,
        closed: bool,
    }

    impl Socket for Sock {
        fn id(&self) -> SocketId {
            self.id
        }
        fn is_closed(&self) -> bool {
            self.closed
        }
    }

    fn caller(id: SocketId) -> Sock {
        Sock { id, party: Party::Caller, sender_id: None, closed: false }
    }

    fn staff(id: SocketId, user: &str) -> Sock {
        Sock { id, party: Party::Counsellor, sender_id: Some(user.into()), closed: false }
    }

    fn post(contact: &str, from: &Sock, client_id: &str) -> Post {
        Post {
            contact: contact.into(),
            party: from.party,
            sender_id: from.sender_id.clone(),
            client_id: client_id.into(),
            text: format!("text of {client_id}"),
            take_by: i64::MAX,
        }
    }

    #[test]
    fn a_message_taken_after_its_time_is_refused_not_stored() {
        let mut conv = Conversations::<Sock>::new([("c1".to_string(), Some("u1".to_string()))]);
        let kid = caller(1);
        let late = Post { take_by: 999, ..post("c1", &kid, "k1") };
        let tell = conv.post(1_000, late, kid.clone()).expect("refused");
        assert_eq!(tell.to, vec![To::Socket(kid.clone())]);
        match tell.frame {
            ServerEvent::Error { code: ErrorCode::Overloaded, reference, retry_after_ms, .. } => {
                assert_eq!(reference.as_deref(), Some("k1"));
                assert!(retry_after_ms.is_some_and(|ms| ms > 0));
            }
            other => panic!("{other:?}"),
        }
        assert!(conv.take_batch().is_none(), "nothing to store");
        // On time (the same instant as take_by): admitted.
        assert!(conv.post(999, Post { take_by: 999, ..post("c1", &kid, "k2") }, kid).is_none());
        assert_eq!(conv.take_batch().map(|b| b.rows().len()), Some(1));
    }

    /// The store as `Store::write_messages` behaves: it numbers nothing and writes the rows it is
    /// given, all or none; it refuses a seq already taken (the `(contact_id, seq)` key), and a batch
    /// with a repeat of a stored (contact, sender, client id) stores nothing and names the stored copies.
    #[derive(Default)]
    struct ModelStore {
        /// Each conversation's rows, in the order written.
        rows: HashMap<String, Vec<StoredMessage>>,
        /// Batches refused for a seq already taken.
        refused: usize,
    }

    impl ModelStore {
        fn last_seqs(&self, contacts: &[String]) -> HashMap<String, i64> {
            contacts.iter().filter_map(|c| Some((c.clone(), self.rows.get(c)?.iter().map(|r| r.seq).max()?))).collect()
        }

        fn write(&mut self, rows: &[&StoredMessage]) -> Option<Written> {
            let mut keys = HashSet::new();
            let taken = |m: &StoredMessage| self.rows.get(&m.contact_id).is_some_and(|rs| rs.iter().any(|r| r.seq == m.seq));
            if rows.iter().any(|m| taken(m) || !keys.insert((m.contact_id.clone(), m.seq))) {
                self.refused += 1;
                return None;
            }
            let copies: Vec<StoredMessage> =
                rows.iter().filter_map(|m| self.copy_of(&m.contact_id, &m.sender, &m.client_id).cloned()).collect();
            if !copies.is_empty() {
                return Some(Written::Repeats(copies));
            }
            for m in rows {
                self.rows.entry(m.contact_id.clone()).or_default().push((*m).clone());
            }
            Some(Written::All)
        }

        fn copy_of(&self, contact: &str, sender: &str, client_id: &str) -> Option<&StoredMessage> {
            self.rows.get(contact)?.iter().find(|r| r.sender == sender && r.client_id == client_id)
        }

        fn seq_of(&self, contact: &str, sender: &str, client_id: &str) -> Option<i64> {
            self.copy_of(contact, sender, client_id).map(|r| r.seq)
        }

        /// What the actor's `store_messages` does, against this store: the last seqs of the
        /// conversations `seqs` does not know read, the batch numbered, written, numbered again around
        /// the repeats the write named, written again. `t` is how the commit turns out (`Failed`: the
        /// first write fails; `Lost`: the commit goes through, and is reported as failed).
        fn commit(&mut self, seqs: &mut NextSeqs, batch: &[NewMessage], t: Try) -> Option<Vec<Stored>> {
            let last = self.last_seqs(&seqs.unknown(batch));
            let mut earlier = Vec::new();
            for _ in 0..2 {
                let numbered = seqs.number(batch, &last, &earlier);
                let written = if t == Try::Failed { None } else { self.write(&numbered.rows()) };
                match written {
                    Some(Written::All) if t == Try::Ok => {
                        seqs.committed(&numbered);
                        return Some(numbered.into_stored());
                    }
                    Some(Written::Repeats(copies)) => earlier = copies,
                    Some(Written::All) | None => break,
                }
            }
            seqs.failed(batch);
            None
        }
    }

    fn frames_to(tells: &[Tell<Sock>], socket: SocketId) -> Vec<ServerEvent> {
        tells.iter().filter(|t| t.to.iter().any(|to| matches!(to, To::Socket(s) if s.id == socket))).map(|t| t.frame.clone()).collect()
    }

    fn new_message(contact: &str, sender: &'static str, client_id: &str) -> NewMessage {
        NewMessage {
            contact_id: contact.into(),
            sender,
            sender_id: None,
            client_id: client_id.into(),
            body: format!("text of {client_id}"),
            at: 7,
        }
    }

    /// The numbering: per conversation in the batch's order, from the next seq known or one more than
    /// the last read (from 1 without one), a repeat of an earlier message of the batch or of a
    /// stored copy the store named taking no seq; the next seqs kept on commit, forgotten on failure.
    #[test]
    fn a_batch_is_numbered_per_conversation_in_order_and_repeats_take_no_seq() {
        let mut seqs = NextSeqs::default();
        seqs.committed(&seqs.number(&[new_message("a", "caller", "old")], &HashMap::from([("a".to_string(), 4)]), &[]));
        assert_eq!(seqs.get("a"), Some(6), "a's last seq was 4: 5 given, 6 next");
        let batch = [
            new_message("a", "caller", "k1"),
            new_message("b", "caller", "k1"),
            new_message("a", "counsellor", "k1"),
            new_message("c", "caller", "k1"),
            new_message("a", "caller", "k1"),
            new_message("b", "counsellor", "k2"),
            new_message("a", "caller", "k2"),
        ];
        assert_eq!(seqs.unknown(&batch), vec!["b".to_string(), "c".to_string()], "each once, a known");
        let last = HashMap::from([("b".to_string(), 3)]);

        let numbered = seqs.number(&batch, &last, &[]);
        let seqs_of =
            |stored: &[Stored]| stored.iter().map(|s| (s.message.contact_id.clone(), s.message.seq, s.duplicate)).collect::<Vec<_>>();
        let rows: Vec<(String, i64)> = numbered.rows().iter().map(|r| (r.contact_id.clone(), r.seq)).collect();
        let expected_rows = [("a", 6), ("b", 4), ("a", 7), ("c", 1), ("b", 5), ("a", 8)];
        assert_eq!(rows, expected_rows.map(|(c, s)| (c.to_string(), s)).to_vec(), "the same client id of another sender is new");
        assert_eq!(numbered.rows()[2].sender, "counsellor");
        let stored = numbered.clone().into_stored();
        assert_eq!(stored[4], Stored { message: stored[0].message.clone(), duplicate: true }, "a repeat in the batch: the first copy");
        assert_eq!(seqs_of(&stored)[6], ("a".to_string(), 8, false));

        // The store found a stored copy of a's k2 (and of nothing else): numbered again around it.
        let copy = StoredMessage { seq: 2, body: "the first text".into(), ..new_message("a", "caller", "k2").stored(2) };
        let again = seqs.number(&batch, &last, std::slice::from_ref(&copy));
        assert_eq!(again.rows().len(), 5);
        let stored = again.clone().into_stored();
        assert_eq!(stored[6], Stored { message: copy, duplicate: true }, "the stored copy, and no seq taken");
        assert_eq!(seqs.get("a"), Some(6), "nothing learnt before a commit");
        seqs.committed(&again);
        assert_eq!((seqs.get("a"), seqs.get("b"), seqs.get("c")), (Some(8), Some(6), Some(2)));

        // A failed commit forgets the batch's conversations; an ending forgets its own.
        seqs.failed(&batch[..2]);
        assert_eq!((seqs.get("a"), seqs.get("b"), seqs.get("c")), (None, None, Some(2)));
        let mut conv: Conversations<Sock> = Conversations::new([("c".to_string(), None)]);
        *conv.seqs() = seqs;
        conv.ended("c", "caller_ended");
        assert!(conv.seqs().is_empty());
    }

    #[test]
    fn only_the_caller_the_counsellor_and_supervisors_who_joined_may_write() {
        let mut conv = Conversations::new([("c1".to_string(), Some("ana".to_string()))]);
        let (me, ana, ion, sup) = (caller(1), staff(2, "ana"), staff(3, "ion"), staff(4, "sue"));
        assert_eq!(conv.post(1, post("c1", &me, "k1"), me.clone()), None);
        assert_eq!(conv.post(1, post("c1", &ana, "k2"), ana.clone()), None);
        let refused = conv.post(1, post("c1", &ion, "k3"), ion.clone()).expect("ion is not in the conversation");
        assert!(matches!(&refused.frame, ServerEvent::Error { code: ErrorCode::UnknownContact, reference: Some(r), .. } if r == "k3"));
        assert_eq!(refused.to, vec![To::Socket(ion.clone())]);
        assert!(conv.post(1, post("c1", &sup, "k4"), sup.clone()).is_some(), "a supervisor who only watches may not write");
        assert_eq!(conv.watch("c1", sup.clone()), Some(Some("ana".into())));
        conv.join("c1", "sue");
        assert_eq!(conv.post(1, post("c1", &sup, "k5"), sup.clone()), None, "one who joined may");
        assert!(conv.post(1, post("c2", &me, "k6"), me.clone()).is_some(), "no such conversation");
        let system = Post { party: Party::System, ..post("c1", &ana, "k7") };
        assert!(conv.post(1, system, ana.clone()).is_some(), "nobody posts as the system");
        let batch = conv.take_batch().expect("three admitted");
        let ids: Vec<&str> = batch.rows().iter().map(|r| r.client_id.as_str()).collect();
        assert_eq!(ids, ["k1", "k2", "k5"]);
        assert_eq!(batch.rows()[2].sender, "counsellor");
        assert!(conv.take_batch().is_none(), "taken");
    }

    #[test]
    fn a_committed_batch_acks_each_sender_then_delivers_to_everyone_else_in_order() {
        let mut conv = Conversations::new([("c1".to_string(), Some("ana".to_string()))]);
        let (me, ana, sup) = (caller(1), staff(2, "ana"), staff(3, "sue"));
        conv.watch("c1", sup.clone());
        conv.post(5, post("c1", &me, "k1"), me.clone());
        conv.post(6, post("c1", &ana, "k2"), ana.clone());
        let mut store = ModelStore::default();
        let batch = conv.take_batch().expect("batch");
        let stored = store.commit(conv.seqs(), batch.rows(), Try::Ok);
        let tells = conv.committed(batch, stored);
        assert_eq!(tells.len(), 4);
        assert_eq!(tells[0].frame, ServerEvent::Ack { contact_id: "c1".into(), client_id: "k1".into(), seq: 1 });
        assert_eq!(tells[0].to, vec![To::Socket(me.clone())]);
        assert!(matches!(&tells[1].frame, ServerEvent::Message(m) if m.seq == 1 && m.from == Party::Caller));
        assert_eq!(
            tells[1].to,
            vec![
                To::Caller { contact: "c1".into(), except: Some(1) },
                To::Counsellor { user: "ana".into(), except: Some(1) },
                To::Socket(sup.clone()),
            ]
        );
        assert_eq!(tells[2].frame, ServerEvent::Ack { contact_id: "c1".into(), client_id: "k2".into(), seq: 2 });
        assert!(matches!(&tells[3].frame, ServerEvent::Message(m) if m.seq == 2 && m.from == Party::Counsellor));
    }

    #[test]
    fn a_repeat_is_acked_with_the_earlier_copy_and_delivered_only_if_nobody_can_have_seen_it() {
        let mut conv = Conversations::new([("c1".to_string(), Some("ana".to_string()))]);
        let me = caller(1);
        let mut store = ModelStore::default();
        conv.post(1, post("c1", &me, "k1"), me.clone());
        let batch = conv.take_batch().expect("batch");
        let stored = store.commit(conv.seqs(), batch.rows(), Try::Ok);
        conv.committed(batch, stored);
        // Sent again (the ack was lost on the way): the earlier copy, not delivered twice.
        conv.post(2, post("c1", &me, "k1"), me.clone());
        let batch = conv.take_batch().expect("batch");
        let stored = store.commit(conv.seqs(), batch.rows(), Try::Ok);
        let tells = conv.committed(batch, stored);
        assert_eq!(tells.len(), 1, "{tells:?}");
        assert_eq!(tells[0].frame, ServerEvent::Ack { contact_id: "c1".into(), client_id: "k1".into(), seq: 1 });
        // A commit reported as failed that went through: the sender hears `unavailable`, sends
        // again, and the repeat is delivered then (nobody has seen it).
        conv.post(3, post("c1", &me, "k2"), me.clone());
        let batch = conv.take_batch().expect("batch");
        assert_eq!(store.commit(conv.seqs(), batch.rows(), Try::Lost), None);
        conv.commit_failed(&batch);
        let tells = conv.committed(batch, None);
        assert!(matches!(&tells[0].frame, ServerEvent::Error { code: ErrorCode::Unavailable, .. }));
        conv.post(4, post("c1", &me, "k2"), me.clone());
        let batch = conv.take_batch().expect("batch");
        let stored = store.commit(conv.seqs(), batch.rows(), Try::Ok).expect("stored");
        assert!(stored[0].duplicate);
        let tells = conv.committed(batch, Some(stored));
        assert_eq!(tells.len(), 2, "acked and delivered: {tells:?}");
        assert!(matches!(&tells[1].frame, ServerEvent::Message(m) if m.seq == 2));
    }

    #[test]
    fn an_ending_forgets_the_conversation_and_tells_everyone_in_it() {
        let mut conv = Conversations::new([("c1".to_string(), Some("ana".to_string()))]);
        let sup = staff(3, "sue");
        conv.watch("c1", sup.clone());
        let tell = conv.ended("c1", "caller_ended");
        assert_eq!(tell.frame, ServerEvent::ContactEnded { contact_id: "c1".into(), reason: "caller_ended".into() });
        assert_eq!(
            tell.to,
            vec![To::CallerEnding { contact: "c1".into() }, To::Counsellor { user: "ana".into(), except: None }, To::Socket(sup)]
        );
        assert!(!conv.is_open("c1"));
        assert_eq!(conv.caller_presence("c1", true), None);
        let me = caller(1);
        assert!(conv.post(1, post("c1", &me, "k"), me.clone()).is_some(), "an ended conversation takes no message");
    }

    #[test]
    fn assignment_transfer_typing_and_presence_follow_the_counsellor() {
        let mut conv: Conversations<Sock> = Conversations::new([]);
        conv.open("c1");
        assert_eq!(conv.counsellor("c1"), Some(None));
        assert_eq!(conv.typing("c1", Party::Caller, None, true), None, "nobody to tell yet");
        conv.assigned("c1", "ana");
        let typing = conv.typing("c1", Party::Caller, None, true).expect("to ana");
        assert_eq!(typing.to, vec![To::Counsellor { user: "ana".into(), except: None }]);
        assert_eq!(conv.typing("c1", Party::Counsellor, Some("ion"), true), None, "only the assigned counsellor's");
        assert!(conv.typing("c1", Party::Counsellor, Some("ana"), true).is_some());
        assert_eq!(conv.conversations_of("ana"), vec!["c1".to_string()]);
        let (told, next) = conv.transferred("c1", "ana", Some("ion"), "children");
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].to, vec![To::Counsellor { user: "ana".into(), except: None }]);
        assert_eq!(next.as_deref(), Some("ion"), "assigned to ion");
        assert_eq!(conv.counsellor_of("c1"), Some("ion"));
        let presence = conv.caller_presence("c1", false).expect("to ion");
        assert_eq!(presence.to, vec![To::Counsellor { user: "ion".into(), except: None }]);
        let (told, next) = conv.transferred("c1", "ion", None, "family_violence");
        assert_eq!(next, None);
        assert!(matches!(&told[1].frame, ServerEvent::Transferred { helpline, .. } if helpline == "family_violence"));
        assert_eq!(told[1].to, vec![To::Caller { contact: "c1".into(), except: None }]);
        assert_eq!(conv.counsellor("c1"), Some(None));
        let (told, next) = conv.transferred("gone", "ion", None, "children");
        assert_eq!((told.len(), next), (1, None), "the counsellor is told, nothing else");
    }

    #[test]
    fn watchers_come_and_go_and_a_whisper_skips_the_socket_it_came_from() {
        let mut conv = Conversations::new([("c1".to_string(), Some("ana".to_string()))]);
        let (s1, s2) = (staff(7, "sue"), staff(8, "tom"));
        assert_eq!(conv.watch("nope", s1.clone()), None);
        conv.watch("c1", s1.clone());
        conv.watch("c1", s1.clone());
        conv.watch("c1", s2.clone());
        let whisper = ServerEvent::Whisper { contact_id: "c1".into(), from: "Sue".into(), text: "ask".into(), at: "t".into() };
        let tell = conv.whisper("c1", whisper.clone(), 7).expect("the counsellor");
        assert_eq!(tell.to, vec![To::Counsellor { user: "ana".into(), except: None }, To::Socket(s2.clone())]);
        conv.unwatch("c1", 8);
        let tell = conv.whisper("c1", whisper, 7).expect("the counsellor");
        assert_eq!(tell.to.len(), 1);
        // A closed socket is dropped when the next one starts watching.
        conv.watch("c1", Sock { closed: true, ..s2.clone() });
        conv.watch("c1", staff(9, "uma"));
        let m = StoredMessage {
            contact_id: "c1".into(),
            seq: 1,
            sender: "caller".into(),
            sender_id: None,
            client_id: "k".into(),
            body: "b".into(),
            at: 0,
        };
        let sockets: Vec<SocketId> =
            conv.delivery(&m, None).to.iter().filter_map(|t| if let To::Socket(s) = t { Some(s.id) } else { None }).collect();
        assert_eq!(sockets, vec![7, 9]);
        // A rewatch after a leader change keeps the join.
        assert!(conv.rewatch("c1", s2.clone(), Some("tom".into())));
        assert_eq!(conv.post(1, post("c1", &s2, "t1"), s2.clone()), None, "tom joined with the last leader");
        assert!(!conv.rewatch("gone", s2, None));
    }

    #[test]
    fn a_rejoining_socket_catches_up_only_on_its_own_open_conversations() {
        let mut conv: Conversations<Sock> = Conversations::new([("c1".to_string(), Some("ana".to_string())), ("c2".to_string(), None)]);
        let seen = vec![("c1".to_string(), 4), ("c2".to_string(), 2), ("c3".to_string(), 9)];
        assert_eq!(conv.missed(Member::Caller("c2"), &seen), vec![("c2".to_string(), 2)]);
        assert_eq!(conv.missed(Member::Counsellor("ana"), &seen), vec![("c1".to_string(), 4)]);
        assert!(conv.missed(Member::Counsellor("ion"), &seen).is_empty());
        conv.ended("c1", "counsellor_ended");
        assert!(conv.missed(Member::Counsellor("ana"), &seen).is_empty());
    }

    #[test]
    fn a_join_notice_comes_from_the_system_and_reaches_everyone() {
        let notice = Conversations::<Sock>::join_notice(42, "c1", "sue", "Sue");
        assert_eq!(
            (notice.sender, notice.client_id.as_str(), notice.body.as_str()),
            ("system", "join-sue-42", "Sue joined the conversation")
        );
        let mut conv = Conversations::<Sock>::new([("c1".to_string(), Some("ana".to_string()))]);
        let mut store = ModelStore::default();
        let stored = store.commit(conv.seqs(), &[notice], Try::Ok).expect("stored");
        let tells = conv.deliveries(&stored);
        assert_eq!(tells[0].to[0], To::Caller { contact: "c1".into(), except: None });
        assert_eq!(tells[0].to[1], To::Counsellor { user: "ana".into(), except: None });
        // Sent with its code, so each page says it in its own language (live and from the history).
        let ServerEvent::Message(m) = &tells[0].frame else { panic!("a message frame") };
        assert_eq!(m.notice, Some(Notice { kind: "joined".into(), name: "Sue".into() }));
        assert!(ServerEvent::Message(m.clone()).to_json().contains(r#""notice":{"kind":"joined","name":"Sue"}"#));
        let _ = conv.take_batch();
    }

    #[test]
    fn only_the_servers_join_notices_carry_a_code() {
        let joined = Some(Notice { kind: "joined".into(), name: "Maria (supervisor)".into() });
        assert_eq!(notice_of("system", "join-u1-5", "Maria (supervisor) joined the conversation"), joined);
        // A caller or counsellor who writes the same words is not a notice; nor is another system line.
        assert_eq!(notice_of("caller", "join-u1-5", "Maria (supervisor) joined the conversation"), None);
        assert_eq!(notice_of("counsellor", "join-x", "Ana joined the conversation"), None);
        assert_eq!(notice_of("system", "other-1", "Ana joined the conversation"), None);
        assert_eq!(notice_of("system", "join-u1-5", "something else"), None);
    }

    /// How one commit attempt turns out.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Try {
        Ok,
        /// Committed, but the answer was lost: reported as failed.
        Lost,
        /// Not committed.
        Failed,
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A post to conversation `conv` by its caller (false) or counsellor (true), with client id `client`.
        Post {
            conv: usize,
            counsellor: bool,
            client: u8,
        },
        /// The batch is committed: first try, and a retry if the first was reported as failed.
        Flush(Try, Try),
        /// A supervisor joins (their notice is stored at once).
        Join {
            conv: usize,
        },
        End {
            conv: usize,
        },
        /// Another writer stores a message in conversation `conv`, numbered after the store's last,
        /// behind the relay's back: the next seq the relay knows is then taken.
        Behind {
            conv: usize,
        },
    }

    fn op(faults: bool) -> impl Strategy<Value = Op> {
        let attempt = if faults {
            prop_oneof![4 => Just(Try::Ok), 1 => Just(Try::Lost), 1 => Just(Try::Failed)].boxed()
        } else {
            Just(Try::Ok).boxed()
        };
        let behind = if faults { 1 } else { 0 };
        prop_oneof![
            12 => (0..3usize, any::<bool>(), 0..8u8).prop_map(|(conv, counsellor, client)| Op::Post { conv, counsellor, client }),
            4 => (attempt.clone(), attempt).prop_map(|(a, b)| Op::Flush(a, b)),
            1 => (0..3usize).prop_map(|conv| Op::Join { conv }),
            1 => (0..3usize).prop_map(|conv| Op::End { conv }),
            behind => (0..3usize).prop_map(|conv| Op::Behind { conv }),
        ]
    }

    const CONTACTS: [&str; 3] = ["c0", "c1", "c2"];

    /// What a run did.
    #[derive(Default)]
    struct Run {
        /// Every frame sent, in order.
        out: Vec<Tell<Sock>>,
        /// The messages refused as not stored (conversation, sender, client id).
        refused: Vec<(String, Sock, String)>,
        /// Stored messages (conversation, seq) a repeat of which went through a commit reported as
        /// failed: those may be delivered again (the relay cannot tell whether anyone saw them).
        may_repeat: HashSet<(String, i64)>,
        /// Messages (conversation, seq) another writer stored: the relay delivers none of them.
        behind: HashSet<(String, i64)>,
    }

    /// Commits what is waiting the way the actor does (a retry if the first try was reported as
    /// failed, then the frames).
    fn flush(conv: &mut Conversations<Sock>, store: &mut ModelStore, tries: (Try, Try), run: &mut Run) {
        let Some(batch) = conv.take_batch() else { return };
        let repeats: Vec<(String, i64)> = batch
            .rows()
            .iter()
            .filter_map(|r| store.seq_of(&r.contact_id, r.sender, &r.client_id).map(|seq| (r.contact_id.clone(), seq)))
            .collect();
        let mut result = store.commit(conv.seqs(), batch.rows(), tries.0);
        if result.is_none() {
            conv.commit_failed(&batch);
            run.may_repeat.extend(repeats);
            result = store.commit(conv.seqs(), batch.rows(), tries.1);
        }
        if result.is_none() {
            run.refused.extend(batch.rows.iter().zip(&batch.from).map(|(r, s)| (r.contact_id.clone(), s.clone(), r.client_id.clone())));
        }
        run.out.extend(conv.committed(batch, result));
    }

    /// Runs the ops with the model store.
    fn run(ops: &[Op], store: &mut ModelStore, conv: &mut Conversations<Sock>) -> Run {
        let sockets: Vec<(Sock, Sock)> =
            (0..CONTACTS.len()).map(|i| (caller(10 + i as u64), staff(20 + i as u64, &format!("u{i}")))).collect();
        let mut run = Run::default();
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Post { conv: i, counsellor, client } => {
                    let from = if *counsellor { sockets[*i].1.clone() } else { sockets[*i].0.clone() };
                    let p = post(CONTACTS[*i], &from, &format!("k{client}"));
                    if let Some(t) = conv.post(n as i64, p, from) {
                        run.out.push(t);
                    }
                }
                Op::Flush(a, b) => flush(conv, store, (*a, *b), &mut run),
                Op::Join { conv: i } => {
                    // The actor commits what is waiting before it handles anything else.
                    flush(conv, store, (Try::Ok, Try::Ok), &mut run);
                    let contact = CONTACTS[*i];
                    if conv.watch(contact, staff(30 + *i as u64, "sup")).is_some() {
                        conv.join(contact, "sup");
                        let notice = Conversations::<Sock>::join_notice(n as i64, contact, "sup", "Sup");
                        let stored = store.commit(conv.seqs(), &[notice], Try::Ok).unwrap_or_default();
                        run.out.extend(conv.deliveries(&stored));
                    }
                }
                Op::End { conv: i } => {
                    flush(conv, store, (Try::Ok, Try::Ok), &mut run);
                    run.out.push(conv.ended(CONTACTS[*i], "caller_ended"));
                }
                Op::Behind { conv: i } => {
                    let contact = CONTACTS[*i].to_string();
                    let seq = store.last_seqs(std::slice::from_ref(&contact)).get(&contact).copied().unwrap_or(0) + 1;
                    let other = NewMessage {
                        contact_id: contact.clone(),
                        sender: "caller",
                        sender_id: None,
                        client_id: format!("other-{n}"),
                        body: "elsewhere".into(),
                        at: n as i64,
                    };
                    assert_eq!(store.write(&[&other.stored(seq)]), Some(Written::All), "the other writer numbers right");
                    run.behind.insert((contact, seq));
                }
            }
        }
        flush(conv, store, (Try::Ok, Try::Ok), &mut run);
        run
    }

    fn check(ops: Vec<Op>, faults: bool) -> Result<(), TestCaseError> {
        let mut store = ModelStore::default();
        let mut conv = Conversations::new(CONTACTS.iter().enumerate().map(|(i, c)| (c.to_string(), Some(format!("u{i}")))));
        let mut run = run(&ops, &mut store, &mut conv);
        // Everything refused as not stored is sent again, with the same client id, and committed.
        for (contact, socket, client) in std::mem::take(&mut run.refused) {
            let p = post(&contact, &socket, &client);
            if let Some(t) = conv.post(0, p, socket) {
                run.out.push(t);
            }
        }
        flush(&mut conv, &mut store, (Try::Ok, Try::Ok), &mut run);
        prop_assert!(run.refused.is_empty(), "committed when sent again: {:?}", run.refused);
        let Run { out, may_repeat, behind, .. } = run;

        // The rows as numbered and written: per conversation from 1, gap-free, in commit order (the
        // model store takes any seq not taken: the numbering is the relay's). A known next seq is
        // wrong only after another writer took it, and once: the failed commit forgets it.
        for rows in store.rows.values() {
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            prop_assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>());
        }
        prop_assert!(store.refused <= behind.len(), "{} batches refused for {} messages of another writer", store.refused, behind.len());
        let mut delivered: HashMap<String, Vec<i64>> = HashMap::new();
        for tell in &out {
            match &tell.frame {
                // Every ack names the seq the store holds for that sender's client id: a repeated
                // client id is answered with the earlier copy.
                ServerEvent::Ack { contact_id, client_id, seq } => {
                    let [To::Socket(sender)] = tell.to.as_slice() else { return Err(TestCaseError::fail("an ack goes to its sender")) };
                    prop_assert_eq!(store.seq_of(contact_id, sender.party.as_str(), client_id), Some(*seq));
                }
                ServerEvent::Message(m) => {
                    let caller = matches!(tell.to.first(), Some(To::Caller { contact, .. }) if *contact == m.contact_id);
                    prop_assert!(caller, "every message goes to the caller's sockets");
                    delivered.entry(m.contact_id.clone()).or_default().push(m.seq);
                }
                _ => {}
            }
        }
        for (contact, rows) in &store.rows {
            let seqs = delivered.remove(contact).unwrap_or_default();
            if !faults {
                // Without failures: delivered in commit order, from 1, gap-free, each once.
                prop_assert_eq!(&seqs, &(1..=rows.len() as i64).collect::<Vec<_>>(), "{}", contact);
                continue;
            }
            // With failures, every refused message sent again: each delivered once (at most once if
            // the conversation ended before it came again), or again if a repeat of it went through
            // a commit reported as failed; none of another writer's.
            for seq in (1..=rows.len() as i64).filter(|seq| !behind.contains(&(contact.clone(), *seq))) {
                let n = seqs.iter().filter(|s| **s == seq).count();
                let again = may_repeat.contains(&(contact.clone(), seq));
                let least = usize::from(conv.is_open(contact));
                prop_assert!(n >= least && (n <= 1 || again), "{} seq {} delivered {} times", contact, seq, n);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::routing::tests::fuzz_config(256))]

        #[test]
        fn seqs_per_conversation_from_one_gap_free_in_commit_order(ops in proptest::collection::vec(op(false), 1..80)) {
            check(ops, false)?;
        }

        #[test]
        fn every_message_is_delivered_once_whatever_its_commits_answered(ops in proptest::collection::vec(op(true), 1..80)) {
            check(ops, true)?;
        }
    }

    #[test]
    fn a_batch_refused_by_the_database_is_refused_to_each_sender() {
        let mut conv = Conversations::new([("c1".to_string(), Some("ana".to_string()))]);
        let (me, ana) = (caller(1), staff(2, "ana"));
        conv.post(1, post("c1", &me, "k1"), me.clone());
        conv.post(1, post("c1", &ana, "k2"), ana.clone());
        let batch = conv.take_batch().expect("batch");
        let tells = conv.committed(batch, None);
        assert_eq!(frames_to(&tells, 1).len(), 1);
        assert!(
            matches!(&frames_to(&tells, 2)[0], ServerEvent::Error { code: ErrorCode::Unavailable, reference: Some(r), .. } if r == "k2")
        );
    }
}

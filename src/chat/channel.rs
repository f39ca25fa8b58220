//! The contact-channel seam: how the core speaks to a contact's caller, whatever the channel.
//!
//! A contact reaches the helpline over a channel: a web chat (the caller holds a WebSocket), a
//! phone call (the caller is on the line at a telephone exchange), or any kind registered later
//! (a messaging app: a provider's webhook in, an HTTP send out). The engine task and the relay never
//! ask which one it is: they hand a caller's frames to [`Hub::tell_caller`](crate::chat::hub::Hub::tell_caller)
//! and ask [`Hub::caller_online`](crate::chat::hub::Hub::caller_online), and the hub asks the
//! contact's [`ContactChannel`]. What the engine task commits with a routing step at the caller's
//! end (a call's exchange commands) is the channel's [`ContactChannel::exchange_step`].
//!
//! A channel registers itself by kind in the hub's [`Channels`] at start-up (`app::Settings::channels`);
//! the core's two, [`WebChat`] and the phone ([`crate::chat::exchange::Phone`]), are always there. A
//! contact is bound to its channel when the engine task queues it (`EngineCommand::StartContact`'s
//! `channel`, a call's `StartCall`) or restores it (its stored `channel`), and forgotten once its
//! caller was sent the conversation's last frame. An unbound contact is a web chat's.
//!
//! A channel whose caller is not a socket brings its caller's side in through [`inbound`]: the same
//! commands a caller's socket sends (start, message, typing, presence, end).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::extract::ws::Utf8Bytes;

use crate::chat::engine_task::translate::CallStep;
use crate::chat::hub::{ConnId, Outbox, Outgoing};
use crate::protocol::ServerEvent;
use crate::routing::Output;

/// A frame for a contact's caller, as the relay and the engine task send it.
#[derive(Debug, Clone, Copy)]
pub struct ToCaller<'a> {
    pub contact: &'a str,
    /// The frame: `queued`, `position`, `connected`, `message`, `typing`, `contact_ended`, …
    pub event: &'a ServerEvent,
    /// The same frame as JSON text (serialised once for every recipient).
    pub text: &'a Utf8Bytes,
    /// The conversation's last frame (`contact_ended`): the caller's side forgets the contact after it.
    pub ending: bool,
    /// The socket that sent the message this frame carries (it got an `ack` instead), if any.
    pub except: Option<ConnId>,
}

/// A kind of contact: how the core reaches its caller. Implement it in a module of its own and
/// register it at start-up (`app::Settings::channels`); the core never names it.
pub trait ContactChannel: Send + Sync + Debug + 'static {
    /// Its name: stored as the contact's `channel`, shown to counsellors in offers and conversations.
    fn kind(&self) -> &'static str;

    /// Which routing rules its contacts follow ([`crate::routing::Channel`]: calls need an extension,
    /// rank first and keep a counsellor from chats; chats do neither).
    fn rules(&self) -> crate::routing::Channel;

    /// Whether its caller is still there after a restart or a leader change (a phone caller is on the
    /// line at the exchange; a web chat's caller must come back on a socket and has the grace period).
    fn present_after_restart(&self) -> bool;

    /// Delivers a frame to the contact's caller; never waits. `sockets`: the caller sockets the hub
    /// holds for the contact (a web chat's; on the leader, some may be other nodes').
    fn deliver(&self, frame: ToCaller<'_>, sockets: &[Outbox]);

    /// Whether the contact's caller is present now (`sockets`: how many caller sockets the hub holds).
    fn present(&self, contact: &str, sockets: usize) -> bool;

    /// What a committed routing output of one of its contacts means at the caller's end beyond the
    /// frames they are sent, committed with the routing step: a phone call's exchange commands
    /// (`connect` once answered, `cancel` when an offer stops ringing, pending commands made stale).
    /// None for channels whose caller hears only frames.
    fn exchange_step(&self, _output: &Output) -> Option<CallStep> {
        None
    }
}

/// The web chat: the caller holds a WebSocket (`/ws/caller`); present while one is attached.
#[derive(Debug, Default, Clone, Copy)]
pub struct WebChat;

impl WebChat {
    pub const KIND: &'static str = "chat";
}

impl ContactChannel for WebChat {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn rules(&self) -> crate::routing::Channel {
        crate::routing::Channel::Chat
    }
    fn present_after_restart(&self) -> bool {
        false
    }
    fn deliver(&self, frame: ToCaller<'_>, sockets: &[Outbox]) {
        let item = if frame.ending {
            Outgoing::Ended { contact_id: frame.contact.to_string(), frame: frame.text.clone() }
        } else {
            Outgoing::Frame(frame.text.clone())
        };
        for o in sockets.iter().filter(|o| Some(o.id) != frame.except) {
            o.push(item.clone());
        }
    }
    fn present(&self, _contact: &str, sockets: usize) -> bool {
        sockets > 0
    }
}

/// The channels by kind, and which open contact is on which (see the module's documentation).
#[derive(Debug)]
pub struct Channels {
    kinds: RwLock<HashMap<&'static str, Arc<dyn ContactChannel>>>,
    /// Open contacts bound to a channel, by contact id.
    bound: Mutex<HashMap<String, Arc<dyn ContactChannel>>>,
    web: Arc<dyn ContactChannel>,
}

impl Default for Channels {
    /// The core's channels: the web chat and the phone.
    fn default() -> Channels {
        let web: Arc<dyn ContactChannel> = Arc::new(WebChat);
        let channels = Channels { kinds: RwLock::default(), bound: Mutex::default(), web: web.clone() };
        channels.register(web);
        channels.register(Arc::new(crate::chat::exchange::Phone));
        channels.register(Arc::new(crate::chat::left::Left::MESSAGE));
        channels.register(Arc::new(crate::chat::left::Left::CALLBACK));
        channels
    }
}

impl Channels {
    /// Registers a kind of contact (a kind registered again is replaced).
    pub fn register(&self, channel: Arc<dyn ContactChannel>) {
        let kind = channel.kind();
        let mut kinds = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        if kinds.insert(kind, channel).is_some() {
            tracing::warn!(kind, "a channel was registered twice; the last one counts");
        }
    }

    /// The channel of this kind, if registered.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn ContactChannel>> {
        self.kinds.read().unwrap_or_else(|p| p.into_inner()).get(kind).cloned()
    }

    /// The channel of this kind; the web chat (with a warning) for a kind nobody registered
    /// (a contact stored by a release that had it).
    pub fn kind_or_web(&self, kind: &str) -> Arc<dyn ContactChannel> {
        self.get(kind).unwrap_or_else(|| {
            tracing::warn!(kind, "a contact of a channel that is not registered is treated as a web chat");
            self.web.clone()
        })
    }

    /// The kinds registered, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = self.kinds.read().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        all.sort_unstable();
        all
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<dyn ContactChannel>>> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds an open contact to the channel of `kind`; returns that channel.
    pub fn bind(&self, contact: &str, kind: &str) -> Arc<dyn ContactChannel> {
        let channel = self.kind_or_web(kind);
        self.lock().insert(contact.to_string(), channel.clone());
        channel
    }

    /// The channel of an open contact (an unbound one is a web chat's).
    pub fn of(&self, contact: &str) -> Arc<dyn ContactChannel> {
        self.lock().get(contact).cloned().unwrap_or_else(|| self.web.clone())
    }

    /// Forgets a contact whose conversation is over.
    pub fn unbind(&self, contact: &str) {
        self.lock().remove(contact);
    }

    /// How many contacts are bound (tests).
    pub fn bound(&self) -> usize {
        self.lock().len()
    }
}

/// The caller's side of a contact whose caller holds no socket (a provider's webhook): the commands
/// a caller's socket sends, for a channel module to call.
pub mod inbound {
    use tokio::sync::oneshot;

    use crate::chat::engine_task::{contact_key, EngineCommand, EngineHandle};
    use crate::chat::hub::Outbox;
    use crate::chat::relay::{RelayCommand, RelayHandle};
    use crate::protocol::Party;
    use crate::routing::{ContactId, Input, NewContact};
    use crate::store::contacts::NewContactRecord;
    use crate::store::{Store, StoreError};

    use super::ContactChannel;

    /// A new contact of a channel, as its module decided it (helpline, language, door checks done).
    #[derive(Debug, Clone)]
    pub struct Arrival {
        pub helpline: String,
        pub language: String,
        pub priority: i32,
        /// The keyed hash of the caller's identifier on the channel, if any (repeat callers, blocks).
        pub caller_hash: Option<String>,
        pub senior_only: bool,
    }

    /// Stores a new contact of `channel` at `now`, opens its conversation (no socket: the channel
    /// hears its frames) and queues it with the router: its caller is sent `queued`. Returns its id.
    pub async fn start(
        store: &Store,
        engine: &EngineHandle,
        relay: &RelayHandle,
        channel: &dyn ContactChannel,
        arrival: Arrival,
        now: i64,
    ) -> Result<String, StoreError> {
        let uuid = uuid::Uuid::now_v7();
        let id = uuid.to_string();
        let record = NewContactRecord {
            id: id.clone(),
            channel: channel.kind().to_string(),
            helpline: arrival.helpline.clone(),
            language: arrival.language.clone(),
            priority: i64::from(arrival.priority),
            // Nobody resumes these with a token: the column is unique, so one nobody holds.
            resume_token_hash: format!("none:{}", uuid::Uuid::new_v4().simple()),
            queued_at: now,
        };
        store.contacts().create_contact_from(&record, arrival.caller_hash.as_deref(), arrival.senior_only).await?;
        let (done, opened) = oneshot::channel();
        relay.send(RelayCommand::Open { contact: id.clone(), outbox: None, done }).await;
        let _ = opened.await;
        let contact = NewContact {
            id: ContactId(uuid.as_u128()),
            channel: channel.rules(),
            helpline: arrival.helpline,
            language: arrival.language,
            priority: arrival.priority,
            queued_at: now,
            caller_connected: true,
            senior_only: arrival.senior_only,
        };
        let (done, queued) = oneshot::channel();
        let cmd = EngineCommand::StartContact {
            contact,
            resume_token: String::new(),
            channel: channel.kind().to_string(),
            done,
            earlier: Vec::new(),
        };
        engine.send(cmd).await;
        let _ = queued.await;
        Ok(id)
    }

    /// A message from the caller (the provider's id of it as `client_id`: a repeat is stored once).
    /// `ack` hears `ack` once it is stored (or an error), as an [`Outgoing::Answer`]: the webhook answers after it.
    pub async fn message(relay: &RelayHandle, contact: &str, client_id: String, text: String, ack: Outbox) -> bool {
        let cmd = RelayCommand::Post {
            contact: contact.to_string(),
            party: Party::Caller,
            sender_id: None,
            client_id,
            text,
            outbox: ack,
            // The webhook waits for the answer; the provider sends again on a refusal.
            take_by: crate::chat::relay::never(),
        };
        relay.send(cmd).await
    }

    /// The caller is typing (or stopped).
    pub async fn typing(relay: &RelayHandle, contact: &str, active: bool) -> bool {
        relay.send(RelayCommand::Typing { contact: contact.to_string(), party: Party::Caller, sender_id: None, active }).await
    }

    /// The caller came back or went quiet (a messaging channel's presence is its recent activity):
    /// gone, the contact has its helpline's grace period to come back before it is lost.
    pub async fn presence(engine: &EngineHandle, contact: &str, online: bool) -> bool {
        let Some(contact) = contact_key(contact) else { return false };
        engine.send(EngineCommand::CallerPresence { contact, online }).await
    }

    /// The caller ended the conversation.
    pub async fn end(engine: &EngineHandle, contact: &str) -> bool {
        let Some(contact) = contact_key(contact) else { return false };
        engine.input(Input::EndByCaller { contact }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::hub::Hub;
    use crate::routing::{ContactId, EndReason, RevokeReason};

    /// A channel whose caller is not a socket: what it is sent, as a messaging app's HTTP sends.
    #[derive(Debug, Default)]
    struct Outboxed {
        sent: Mutex<Vec<(String, ServerEvent, bool)>>,
    }

    impl ContactChannel for Outboxed {
        fn kind(&self) -> &'static str {
            "outboxed"
        }
        fn rules(&self) -> crate::routing::Channel {
            crate::routing::Channel::Chat
        }
        fn present_after_restart(&self) -> bool {
            true
        }
        fn deliver(&self, frame: ToCaller<'_>, _sockets: &[Outbox]) {
            self.sent.lock().expect("lock").push((frame.contact.to_string(), frame.event.clone(), frame.ending));
        }
        fn present(&self, _contact: &str, _sockets: usize) -> bool {
            true
        }
    }

    fn frame(contact: &str) -> ServerEvent {
        ServerEvent::Position { contact_id: contact.into(), position: 1, estimated_wait_s: None }
    }

    #[test]
    fn the_core_channels_are_registered_and_an_unknown_contact_is_a_web_chat() {
        let channels = Channels::default();
        assert_eq!(
            channels.kinds(),
            vec!["call", "callback", "chat", "message"],
            "with messages and callbacks left for later (chat::left)"
        );
        assert_eq!(channels.of("c1").kind(), "chat");
        assert_eq!(channels.bind("c1", "call").kind(), "call");
        assert_eq!(channels.of("c1").kind(), "call");
        assert_eq!(channels.bind("c2", "gone-with-an-old-release").kind(), "chat");
        channels.unbind("c1");
        assert_eq!(channels.of("c1").kind(), "chat");
    }

    #[test]
    fn the_hub_hands_a_callers_frames_to_its_channel_and_forgets_the_contact_after_the_last() {
        let hub = Hub::new();
        let test = Arc::new(Outboxed::default());
        hub.channels.register(test.clone());
        hub.channels.bind("m1", "outboxed");
        // A web chat's caller socket of another contact is not told.
        let (web, mut inbox) = hub.new_connection();
        hub.attach_caller("w1", web);
        hub.event_to_caller("m1", &frame("m1"));
        assert!(hub.caller_online("m1"), "present by the channel's own measure, with no socket");
        assert!(inbox.rx.try_recv().is_err());
        let ended = ServerEvent::ContactEnded { contact_id: "m1".into(), reason: "caller_ended".into() };
        hub.tell_caller("m1", &ended, &ended.to_json().into(), true, None);
        let sent = test.sent.lock().expect("lock").clone();
        assert_eq!(sent, vec![("m1".into(), frame("m1"), false), ("m1".into(), ended, true)]);
        assert_eq!(hub.channels.bound(), 0, "forgotten after the last frame");
        // The web chat's contact: its sockets, but the one that sent the message.
        hub.event_to_caller("w1", &frame("w1"));
        assert!(matches!(inbox.rx.try_recv(), Ok(Outgoing::Frame(_))));
        assert!(hub.caller_online("w1"));
        assert!(!hub.caller_online("w2"));
    }

    #[test]
    fn only_a_phone_call_has_exchange_steps_and_its_caller_stays_through_a_restart() {
        let channels = Channels::default();
        let (web, phone) = (channels.kind_or_web("chat"), channels.kind_or_web("call"));
        let ended = Output::Ended {
            contact: ContactId(1),
            helpline: "children".into(),
            counsellor: None,
            reason: EndReason::CallerEnded,
            abandoned: true,
        };
        assert_eq!(web.exchange_step(&ended), None);
        assert!(phone.exchange_step(&ended).is_some());
        let gone =
            Output::OfferRevoked { contact: ContactId(1), counsellor: crate::routing::CounsellorId(2), reason: RevokeReason::ContactGone };
        assert_eq!(phone.exchange_step(&gone), None);
        assert!(!web.present_after_restart() && phone.present_after_restart());
        assert_eq!((web.rules(), phone.rules()), (crate::routing::Channel::Chat, crate::routing::Channel::Call));
        assert!(phone.present("c", 0), "a phone caller is on the line, without a socket");
        assert!(!web.present("c", 0));
    }
}

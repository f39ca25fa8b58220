//! WebSocket endpoints: the upgrade (limits, authentication) and the session loop shared by callers and counsellors.

pub mod caller;
pub mod counsellor;
pub mod supervisor;
pub mod telephony;

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures_util::SinkExt;
use tokio::time::Instant;

use crate::chat::hub::{Inbox, Outbox, Outgoing};
use crate::chat::promise::Unanswered;
use crate::chat::relay::{Posted, RelayCommand};
use crate::protocol::{ErrorCode, ServerEvent, MAX_FRAME_BYTES};
use crate::state::stopping;
use crate::state::AppState;

/// Largest message the WebSocket layer reads at all; bigger ones close the socket (1009).
/// Between [`MAX_FRAME_BYTES`] and this, the session answers `too_large` and lives on.
pub const HARD_MESSAGE_LIMIT: usize = 64 * 1024;
/// Read buffer per socket: 2 KiB instead of the library's 128 KiB (137 KB of memory per idle socket).
/// It is allocated whole for every socket and held while the socket lives, idle or not: at 4 KiB it was
/// the second largest part of an idle socket (a heap profile of 3,000 sockets: the task 5.8 KB, this
/// 4.1 KB, the outbox 1.8 KB). Chat frames are well under 2 KiB; a bigger one takes more reads.
pub const READ_BUFFER: usize = 2 * 1024;
/// Write buffer per socket.
pub const WRITE_BUFFER: usize = 4 * 1024;
/// Most bytes a socket's write buffer may hold: at least the largest frame the server writes, a
/// supervisor's board, which grows with the helpline (about 150 bytes per waiting contact and per
/// counsellor: 2,500 waiting are 380 KB). A bigger frame could never be written, and the socket was
/// dropped. Memory is only taken while such a frame is being written; a client that stops reading
/// is cut off by its outbox and the idle timeout, not by this.
pub const MAX_WRITE_BUFFER: usize = 16 * 1024 * 1024;
/// How long a socket that fell behind (or is being closed) gets to take its last frames and the close frame.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How long a socket the server closed waits for the client's close frame (the session is over by then).
pub const CLOSE_HANDSHAKE: Duration = Duration::from_secs(5);

pub use crate::state::sockets::{Keepalive, RateLimit, IDLE_TIMEOUT, PING_EVERY, RATE_BURST, RATE_PER_SEC};

/// Refused frames in a row after which the socket is closed.
pub const RATE_STRIKES: u32 = 20;

/// A token bucket per socket.
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
    strikes: u32,
}

impl Bucket {
    fn new(limit: RateLimit) -> Bucket {
        Bucket { limit, tokens: limit.burst, last: Instant::now(), strikes: 0 }
    }

    /// How long until the next token (ms): when a refused message may be sent again.
    fn wait_ms(&self) -> u64 {
        if self.limit.per_sec <= 0.0 {
            return 0;
        }
        let missing = (1.0 - self.tokens).max(0.0);
        ((missing / self.limit.per_sec) * 1000.0).ceil().max(1.0) as u64
    }

    /// Takes a token; false when the socket is over its rate.
    fn take(&mut self) -> bool {
        if self.limit.per_sec <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.limit.per_sec;
        self.tokens = (self.tokens + refill).min(self.limit.burst.max(1.0));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

pub use crate::protocol::close;

/// Authenticates a staff socket's upgrade (`?ticket=` or `Authorization: Bearer`): the enabled
/// account, or the 401 response to send instead of upgrading.
/// Staff sockets count against their address's socket limit too (an office shares one address; the limit is generous).
pub async fn staff_user(
    state: &AppState,
    peer: std::net::SocketAddr,
    query: &std::collections::HashMap<String, String>,
    headers: &axum::http::HeaderMap,
) -> Result<(crate::store::users::User, crate::auth::guard::SocketSlot), axum::response::Response> {
    use axum::response::IntoResponse;
    let slot = socket_slot(state, state.guard.client_ip(peer, headers)).map_err(IntoResponse::into_response)?;
    let user = crate::state::access::authenticate_socket(state, headers, query.get("ticket").map(String::as_str))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((user, slot))
}

/// A place for one more socket from `ip`, or the 429 error to answer instead of upgrading.
pub fn socket_slot(state: &AppState, ip: std::net::IpAddr) -> Result<crate::auth::guard::SocketSlot, crate::state::error::AppError> {
    state.guard.open_socket(ip).map_err(|_| {
        tracing::warn!("sockets from one address over the limit; upgrade refused");
        crate::state::error::AppError::new(ErrorCode::RateLimited, "too many connections from your network; try again shortly")
    })
}

/// Applies the explicit limits and buffers to an upgrade.
pub fn limited(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(HARD_MESSAGE_LIMIT)
        .max_frame_size(HARD_MESSAGE_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// What a session does with the frames of its socket.
pub trait Handler: Send {
    /// The frames this socket accepts (one of the request enums of [`crate::protocol`]).
    type Request: serde::de::DeserializeOwned + crate::protocol::KnownTypes + Send;
    /// A frame arrived and decoded (undecodable frames are answered with an `error` by the loop).
    fn on_request(&mut self, request: Self::Request) -> impl std::future::Future<Output = ()> + Send;
    /// A `contact_ended` went out for this contact.
    fn on_ended(&mut self, _contact_id: &str) {}
    /// While the database does not answer, a request that needs it is refused at once with
    /// `unavailable`: Some(reference for the error frame, maybe empty); None: it goes ahead.
    fn needs_store(_request: &Self::Request) -> Option<String> {
        None
    }
    /// The `client_id` of a chat message: the session answers it within the promised time
    /// whatever happens to it ([`crate::chat::promise`]).
    fn awaits_answer(_request: &Self::Request) -> Option<String> {
        None
    }
    /// The socket is gone (after the loop, before the task ends).
    fn on_close(&mut self) -> impl std::future::Future<Output = ()> + Send;
    /// Whether the loop watches this socket for a stall: silence past `Keepalive::caller_stall`
    /// from a client that heartbeats (only a caller's widget that pings and speaks for a contact).
    fn watches_stall(&self) -> bool {
        false
    }
    /// The watched socket stalled (`true`: no frame for `caller_stall`) or spoke again (`false`).
    fn on_stall(&mut self, _stalled: bool) -> impl std::future::Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// Runs a socket until it closes: frames in go to the handler; the outbox goes out;
/// pings keep it alive; shutdown asks the client to reconnect.
pub async fn run_session<H: Handler>(mut socket: WebSocket, me: Outbox, mut inbox: Inbox, handler: &mut H, state: &AppState) {
    let _live = state.sessions.enter();
    let mut shutdown = state.shutdown.clone();
    let Keepalive { ping_every, idle_timeout, answer_within, caller_stall } = state.keepalive;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    // The last data frame (a WebSocket pong is not one: a proxy answers those for a stalled phone).
    let mut last_data = Instant::now();
    let mut stalled = false;
    let mut bucket = Bucket::new(state.rate_limit);
    // The messages read and not yet answered, in milliseconds since `t0` (see `crate::chat::promise`).
    let t0 = Instant::now();
    let since_t0 = move || i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut unanswered = Unanswered::new();
    let close_with: Option<(u16, &'static str)> = loop {
        let due = unanswered.next_due();
        let due_at = t0 + Duration::from_millis(due.map_or(0, |d| u64::try_from(d).unwrap_or(0)));
        let watch_stall = !stalled && handler.watches_stall();
        tokio::select! {
            incoming = socket.recv() => {
                last_heard = Instant::now();
                let is_data = matches!(incoming, Some(Ok(Message::Text(_) | Message::Binary(_))));
                if is_data {
                    last_data = last_heard;
                    if stalled {
                        stalled = false;
                        handler.on_stall(false).await;
                    }
                }
                if is_data && !bucket.take() {
                    if bucket.strikes >= RATE_STRIKES {
                        break Some((close::RATE_LIMITED, "too many frames"));
                    }
                    // A chat message over the rate is refused by name, every time, with when to send
                    // it again: it was read, so it is answered (`crate::chat::promise`).
                    let message = match &incoming {
                        Some(Ok(Message::Text(text))) if text.len() <= MAX_FRAME_BYTES => {
                            crate::protocol::decode::<H::Request>(text.as_str()).ok().and_then(|r| H::awaits_answer(&r))
                        }
                        _ => None,
                    };
                    if let Some(client_id) = message {
                        me.answer(&client_id, &ServerEvent::rate_limited(client_id.clone(), bucket.wait_ms()));
                    } else if bucket.strikes == 1 {
                        me.send(&ServerEvent::error(ErrorCode::RateLimited, "too many frames; slow down"));
                    }
                    continue;
                }
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > MAX_FRAME_BYTES {
                            me.send(&ServerEvent::error(ErrorCode::TooLarge, format!("frames are limited to {MAX_FRAME_BYTES} bytes")));
                        } else {
                            match crate::protocol::decode::<H::Request>(text.as_str()) {
                                Ok(request) => {
                                    if let Some(client_id) = H::awaits_answer(&request) {
                                        unanswered.read(&client_id, since_t0(), answer_within);
                                    }
                                    match H::needs_store(&request) {
                                        Some(reference) if !state.store.answering() => {
                                            answer(&me, &reference, &unavailable(reference.clone()));
                                        }
                                        _ => handler.on_request(request).await,
                                    }
                                }
                                Err(e) => {
                                    me.send(&ServerEvent::error(e.code, e.message));
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        me.send(&ServerEvent::error(ErrorCode::BadJson, "binary frames are not accepted; send JSON text"));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "socket error");
                        break refused_frame(err);
                    }
                }
            }
            out = inbox.rx.recv() => {
                let Some(first) = out else { break None };
                // Everything queued now goes out in one write (fed, then flushed once), so a busy
                // socket costs one system call per burst, not one per frame.
                let mut frames = Vec::new();
                let close_after = take_burst(first, &mut inbox, handler, &mut unanswered, &mut frames);
                match write_frames(&mut socket, frames, &inbox, idle_timeout).await {
                    Written::Yes => {}
                    Written::Gone => break None,
                    Written::TooSlow => break Some((close::TOO_SLOW, "too slow: reconnect and resume")),
                }
                if let Some(close) = close_after {
                    break Some(close);
                }
            }
            _ = inbox.overflow.notified() => break Some((close::TOO_SLOW, "too slow: reconnect and resume")),
            // A message read and still unanswered at its time: refused now, the client sends it again.
            _ = tokio::time::sleep_until(due_at), if due.is_some() => {
                let late = unanswered.take_due(since_t0());
                tracing::warn!(n = late.len(), first = ?late.first(), "messages not answered in time: refused as overloaded");
                crate::chat::counters::METRICS.refused("not_answered_in_time", late.len() as u64);
                let retry = crate::chat::promise::RETRY_AFTER.as_millis() as u64;
                // One item, however many: a burst of refusals must not overflow the outbox.
                let answering = state.store.answering() && state.store.writes_ok();
                me.push(Outgoing::Frames(late.into_iter().map(|id| ServerEvent::not_taken(id, answering, retry).to_json().into()).collect()));
            }
            // A heartbeating caller went silent: her counsellor hears of it now, not at the idle timeout.
            _ = tokio::time::sleep_until(last_data + caller_stall), if watch_stall => {
                stalled = true;
                handler.on_stall(true).await;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_timeout {
                    break Some((close::IDLE, "idle"));
                }
                match write(&mut socket, Message::Ping(Default::default()), &inbox, idle_timeout).await {
                    Written::Yes => {}
                    Written::Gone => break None,
                    Written::TooSlow => break Some((close::TOO_SLOW, "too slow: reconnect and resume")),
                }
            }
            _ = stopping(&mut shutdown) => {
                let bye = ServerEvent::Reconnect { reason: "server restarting".into() };
                let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(Message::Text(bye.to_json().into()))).await;
                break Some((close::RESTART, "server restarting"));
            }
        }
    };
    // The session ends first (the other party is told at once, e.g. that the caller's connection
    // dropped); only then do the last frames and the close frame go out.
    state.hub.forget(me.id);
    drop(me);
    handler.on_close().await;
    // Bounded: a client that does not read must not hold the session (and its place) for ever.
    let said_close = match close_with {
        Some((code, reason)) => tokio::time::timeout(CLOSE_GRACE, async {
            // What was already queued (an error saying why, a contact_ended) goes out before the
            // close; not to a socket that fell behind: it resumes and gets its messages from history.
            if code != close::TOO_SLOW {
                while let Ok(item) = inbox.rx.try_recv() {
                    let frames = match item {
                        Outgoing::Frame(text) | Outgoing::Ended { frame: text, .. } | Outgoing::Answer { frame: text, .. } => vec![text],
                        Outgoing::Frames(texts) => texts,
                        Outgoing::Close { .. } => break,
                    };
                    for frame in frames {
                        if socket.send(Message::Text(frame)).await.is_err() {
                            return false;
                        }
                    }
                }
            }
            socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await.is_ok()
        })
        .await
        .unwrap_or(false),
        None => false,
    };
    if said_close {
        // The closing handshake (RFC 6455 §7.1.1): wait, bounded, for the client's close frame before
        // dropping the connection. Dropping it at once resets the connection as soon as the client
        // writes anything (a pong to a ping it had not read yet), and a client that reads late then
        // gets that reset instead of the close code and the frames before it. The session is over
        // (its place and its count are given back); only the connection waits, on its own.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                while let Some(Ok(message)) = socket.recv().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

/// The close to answer a frame the WebSocket layer refused with: 1009 for one over
/// [`HARD_MESSAGE_LIMIT`], 1007 for a text frame that is not UTF-8; None (the connection is gone) otherwise.
fn refused_frame(err: axum::Error) -> Option<(u16, &'static str)> {
    match err.into_inner().downcast::<tungstenite::Error>().map(|e| *e) {
        Ok(tungstenite::Error::Capacity(_)) => Some((close::TOO_BIG, "frame too large")),
        Ok(tungstenite::Error::Utf8(_)) => Some((close::INVALID_DATA, "text frames must be UTF-8")),
        _ => None,
    }
}

/// How a write to the socket ended.
enum Written {
    Yes,
    /// The connection is gone.
    Gone,
    /// The client stopped reading: its outbox overflowed, or one frame could not be written for the idle timeout.
    TooSlow,
}

/// Most frames taken from the outbox for one write (a resume's history may hold more: it is written
/// in bursts of this many).
pub const BURST: usize = 64;

/// Takes `first` and whatever else is queued (up to [`BURST`] items) into `frames`, in order; stops
/// at a close request, which it returns (the frames before it go out first).
fn take_burst<H: Handler>(
    first: Outgoing,
    inbox: &mut Inbox,
    handler: &mut H,
    unanswered: &mut Unanswered,
    frames: &mut Vec<Utf8Bytes>,
) -> Option<(u16, &'static str)> {
    let mut item = first;
    let mut taken = 1;
    loop {
        match item {
            Outgoing::Frame(text) => frames.push(text),
            Outgoing::Answer { client_id, frame } => {
                unanswered.answered(&client_id);
                frames.push(frame);
            }
            Outgoing::Frames(texts) => frames.extend(texts),
            Outgoing::Ended { contact_id, frame } => {
                handler.on_ended(&contact_id);
                frames.push(frame);
            }
            Outgoing::Close { code, reason } => return Some((code, reason)),
        }
        // Stop at BURST items *before* taking another: an item taken from the outbox and not
        // handled would be lost (an ack or a delivery nobody ever hears of: issue 19's silent
        // messages, whenever a socket had more than BURST items waiting).
        if taken == BURST {
            return None;
        }
        match inbox.rx.try_recv() {
            Ok(next) => {
                item = next;
                taken += 1;
            }
            Err(_) => return None,
        }
    }
}

/// Writes frames, in bursts of [`BURST`] with one flush each; gives up when the client falls too far
/// behind meanwhile (its outbox overflows, or a burst cannot be written for `limit`), so a client that
/// stops reading is cut off (and resumes) instead of holding its session for ever.
async fn write_frames(socket: &mut WebSocket, frames: Vec<Utf8Bytes>, inbox: &Inbox, limit: Duration) -> Written {
    let mut frames = frames.into_iter().peekable();
    while frames.peek().is_some() {
        let burst = async {
            for text in frames.by_ref().take(BURST) {
                socket.feed(Message::Text(text)).await?;
            }
            socket.flush().await
        };
        let outcome = tokio::select! {
            sent = burst => if sent.is_ok() { Written::Yes } else { Written::Gone },
            _ = inbox.overflow.notified() => Written::TooSlow,
            _ = tokio::time::sleep(limit) => Written::TooSlow,
        };
        if !matches!(outcome, Written::Yes) {
            return outcome;
        }
    }
    Written::Yes
}

/// Writes one frame (see [`write_frames`]).
async fn write(socket: &mut WebSocket, message: Message, inbox: &Inbox, limit: Duration) -> Written {
    tokio::select! {
        sent = socket.send(message) => if sent.is_ok() { Written::Yes } else { Written::Gone },
        _ = inbox.overflow.notified() => Written::TooSlow,
        _ = tokio::time::sleep(limit) => Written::TooSlow,
    }
}

/// Sends `event` as the answer to message `reference` (when it names one), else as a frame.
pub fn answer(me: &Outbox, reference: &str, event: &ServerEvent) -> bool {
    if reference.is_empty() {
        me.send(event)
    } else {
        me.answer(reference, event)
    }
}

/// The `take_by` of a message read now ([`RelayCommand::Post`]): half the time it has to be answered.
pub fn take_by(state: &AppState) -> i64 {
    let half = i64::try_from(state.keepalive.answer_within.as_millis() / 2).unwrap_or(i64::MAX);
    state.clock.now_ms().saturating_add(half)
}

/// Hands a chat message the socket `me` read to the relay; refuses it at once when the relay
/// cannot take it now (its queue is full: `overloaded`; it stopped: `unavailable`). Never waits for
/// room: the message must be answered in time ([`crate::chat::promise`]).
pub async fn post(state: &AppState, me: &Outbox, cmd: RelayCommand) {
    let client_id = match &cmd {
        RelayCommand::Post { client_id, .. } => client_id.clone(),
        _ => String::new(),
    };
    match state.relay.post(cmd).await {
        Posted::Sent => {}
        Posted::Full => {
            crate::chat::counters::METRICS.refused("queue_full", 1);
            let retry = crate::chat::promise::RETRY_AFTER.as_millis() as u64;
            answer(me, &client_id, &ServerEvent::overloaded(client_id.clone(), retry));
        }
        Posted::Stopped => {
            answer(me, &client_id, &unavailable(client_id.clone()));
        }
    }
}

/// The answer to a request that needs the database while it does not answer: nothing was done or stored.
fn unavailable(reference: String) -> ServerEvent {
    let message = "the service cannot store anything right now; nothing was done: try again in a moment";
    if reference.is_empty() {
        ServerEvent::error(ErrorCode::Unavailable, message)
    } else {
        ServerEvent::error_about(ErrorCode::Unavailable, message, reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::hub::Hub;

    struct Quiet;

    impl Handler for Quiet {
        type Request = crate::protocol::CallerRequest;
        async fn on_request(&mut self, _request: Self::Request) {}
        async fn on_close(&mut self) {}
    }

    /// A socket with far more than a burst waiting gets every item, in order, burst after burst;
    /// none is taken from the outbox and dropped.
    #[test]
    fn bursts_take_every_item_in_order() {
        let hub = Hub::new();
        let (me, mut inbox) = hub.new_connection();
        let total = BURST * 3 + 7;
        for i in 0..total {
            let frame: Utf8Bytes = format!("f{i}").into();
            let item = if i % 3 == 0 { Outgoing::Answer { client_id: format!("m{i}"), frame } } else { Outgoing::Frame(frame) };
            assert!(me.push(item));
        }
        let mut unanswered = Unanswered::new();
        for i in (0..total).step_by(3) {
            unanswered.read(&format!("m{i}"), 0, Duration::from_secs(5));
        }
        let mut written: Vec<String> = Vec::new();
        while let Ok(first) = inbox.rx.try_recv() {
            let mut frames = Vec::new();
            assert_eq!(take_burst(first, &mut inbox, &mut Quiet, &mut unanswered, &mut frames), None);
            assert!(frames.len() <= BURST, "one burst at most: {}", frames.len());
            written.extend(frames.iter().map(|f| f.as_str().to_string()));
        }
        assert_eq!(written, (0..total).map(|i| format!("f{i}")).collect::<Vec<_>>(), "every item, once, in order");
        assert!(unanswered.is_empty(), "every answer crossed off");
    }
}

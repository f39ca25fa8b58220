//! WebSocket endpoints: the upgrade (limits, authentication) and the session loop shared by callers and counsellors.

pub mod agent;
pub mod caller;
pub mod supervisor;
pub mod telephony;

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use tokio::time::Instant;

use crate::app::AppState;
use crate::hub::{Inbox, Outbox, Outgoing};
use crate::protocol::{ErrorCode, ServerEvent, MAX_FRAME_BYTES};

/// Largest message the WebSocket layer reads at all; bigger ones close the socket (1009).
/// Between [`MAX_FRAME_BYTES`] and this, the session answers `too_large` and lives on.
pub const HARD_MESSAGE_LIMIT: usize = 64 * 1024;
/// Read buffer per socket: 4 KiB instead of the library's 128 KiB (about 9 KB of memory per idle socket instead of 137 KB).
pub const READ_BUFFER: usize = 4 * 1024;
/// Write buffer per socket.
pub const WRITE_BUFFER: usize = 4 * 1024;
/// How often the server pings an idle socket.
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// A socket silent (no frame, no pong) for this long is closed: the phone is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Default frames a socket may send in a burst, and per second after that: far above any person's
/// typing, far below a script's flood. Set with `--ws-burst` / `--ws-rate-per-sec`.
pub const RATE_BURST: f64 = 40.0;
pub const RATE_PER_SEC: f64 = 20.0;

/// A per-socket frame rate limit; `per_sec <= 0` means unlimited (load tests of the relay's ceiling).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub burst: f64,
    pub per_sec: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { burst: RATE_BURST, per_sec: RATE_PER_SEC }
    }
}
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

/// Close codes the server uses.
pub mod close {
    /// Kept sending faster than the rate limit.
    pub const RATE_LIMITED: u16 = 4029;
    /// Server restarting: reconnect and resume.
    pub const RESTART: u16 = 1012;
    /// The socket fell too far behind; reconnect and resume.
    pub const TOO_SLOW: u16 = 4008;
    /// The account was disabled or logged out.
    pub const REVOKED: u16 = 4003;
    /// Silent for too long.
    pub const IDLE: u16 = 4000;
}

/// Authenticates a staff socket's upgrade (`?ticket=` or `Authorization: Bearer`): the enabled
/// account, or the 401 response to send instead of upgrading.
/// Staff sockets count against their address's socket limit too (an office shares one address; the limit is generous).
pub async fn staff_user(
    state: &AppState,
    peer: std::net::SocketAddr,
    query: &std::collections::HashMap<String, String>,
    headers: &axum::http::HeaderMap,
) -> Result<(crate::store::users::User, crate::guard::SocketSlot), axum::response::Response> {
    use axum::response::IntoResponse;
    let slot = socket_slot(state, state.guard.client_ip(peer, headers)).map_err(IntoResponse::into_response)?;
    let user = crate::http::authenticate_socket(state, headers, query.get("ticket").map(String::as_str))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((user, slot))
}

/// A place for one more socket from `ip`, or the 429 error to answer instead of upgrading.
pub fn socket_slot(state: &AppState, ip: std::net::IpAddr) -> Result<crate::guard::SocketSlot, crate::error::AppError> {
    state.guard.open_socket(ip).map_err(|_| {
        tracing::warn!("sockets from one address over the limit; upgrade refused");
        crate::error::AppError::new(ErrorCode::RateLimited, "too many connections from your network; try again shortly")
    })
}

/// Applies the explicit limits and buffers to an upgrade.
pub fn limited(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(HARD_MESSAGE_LIMIT)
        .max_frame_size(HARD_MESSAGE_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(HARD_MESSAGE_LIMIT * 4)
}

/// What a session does with the frames of its socket.
pub trait Handler: Send {
    /// The frames this socket accepts (one of the request enums of [`crate::protocol`]).
    type Request: serde::de::DeserializeOwned + crate::protocol::KnownTypes + Send;
    /// A frame arrived and decoded (undecodable frames are answered with an `error` by the loop).
    fn on_request(&mut self, request: Self::Request) -> impl std::future::Future<Output = ()> + Send;
    /// A `contact_ended` went out for this contact.
    fn on_ended(&mut self, _contact_id: &str) {}
    /// The socket is gone (after the loop, before the task ends).
    fn on_close(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs a socket until it closes: frames in go to the handler; the outbox goes out;
/// pings keep it alive; shutdown asks the client to reconnect.
pub async fn run_session<H: Handler>(
    mut socket: WebSocket,
    me: Outbox,
    mut inbox: Inbox,
    handler: &mut H,
    state: &AppState,
) {
    let _live = state.sessions.enter();
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    let mut bucket = Bucket::new(state.rate_limit);
    let close_with: Option<(u16, &'static str)> = loop {
        tokio::select! {
            incoming = socket.recv() => {
                last_heard = Instant::now();
                let is_data = matches!(incoming, Some(Ok(Message::Text(_) | Message::Binary(_))));
                if is_data && !bucket.take() {
                    if bucket.strikes >= RATE_STRIKES {
                        break Some((close::RATE_LIMITED, "too many frames"));
                    }
                    if bucket.strikes == 1 {
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
                                Ok(request) => handler.on_request(request).await,
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
                        break None;
                    }
                }
            }
            out = inbox.rx.recv() => match out {
                Some(Outgoing::Frame(text)) => {
                    if socket.send(Message::Text(text)).await.is_err() { break None; }
                }
                Some(Outgoing::Ended { contact_id, frame }) => {
                    handler.on_ended(&contact_id);
                    if socket.send(Message::Text(frame)).await.is_err() { break None; }
                }
                Some(Outgoing::Close { code, reason }) => break Some((code, reason)),
                None => break None,
            },
            _ = inbox.overflow.notified() => break Some((close::TOO_SLOW, "too slow: reconnect and resume")),
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    break Some((close::IDLE, "idle"));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() { break None; }
            }
            _ = stopping(&mut shutdown) => {
                let bye = ServerEvent::Reconnect { reason: "server restarting".into() };
                let _ = socket.send(Message::Text(bye.to_json().into())).await;
                break Some((close::RESTART, "server restarting"));
            }
        }
    };
    if let Some((code, reason)) = close_with {
        // What was already queued (an error saying why, a contact_ended) goes out before the close.
        while let Ok(item) = inbox.rx.try_recv() {
            let frame = match item {
                Outgoing::Frame(text) | Outgoing::Ended { frame: text, .. } => text,
                Outgoing::Close { .. } => break,
            };
            if socket.send(Message::Text(frame)).await.is_err() {
                break;
            }
        }
        let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }
    state.hub.forget(me.id);
    drop(me);
    handler.on_close().await;
}

/// Completes when the server starts shutting down.
pub async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        // The sender is gone: the server is going away too.
    }
}

//! WebSocket clients: plain TCP (optionally from a chosen 127.x.y.z source address), 4 KiB read buffer, no Nagle.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use helpline::protocol::ServerEvent;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A client socket.
pub type Ws = WebSocketStream<TcpStream>;

/// Client read buffer (the library's default is 128 KiB).
pub const READ_BUFFER: usize = 4 * 1024;

/// The client-side WebSocket configuration: small buffers.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER).write_buffer_size(0).max_write_buffer_size(1 << 20)
}

/// Source addresses to spread many sockets over (each has about 28,000 ephemeral ports).
#[derive(Debug, Clone)]
pub struct Sources(pub Vec<IpAddr>);

impl Sources {
    /// `n` loopback addresses 127.0.0.2 … (none: let the kernel choose).
    pub fn loopback(n: usize) -> Sources {
        Sources((0..n).map(|i| IpAddr::from([127, 0, (i / 250) as u8, (2 + i % 250) as u8])).collect())
    }
    pub fn pick(&self, i: usize) -> Option<IpAddr> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0[i % self.0.len()])
        }
    }
}

/// Opens a WebSocket to `ws://addr{path}` from `source` (if given).
pub async fn connect(addr: SocketAddr, path: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    connect_with(addr, path, source, &[]).await
}

/// [`connect`] with extra request headers (`Authorization`, `Sec-WebSocket-Protocol`, …).
pub async fn connect_with(addr: SocketAddr, path: &str, source: Option<IpAddr>, headers: &[(&'static str, &str)]) -> anyhow::Result<Ws> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("binding source {ip}"))?;
    }
    let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| anyhow!("connect to {addr} timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{addr}{path}");
    let mut req = url.as_str().into_client_request()?;
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().with_context(|| format!("header {k}"))?);
    }
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::client_async_with_config(req, tcp, Some(config())))
        .await
        .map_err(|_| anyhow!("websocket handshake with {addr} timed out"))?
        .with_context(|| format!("websocket handshake {url}"))?;
    Ok(ws)
}

/// Sends a JSON value as a text frame.
pub async fn send_json(ws: &mut Ws, v: &serde_json::Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await.context("sending a frame")
}

/// Parses a server frame.
pub fn parse(text: &str) -> anyhow::Result<ServerEvent> {
    serde_json::from_str(text).with_context(|| format!("unexpected frame {text}"))
}

/// The next server event (control frames skipped), within `within`.
pub async fn recv(ws: &mut Ws, within: Duration) -> anyhow::Result<ServerEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| anyhow!("timed out waiting for a frame"))?;
        match next {
            Some(Ok(Message::Text(t))) => return parse(t.as_str()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => bail!("binary frame from the server"),
            Some(Ok(Message::Close(c))) => bail!("socket closed by the server: {c:?}"),
            Some(Err(e)) => bail!("socket error: {e}"),
            None => bail!("socket closed"),
        }
    }
}

/// Reads until `pick` accepts an event (skipping `position`, `typing`, `caller_presence`, `status`); errors on `error` frames.
pub async fn expect<T>(ws: &mut Ws, within: Duration, mut pick: impl FnMut(&ServerEvent) -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = recv(ws, left).await?;
        if let Some(t) = pick(&ev) {
            return Ok(t);
        }
        match ev {
            ServerEvent::Position { .. } | ServerEvent::Typing { .. } | ServerEvent::CallerPresence { .. } | ServerEvent::Status { .. } => {
            }
            ServerEvent::Error { code, message, .. } => bail!("server error {code:?}: {message}"),
            _ => {}
        }
    }
}

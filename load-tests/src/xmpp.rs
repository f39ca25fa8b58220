//! Just enough XMPP over WebSocket (RFC 7395) to drive the Prosody peer like helpline's own clients:
//! `<open/>`, in-band registration (XEP-0077), SASL PLAIN, resource binding, stream management
//! (XEP-0198: `<r/>` → `<a h=…/>` is the ack of every stanza the server handled so far).
//!
//! Stanzas are parsed by looking at their first tag and attributes only: Prosody writes one stanza
//! per WebSocket frame, attributes in single quotes, and the load tool only needs `id` and `h`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};

/// The WebSocket endpoint of Prosody's mod_websocket.
pub const PATH: &str = "/xmpp-websocket";
/// The virtual host the peer script configures.
pub const DOMAIN: &str = "localhost";

const OPEN: &str = r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>"#;

/// The value of attribute `name` in the first tag of `stanza` (single or double quotes).
pub fn attr<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    let head = &stanza[..stanza.find('>').unwrap_or(stanza.len())];
    let mut rest = head;
    loop {
        let at = rest.find(name)?;
        let before = rest[..at].chars().last();
        let after = &rest[at + name.len()..];
        if matches!(before, Some(' ' | '\t' | '\n')) && after.starts_with('=') {
            let q = after[1..].chars().next()?;
            let body = &after[2..];
            let end = body.find(q)?;
            return Some(&body[..end]);
        }
        rest = &rest[at + name.len()..];
    }
}

/// The element name of a stanza's first tag (`message`, `a`, `r`, `iq`, `stream:error`, …).
pub fn element(stanza: &str) -> &str {
    let s = stanza.trim_start().trim_start_matches('<');
    let end = s.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(s.len());
    &s[..end]
}

/// A chat message to `to`, with `id`, and a body of plain ASCII text (the load tool's `x…x`).
pub fn message(to: &str, id: &str, text: &str) -> String {
    format!("<message xmlns='jabber:client' to='{to}' type='chat' id='{id}'><body>{text}</body></message>")
}

/// Request an ack (XEP-0198).
pub const REQUEST_ACK: &str = "<r xmlns='urn:xmpp:sm:3'/>";

/// Answer the server's ack request: `h` stanzas received so far.
pub fn answer_ack(h: u64) -> String {
    format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")
}

async fn send(ws: &mut Ws, s: String) -> anyhow::Result<()> {
    ws.send(Message::Text(s.into())).await.context("sending a stanza")
}

/// The next text frame, within `within`.
async fn next(ws: &mut Ws, within: Duration) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| anyhow!("timed out waiting for a stanza"))?;
        match m {
            Some(Ok(Message::Text(t))) => {
                let t = t.as_str().to_string();
                if element(&t) == "stream:error" || element(&t) == "close" {
                    bail!("the server closed the stream: {t}");
                }
                return Ok(t);
            }
            Some(Ok(Message::Close(c))) => bail!("socket closed by the server: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("socket error: {e}"),
            None => bail!("socket closed"),
        }
    }
}

/// Reads until a stanza whose element is `name` (and, if given, whose `id` is `id`).
async fn expect(ws: &mut Ws, name: &str, id: Option<&str>) -> anyhow::Result<String> {
    loop {
        let s = next(ws, Duration::from_secs(60)).await?;
        if element(&s) == name && (id.is_none() || attr(&s, "id") == id) {
            return Ok(s);
        }
        if element(&s) == "failure" {
            bail!("SASL failure: {s}");
        }
    }
}

/// Opens an XMPP WebSocket session as `user` (registered first when `register`), bound to resource
/// `load`, with stream management enabled. Returns the socket and the full JID.
pub async fn login(addr: SocketAddr, user: &str, password: &str, register: bool, source: Option<IpAddr>) -> anyhow::Result<(Ws, String)> {
    let mut ws = client::connect_with(addr, PATH, source, &[("Sec-WebSocket-Protocol", "xmpp")]).await?;
    send(&mut ws, OPEN.into()).await?;
    expect(&mut ws, "stream:features", None).await?;
    if register {
        send(
            &mut ws,
            format!(
                "<iq xmlns='jabber:client' type='set' id='reg'><query xmlns='jabber:iq:register'><username>{user}</username><password>{password}</password></query></iq>"
            ),
        )
        .await?;
        let r = expect(&mut ws, "iq", Some("reg")).await?;
        if attr(&r, "type") != Some("result") && !r.contains("conflict") {
            bail!("registering {user}: {r}");
        }
    }
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    send(&mut ws, format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>")).await?;
    expect(&mut ws, "success", None).await.with_context(|| format!("logging in as {user}"))?;
    send(&mut ws, OPEN.into()).await?;
    expect(&mut ws, "stream:features", None).await?;
    send(&mut ws, "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>load</resource></bind></iq>".into()).await?;
    let bound = expect(&mut ws, "iq", Some("bind")).await?;
    let jid = bound
        .split("<jid>")
        .nth(1)
        .and_then(|s| s.split("</jid>").next())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no jid in {bound}"))?;
    send(&mut ws, "<enable xmlns='urn:xmpp:sm:3'/>".into()).await?;
    expect(&mut ws, "enabled", None).await.context("enabling stream management")?;
    Ok((ws, jid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_elements() {
        let m = "<message type='chat' to='b@localhost/load' xmlns='jabber:client' id='0:12:345'><body>x</body></message>";
        assert_eq!(element(m), "message");
        assert_eq!(attr(m, "id"), Some("0:12:345"));
        assert_eq!(attr(m, "to"), Some("b@localhost/load"));
        assert_eq!(attr(m, "nope"), None);
        let a = "<a xmlns='urn:xmpp:sm:3' h='17'/>";
        assert_eq!(element(a), "a");
        assert_eq!(attr(a, "h"), Some("17"));
        assert_eq!(element("<r xmlns='urn:xmpp:sm:3'/>"), "r");
        // `id` inside a child element is not the stanza's id.
        assert_eq!(attr("<message from='x'><stanza-id id='s'/></message>", "id"), None);
    }
}

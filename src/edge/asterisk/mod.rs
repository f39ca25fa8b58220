//! `helpline asterisk`: the Asterisk adapter, a process beside Asterisk that connects its REST
//! Interface (ARI: the `/ari/events` WebSocket of a Stasis application and the REST resources) to a
//! helpline server's gateway socket (`/ws/telephony`). The rules are in [`machine`] (pure); this
//! module only does the I/O: the two sockets (reconnected when they drop), ARI's REST requests, a
//! one-second tick. It knows nothing of the server but the gateway protocol. `docs/telephony.md`,
//! "Asterisk".

pub mod machine;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{TelephonyCommand, TelephonyEvent};
use machine::{Config, Input, Machine, Method, Output, Request};

/// The settings of `helpline asterisk`.
#[derive(clap::Args, Debug, Clone)]
pub struct AsteriskArgs {
    /// ARI's base URL (Asterisk's `http.conf`: `bindaddr`, `bindport`), without `/ari`.
    #[arg(long, env = "HELPLINE_ARI_URL", default_value = "http://127.0.0.1:8088")]
    pub ari_url: String,
    /// The ARI user (a section of Asterisk's `ari.conf`).
    #[arg(long, env = "HELPLINE_ARI_USER", default_value = "helpline")]
    pub ari_user: String,
    /// A file holding the ARI user's password (first line). Without it the password is read from the
    /// environment variable HELPLINE_ARI_PASSWORD; it is never a flag.
    #[arg(long, env = "HELPLINE_ARI_PASSWORD_FILE")]
    pub ari_password_file: Option<PathBuf>,
    /// The Stasis application the dialplan sends helpline calls to (`Stasis(helpline,116111)`).
    #[arg(long, env = "HELPLINE_ARI_APP", default_value = "helpline")]
    pub app: String,
    /// The helpline server's base URL; the adapter opens `/ws/telephony` there.
    #[arg(long, env = "HELPLINE_HUB", default_value = "http://127.0.0.1:8080")]
    pub hub: String,
    /// A file holding the gateway's service token (`helpline gateway add NAME` prints it). Without it
    /// the token is read from the environment variable HELPLINE_GATEWAY_TOKEN.
    #[arg(long, env = "HELPLINE_GATEWAY_TOKEN_FILE")]
    pub gateway_token_file: Option<PathBuf>,
    /// The dial string of a counsellor's phone; `{extension}` is replaced by the extension on their
    /// account (`helpline user add … --extension 201`).
    #[arg(long, env = "HELPLINE_DIAL", default_value = "PJSIP/{extension}")]
    pub dial: String,
    /// Seconds a counsellor's phone may ring before Asterisk gives up on it (the server's own ring
    /// timeout, 8 s by default, normally moves the call on first).
    #[arg(long, env = "HELPLINE_RING_TIMEOUT", default_value_t = 30)]
    pub ring_timeout: u32,
    /// Music-on-hold class for waiting callers and calls on hold (`musiconhold.conf`).
    #[arg(long, env = "HELPLINE_MOH_CLASS", default_value = "default")]
    pub moh_class: String,
    /// What a caller whose number is blocked hears before the call is ended (an ARI media URI:
    /// `sound:NAME`, `recording:NAME`, …).
    #[arg(long, env = "HELPLINE_REJECT_MEDIA", default_value = "sound:vm-goodbye")]
    pub reject_media: String,
}

/// A secret from a file (first line, trimmed) or else from an environment variable.
fn secret(file: Option<&PathBuf>, env: &str, what: &str) -> anyhow::Result<String> {
    let value = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} from {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => std::env::var(env).unwrap_or_default(),
    };
    anyhow::ensure!(!value.is_empty(), "{what} is missing: give a file or set {env}");
    Ok(value)
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `http(s)://host` → `ws(s)://host`.
fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Waits before reconnecting: 0.2 s, doubling up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(5)).min(5_000))
}

struct Ari {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Ari {
    /// Makes a request; `Err` only when Asterisk could not be reached (an HTTP error status is an
    /// answer: the channel was gone, …).
    async fn send(&self, r: &Request) -> Result<reqwest::Response, reqwest::Error> {
        let url = format!("{}/ari{}", self.base, r.path);
        let builder = match r.method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
            Method::Delete => self.http.delete(url),
        };
        let answer = builder.query(&r.query).header("authorization", &self.auth).send().await?;
        if !answer.status().is_success() {
            tracing::info!(method = r.method.as_str(), path = %r.path, status = answer.status().as_u16(), "ARI refused a request");
        }
        Ok(answer)
    }

    async fn channels(&self) -> Option<Vec<machine::Channel>> {
        let r = Request { method: Method::Get, path: "/channels".into(), query: Vec::new() };
        let list: serde_json::Value = self.send(&r).await.ok()?.json().await.ok()?;
        let now = now_ms();
        Some(list.as_array()?.iter().filter_map(|c| machine::parse_channel(c, now)).collect())
    }
}

/// Runs the adapter until the process is stopped.
pub async fn run(args: AsteriskArgs) -> anyhow::Result<()> {
    let password = secret(args.ari_password_file.as_ref(), "HELPLINE_ARI_PASSWORD", "the ARI password")?;
    let token = secret(args.gateway_token_file.as_ref(), "HELPLINE_GATEWAY_TOKEN", "the gateway token")?;
    let ari = Ari {
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        base: args.ari_url.trim_end_matches('/').to_string(),
        auth: basic(&args.ari_user, &password),
    };
    let cfg = Config {
        app: args.app.clone(),
        dial: args.dial.clone(),
        moh_class: args.moh_class.clone(),
        reject_media: args.reject_media.clone(),
        ring_timeout_s: args.ring_timeout,
        ..Config::default()
    };
    let (inputs, mut rx) = mpsc::channel::<Input>(1024);
    let (to_hub, hub_rx) = mpsc::unbounded_channel::<String>();
    let (reconnect_hub, reconnect_rx) = mpsc::unbounded_channel::<()>();

    let events_url = format!("{}/ari/events?app={}", ws_url(&ari.base), args.app);
    tokio::spawn(ari_events(events_url, ari.auth.clone(), ari_clone(&ari), inputs.clone()));
    let hub_url = format!("{}/ws/telephony?command_acks=true", ws_url(&args.hub));
    tokio::spawn(hub(hub_url, token, inputs.clone(), hub_rx, reconnect_rx));
    let ticks = inputs.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            if ticks.send(Input::Tick).await.is_err() {
                return;
            }
        }
    });
    tracing::info!(ari = %ari.base, app = %args.app, hub = %args.hub, "asterisk adapter started");

    let mut machine = Machine::new(cfg);
    while let Some(input) = rx.recv().await {
        let mut reachable = true;
        for output in machine.handle(now_ms(), input) {
            match output {
                Output::Ari(r) => {
                    if !reachable {
                        continue;
                    }
                    if let Err(e) = ari.send(&r).await {
                        // Asterisk is out of reach: the command is not acknowledged, and the hub's socket
                        // is reopened so that it comes again.
                        tracing::warn!(error = %e, path = %r.path, "ARI unreachable");
                        reachable = false;
                        let _ = reconnect_hub.send(());
                    }
                }
                Output::Hub(event) => {
                    if !reachable && matches!(event, TelephonyEvent::CommandAck { .. }) {
                        continue;
                    }
                    match serde_json::to_string(&event) {
                        Ok(text) => {
                            let _ = to_hub.send(text);
                        }
                        Err(e) => tracing::error!(error = %e, "an event could not be written"),
                    }
                }
            }
        }
    }
    Ok(())
}

fn ari_clone(ari: &Ari) -> Ari {
    Ari { http: ari.http.clone(), base: ari.base.clone(), auth: ari.auth.clone() }
}

/// ARI's event socket, reopened whenever it drops; after each opening the channels Asterisk has.
async fn ari_events(url: String, auth: String, ari: Ari, inputs: mpsc::Sender<Input>) {
    let mut attempt = 0;
    loop {
        let request = url.as_str().into_client_request().map(|mut r| {
            if let Ok(v) = auth.parse() {
                r.headers_mut().insert("authorization", v);
            }
            r
        });
        match request {
            Ok(request) => match tokio_tungstenite::connect_async(request).await {
                Ok((mut stream, _)) => {
                    attempt = 0;
                    tracing::info!("ARI events connected");
                    match ari.channels().await {
                        Some(channels) => {
                            let _ = inputs.send(Input::Channels(channels)).await;
                        }
                        None => tracing::warn!("ARI: the channels could not be listed"),
                    }
                    while let Some(message) = stream.next().await {
                        match message {
                            Ok(Message::Text(text)) => {
                                let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                                    tracing::warn!("ARI sent something that is not JSON");
                                    continue;
                                };
                                let _ = inputs.send(Input::Ari(machine::parse_event(&v, now_ms()))).await;
                            }
                            Ok(Message::Close(_)) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                    tracing::warn!("ARI events disconnected");
                }
                Err(e) => tracing::warn!(error = %e, "ARI events: cannot connect"),
            },
            Err(e) => {
                tracing::error!(error = %e, "ARI events: bad URL");
                return;
            }
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// The hub's gateway socket, reopened whenever it drops (or when asked to).
async fn hub(
    url: String,
    token: String,
    inputs: mpsc::Sender<Input>,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    mut reconnect: mpsc::UnboundedReceiver<()>,
) {
    let mut attempt = 0;
    loop {
        let request = url.as_str().into_client_request().map(|mut r| {
            if let Ok(v) = format!("Bearer {token}").parse() {
                r.headers_mut().insert("authorization", v);
            }
            r
        });
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "hub: bad URL");
                return;
            }
        };
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => {
                attempt = 0;
                tracing::info!("hub connected");
                let (mut write, mut read) = stream.split();
                // What was queued for a socket that is gone is sent again by the machine.
                while outgoing.try_recv().is_ok() {}
                while reconnect.try_recv().is_ok() {}
                let _ = inputs.send(Input::HubConnected).await;
                let mut ping = tokio::time::interval(Duration::from_secs(20));
                loop {
                    tokio::select! {
                        frame = read.next() => match frame {
                            Some(Ok(Message::Text(text))) => match serde_json::from_str::<TelephonyCommand>(&text) {
                                Ok(command) => {
                                    let _ = inputs.send(Input::Hub(command)).await;
                                }
                                Err(e) => tracing::warn!(error = %e, "hub: a frame the adapter does not know"),
                            },
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                            Some(Ok(_)) => {}
                        },
                        Some(text) = outgoing.recv() => {
                            if write.send(Message::Text(text.into())).await.is_err() {
                                break;
                            }
                        }
                        _ = ping.tick() => {
                            if write.send(Message::Text(r#"{"type":"ping"}"#.into())).await.is_err() {
                                break;
                            }
                        }
                        Some(()) = reconnect.recv() => break,
                    }
                }
                tracing::warn!("hub disconnected");
            }
            Err(e) => tracing::warn!(error = %e, "hub: cannot connect"),
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

//! Messaging channels (docs/channels.md): contacts that reach a helpline by SMS (through Kannel) or a
//! messaging app, whose caller holds no socket. An edge: the core knows them only through the
//! contact-channel seam ([`crate::chat::channel`]).
//!
//! - [`Messaging`] is the seam's [`ContactChannel`] for each kind (`sms`): its contacts follow the
//!   chat's routing rules (they count against chat capacity), are present whatever their silence
//!   (they wait in the queue however long; an answered one closes after its channel's idle limit),
//!   and what the core sends their caller is only a nudge to the [`Worker`]: a counsellor's message
//!   is already committed by the relay when it is delivered.
//! - The [`Worker`] (one task per node, [`spawn`]) makes every counsellor message of a messaging
//!   conversation an outbox row (`channel_outbox`, from the committed messages: nothing is lost
//!   across a kill -9), hands due rows to the provider (claimed first, so one node at a time; at
//!   least once; in order per conversation; retried with back-off, [`rules`]), tells the counsellor
//!   each row's state (`delivery`), sends the counsellor the conversation's `channel_info` when it is
//!   answered, and closes answered conversations silent past their idle limit.
//! - [`http`]: the providers' webhooks in (an inbound message, a delivery report), refused without
//!   the channel's secret, and the contacts they start.

pub mod http;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::chat::channel::{ContactChannel, ToCaller};
use crate::chat::hub::Outbox;
use crate::protocol::{rfc3339, Party, Repeat, ServerEvent};
use crate::state::AppState;
use crate::store::channels::{ChannelConfig, OutboxRow};
use rules::{Attempt, RetryPolicy, Settle};

/// The kinds of messaging channel this server has.
pub const KINDS: &[&str] = &["sms"];

/// How far back the outbox looks for counsellor messages without a row (a restart's gap).
const ENQUEUE_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// A repeat sender: earlier contacts from the same keyed hash in this many days.
pub const REPEAT_DAYS: i64 = 90;

/// The worker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagingSettings {
    /// How often the worker looks for due replies and silent conversations (it also wakes on a new reply).
    pub tick: Duration,
    pub retry: RetryPolicy,
    /// How long one request to a provider may take.
    pub timeout: Duration,
}

impl Default for MessagingSettings {
    fn default() -> MessagingSettings {
        MessagingSettings { tick: Duration::from_secs(1), retry: RetryPolicy::default(), timeout: Duration::from_secs(10) }
    }
}

/// What the seam hands the worker (never waits).
#[derive(Debug, Clone)]
pub enum Nudge {
    /// A message of the conversation was committed (a counsellor's goes out).
    Message(String),
    /// The conversation was answered.
    Connected(String),
    /// The conversation ended.
    Ended(String),
}

/// A messaging channel's kind on the contact-channel seam.
#[derive(Debug)]
pub struct Messaging {
    kind: &'static str,
    nudges: mpsc::UnboundedSender<Nudge>,
}

/// The seam's channel for each of [`KINDS`], and the receiving end of their nudges for [`spawn`].
pub fn channels() -> (Vec<Arc<dyn ContactChannel>>, mpsc::UnboundedReceiver<Nudge>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let kinds = KINDS.iter().map(|k| Arc::new(Messaging { kind: k, nudges: tx.clone() }) as Arc<dyn ContactChannel>).collect();
    (kinds, rx)
}

impl ContactChannel for Messaging {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn rules(&self) -> crate::routing::Channel {
        // A text conversation: the chat's rules, counted against chat capacity.
        crate::routing::Channel::Chat
    }
    fn present_after_restart(&self) -> bool {
        true
    }
    fn deliver(&self, frame: ToCaller<'_>, _sockets: &[Outbox]) {
        let contact = frame.contact.to_string();
        let nudge = match frame.event {
            ServerEvent::Message(m) if m.from == Party::Counsellor => Nudge::Message(contact),
            ServerEvent::Connected { .. } => Nudge::Connected(contact),
            ServerEvent::ContactEnded { .. } => Nudge::Ended(contact),
            _ => return,
        };
        let _ = self.nudges.send(nudge);
    }
    fn present(&self, _contact: &str, _sockets: usize) -> bool {
        // Present whatever its silence: a text conversation is not a connection.
        true
    }
}

/// Starts the worker of this node.
pub fn spawn(state: AppState, nudges: mpsc::UnboundedReceiver<Nudge>, settings: MessagingSettings) {
    let http = match reqwest::Client::builder().timeout(settings.timeout).build() {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(error = %err, "no HTTP client: messaging channels cannot send");
            return;
        }
    };
    let worker = Worker { state, http, settings };
    tokio::spawn(worker.run(nudges));
}

/// The outbox and the conversations' upkeep (see the module's documentation).
pub struct Worker {
    state: AppState,
    http: reqwest::Client,
    settings: MessagingSettings,
}

impl Worker {
    async fn run(self, mut nudges: mpsc::UnboundedReceiver<Nudge>) {
        let mut shutdown = self.state.shutdown.clone();
        let mut tick = tokio::time::interval(self.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() { return; }
                }
                nudge = nudges.recv() => match nudge {
                    None => return,
                    Some(Nudge::Message(_)) => self.send_due().await,
                    Some(Nudge::Connected(contact)) => self.connected(&contact).await,
                    Some(Nudge::Ended(contact)) => {
                        if let Err(err) = self.state.store.channels().close(&contact, self.state.clock.now_ms()).await {
                            tracing::error!(error = %err, "closing a messaging conversation failed");
                        }
                    }
                },
                _ = tick.tick() => {
                    self.send_due().await;
                    self.close_silent().await;
                }
            }
        }
    }

    /// Every counsellor message gets its outbox row; due rows are attempted.
    async fn send_due(&self) {
        let store = &self.state.store;
        let now = self.state.clock.now_ms();
        if let Err(err) = store.channels().enqueue(now, now - ENQUEUE_WINDOW_MS).await {
            tracing::error!(error = %err, "writing the messaging outbox failed; tried again");
            return;
        }
        let rows = match store.channels().pending(500).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, "reading the messaging outbox failed");
                return;
            }
        };
        let pending: Vec<rules::Pending<'_>> =
            rows.iter().map(|r| rules::Pending { contact: &r.contact_id, seq: r.seq, next_at: r.next_at }).collect();
        for i in rules::due(&pending, now) {
            self.attempt(&rows[i], now).await;
        }
    }

    /// One attempt of one row: claimed, sent, settled, the counsellor told.
    async fn attempt(&self, row: &OutboxRow, now: i64) {
        let channels = self.state.store.channels();
        let policy = self.settings.retry;
        match channels.claim(row, now + policy.lease_ms, now).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::error!(error = %err, "claiming an outbox row failed");
                return;
            }
        }
        let attempts = row.attempts + 1;
        let outcome = match self.prepare(row).await {
            Ok((config, address, text)) => send(&self.http, &config, row, &address, &text).await,
            Err(reason) => Attempt::Refused(reason),
        };
        let now = self.state.clock.now_ms();
        let (state, next_at, provider_ref, error) = match rules::after_attempt(&policy, attempts, outcome, now) {
            Settle::Sent { provider_ref } => ("sent", now, provider_ref, None),
            Settle::Retry { at, error } => ("pending", at, None, Some(error)),
            Settle::Failed { error } => ("failed", now, None, Some(error)),
        };
        match channels.settle(&row.contact_id, row.seq, &["pending"], state, next_at, provider_ref.as_deref(), error.as_deref(), now).await
        {
            Ok(true) => {
                let shown = if state == "pending" { "retrying" } else { state };
                if state != "pending" || attempts == 1 {
                    tracing::info!(contact = %row.contact_id, seq = row.seq, state = shown, attempts, "messaging reply");
                }
                // The counsellor hears a retry once (the first), and every final state.
                if state != "pending" || attempts == 1 {
                    self.tell(&row.contact_id, row.seq, shown, error).await;
                }
            }
            Ok(false) => {}
            Err(err) => {
                tracing::error!(error = %err, "recording an outbox attempt failed; the row is tried again after its lease")
            }
        }
    }

    /// The channel, the reply address and the text of a row; Err: it can never be sent.
    async fn prepare(&self, row: &OutboxRow) -> Result<(ChannelConfig, String, String), String> {
        let channels = self.state.store.channels();
        let config = channels.by_id(&row.channel_id).await.map_err(|e| e.to_string())?.ok_or("its channel is gone")?;
        let address = channels
            .conversation(&row.contact_id)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| c.address)
            .ok_or("the reply address is gone")?;
        let text = channels.message_text(&row.contact_id, row.seq).await.map_err(|e| e.to_string())?.ok_or("the message is gone")?;
        Ok((config, address, text))
    }

    /// Tells the contact's counsellor what became of a reply.
    async fn tell(&self, contact: &str, seq: i64, state: &str, detail: Option<String>) {
        let event = ServerEvent::Delivery { contact_id: contact.to_string(), seq, state: state.to_string(), detail };
        tell_counsellor(&self.state, contact, &event).await;
    }

    /// The counsellor who answered a messaging contact gets its `channel_info`.
    async fn connected(&self, contact: &str) {
        if let Some(event) = channel_info(&self.state, contact).await {
            tell_counsellor(&self.state, contact, &event).await;
        }
    }

    /// Answered conversations silent past their channel's limit are closed.
    async fn close_silent(&self) {
        let now = self.state.clock.now_ms();
        let open = match self.state.store.channels().open_conversations().await {
            Ok(open) => open,
            Err(err) => {
                tracing::error!(error = %err, "reading the open messaging conversations failed");
                return;
            }
        };
        for c in open {
            if c.state == "ended" || c.state == "abandoned" {
                let _ = self.state.store.channels().close(&c.contact_id, now).await;
            } else if rules::idle_over(&c.state, c.last_activity, c.idle_limit_ms, now) {
                tracing::info!(contact = %c.contact_id, "a messaging conversation was silent past its limit: closed");
                crate::chat::channel::inbound::end(&self.state.engine, &c.contact_id).await;
            }
        }
    }
}

/// A messaging contact's `channel_info`: its channel, last activity, and a repeat sender's count.
pub async fn channel_info(state: &AppState, contact: &str) -> Option<ServerEvent> {
    let store = &state.store;
    let conversation = store.channels().conversation(contact).await.ok()??;
    let channel = store.channels().by_id(&conversation.channel_id).await.ok()??;
    let since = conversation.started_at - REPEAT_DAYS * 24 * 3600 * 1000;
    let repeat = store.channels().repeat_count(contact, &conversation.sender_hash, since).await.unwrap_or(0);
    Some(ServerEvent::ChannelInfo {
        contact_id: contact.to_string(),
        channel: channel.summary.kind,
        last_activity: rfc3339(conversation.last_activity),
        repeat: (repeat > 0).then_some(Repeat { contacts: repeat, days: REPEAT_DAYS }),
    })
}

/// Sends a frame to the counsellor a contact is assigned to, if any.
async fn tell_counsellor(state: &AppState, contact: &str, event: &ServerEvent) {
    match state.store.contacts().contact(contact).await {
        Ok(Some(c)) => {
            if let Some(counsellor) = c.counsellor_id {
                state.hub.event_to_counsellor(&counsellor, event);
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::error!(error = %err, "reading a messaging contact failed; its counsellor is not told")
        }
    }
}

/// Hands one reply to its provider.
async fn send(http: &reqwest::Client, config: &ChannelConfig, row: &OutboxRow, address: &str, text: &str) -> Attempt {
    match config.summary.kind.as_str() {
        "sms" => sms_send(http, config, row, address, text).await,
        other => Attempt::Refused(format!("no sender for channel kind {other}")),
    }
}

/// Kannel's `sendsms`: the reply, with a delivery report asked for at our `dlr` webhook.
async fn sms_send(http: &reqwest::Client, config: &ChannelConfig, row: &OutboxRow, address: &str, text: &str) -> Attempt {
    let s = &config.summary;
    let Ok(mut url) = reqwest::Url::parse(&format!("{}/cgi-bin/sendsms", s.api_base.trim_end_matches('/'))) else {
        return Attempt::Refused(format!("the channel's API base is not a URL: {}", s.api_base));
    };
    let dlr = match http::dlr_url(config, &row.contact_id, row.seq) {
        Ok(u) => u,
        Err(e) => return Attempt::Refused(e),
    };
    let coding = rules::kannel::coding(text);
    url.query_pairs_mut()
        .append_pair("username", s.account.as_deref().unwrap_or_default())
        .append_pair("password", &config.token)
        .append_pair("to", address)
        .append_pair("text", text)
        .append_pair("charset", "UTF-8")
        .append_pair("coding", &coding.to_string())
        .append_pair("dlr-mask", &rules::kannel::DLR_MASK.to_string())
        .append_pair("dlr-url", &dlr);
    if let Some(from) = s.sender.as_deref() {
        url.query_pairs_mut().append_pair("from", from);
    }
    match http.get(url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            rules::kannel::sendsms_outcome(status, &body)
        }
        Err(err) => Attempt::Unreachable(format!("Kannel could not be reached: {}", without_url(&err))),
    }
}

/// A reqwest error's text without its URL (the sendsms URL carries the password).
fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_connect() {
        "connection failed"
    } else if err.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    kind.to_string()
}

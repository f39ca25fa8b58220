//! The providers' webhooks: an inbound message (Kannel's sms-service `post-url`) and a delivery report
//! (Kannel's `dlr-url`). Each is refused (401, nothing stored, nothing read) without the channel's
//! inbound secret as the HTTP Basic password; an inbound message is stored once per provider id and
//! answered only once it is committed, so the provider sends it again otherwise.

use crate::state::access::Query;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::channel::inbound;
use crate::chat::hub::Outgoing;
use crate::protocol::ErrorCode;
use crate::protocol::ServerEvent;
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::channels::ChannelConfig;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sms_inbound)).routes(routes!(sms_report))
}

/// The most characters of one inbound text kept (a concatenated SMS is at most a few hundred).
const MAX_TEXT_CHARS: usize = 4_000;
/// How long an inbound message may wait for its commit before the provider is told to send it again.
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The user name in the URLs Kannel is given (the password is the channel's inbound secret).
pub const BASIC_USER: &str = "kannel";

/// An inbound SMS as Kannel's sms-service sends it (`post-url = ".../inbound?from=%p&to=%P&id=%I"`,
/// the text as the body).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SmsInbound {
    /// The sender's number (`%p`).
    from: Option<String>,
    /// The number it was sent to (`%P`).
    #[allow(dead_code)]
    to: Option<String>,
    /// Kannel's id of the message (`%I`): a retry carries the same.
    id: Option<String>,
}

/// A delivery report as Kannel calls the `dlr-url` the server gave it with each reply.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SmsReport {
    /// The contact the reply belongs to (as the server wrote it into the `dlr-url`).
    #[param(min_length = 1)]
    contact: String,
    /// The reply's place in the conversation.
    seq: i64,
    /// Kannel's report type (`%d`): 1 delivered, 2 undelivered, 4 buffered, 8 accepted by the SMSC, 16 rejected.
    #[serde(rename = "type")]
    kind: i64,
}

/// The channel named in the path, if the request carries its inbound secret; 401 otherwise (an
/// unknown name looks the same as a wrong secret).
async fn authenticate(state: &AppState, kind: &str, name: &str, headers: &HeaderMap) -> Result<ChannelConfig, AppError> {
    let refused = || AppError::unauthorized("unknown channel or wrong credentials");
    let password = basic_password(headers).ok_or_else(refused)?;
    let config = state.store.channels().active(kind, name).await?.ok_or_else(refused)?;
    if bool::from(password.as_bytes().ct_eq(config.inbound_secret.as_bytes())) {
        Ok(config)
    } else {
        tracing::warn!(channel = name, "a webhook with a wrong secret was refused");
        Err(refused())
    }
}

/// The password of an `Authorization: Basic` header.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

/// The `dlr-url` given to Kannel with a reply: our report webhook, the channel's secret as its
/// Basic password, `%d` left for Kannel to fill in.
pub fn dlr_url(config: &ChannelConfig, contact: &str, seq: i64) -> Result<String, String> {
    let s = &config.summary;
    let mut base = reqwest::Url::parse(&s.public_url).map_err(|_| format!("the channel's public URL is not a URL: {}", s.public_url))?;
    base.set_username(BASIC_USER).map_err(|_| "the public URL cannot carry credentials")?;
    base.set_password(Some(&config.inbound_secret)).map_err(|_| "the public URL cannot carry credentials")?;
    let root = base.as_str().trim_end_matches('/').to_string();
    Ok(format!("{root}/api/v1/channels/sms/{}/dlr?contact={contact}&seq={seq}&type=%d", s.name))
}

#[utoipa::path(post, path = "/api/v1/channels/sms/{name}/inbound", tag = "channels", security(("channel" = [])),
    params(("name" = String, Path, description = "the channel's name (`helpline channel add sms --name`)"), SmsInbound),
    request_body(content = String, content_type = "text/plain", description = "the message's text"),
    responses(
        (status = 200, description = "stored (once per Kannel id) and queued or handed to its counsellor: `{contact_id}` (null for a blocked sender's, not stored)"),
        (status = 400, description = "`bad_field`: no sender, no id or no text", body = ErrorBody),
        (status = 401, description = "`unauthorized`: an unknown channel or not its secret (HTTP Basic); nothing stored", body = ErrorBody),
        (status = 503, description = "`unavailable`: not stored; Kannel sends it again", body = ErrorBody),
    ))]
async fn sms_inbound(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SmsInbound>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let config = authenticate(&state, "sms", &name, &headers).await?;
    let from = q.from.as_deref().ok_or_else(|| AppError::bad_field("`from` (the sender) is required"))?;
    let id = q.id.filter(|i| !i.is_empty() && i.len() <= 200).ok_or_else(|| AppError::bad_field("`id` (Kannel's %I) is required"))?;
    let text = std::str::from_utf8(&body).map_err(|_| AppError::bad_field("the text is not UTF-8"))?.trim();
    if text.is_empty() {
        return Err(AppError::bad_field("the text is empty"));
    }
    let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
    let digits = crate::telephony::normalise_number(from).ok_or_else(|| AppError::bad_field("`from` is not a phone number"))?;
    let contact = receive(&state, &config, Inbound { address: from.to_string(), digits, provider_id: id, text }).await?;
    // Kannel reads nothing of it (`max-messages = 0`); a provider's log, or a test, may.
    Ok(axum::Json(serde_json::json!({ "contact_id": contact })).into_response())
}

/// An inbound message of any channel, as its webhook parsed it.
pub struct Inbound {
    /// Where a reply goes (sealed at rest).
    pub address: String,
    /// What identifies the sender for the keyed hash (a number's digits, a chat id).
    pub digits: String,
    pub provider_id: String,
    pub text: String,
}

/// One inbound message at a time per node: a sender's first two texts open one conversation.
static INBOUND: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Stores an inbound message: in the sender's open conversation, or a new contact queued with the
/// router (the door checks of a number first); a provider's retry is stored once. Returns the
/// contact (None: refused at the door, nothing stored).
pub async fn receive(state: &AppState, config: &ChannelConfig, m: Inbound) -> Result<Option<String>, AppError> {
    let store = &state.store;
    let channel = &config.summary;
    let _one = INBOUND.lock().await;
    let now = state.clock.now_ms();
    let hash = crate::telephony::number_hash(state, &m.digits).await?;
    if let Some(contact) = store.channels().inbound_seen(&channel.id, &m.provider_id).await? {
        // A provider's retry of a message already stored.
        return Ok(Some(contact));
    }
    let mut open = store.channels().open_conversation(&channel.id, &hash).await?;
    if let Some(contact) = &open {
        // Its contact ended (the worker closes the conversation a moment later): a new one starts.
        if !store.contacts().contact(contact).await?.is_some_and(|c| c.is_open()) {
            store.channels().close(contact, now).await?;
            open = None;
        }
    }
    let contact = match open {
        Some(contact) => contact,
        None => {
            let senior_only = match crate::safety::abuse::call_door(state, Some(&hash), &channel.helpline, now).await {
                crate::safety::abuse::Door::Open { senior_only } => senior_only,
                crate::safety::abuse::Door::Refused { block_id } => {
                    // Answered as taken (the provider must not send it again); nothing stored.
                    tracing::info!(channel = %channel.name, block = %block_id, "an inbound message from a blocked sender was refused");
                    return Ok(None);
                }
            };
            let Some(kind) = state.hub.channels.get(&channel.kind) else {
                return Err(AppError::new(ErrorCode::Unavailable, "this channel's kind is not served here"));
            };
            let arrival = inbound::Arrival {
                helpline: channel.helpline.clone(),
                language: channel.language.clone(),
                priority: 0,
                caller_hash: Some(hash.clone()),
                senior_only,
            };
            let contact = inbound::start(store, &state.engine, &state.relay, kind.as_ref(), arrival, now).await?;
            store.channels().start_conversation(&contact, &channel.id, &hash, &m.address, now).await?;
            contact
        }
    };
    // The text, with the provider's id as its client id: a retry is stored once.
    let (outbox, mut answers) = state.hub.new_connection();
    let posted = inbound::message(&state.relay, &contact, m.provider_id.clone(), m.text, outbox.clone()).await;
    let answer = if posted { tokio::time::timeout(ACK_WAIT, answers.rx.recv()).await.ok().flatten() } else { None };
    state.hub.forget(outbox.id);
    let stored = match answer {
        Some(Outgoing::Answer { frame, .. }) => {
            matches!(serde_json::from_str::<ServerEvent>(frame.as_str()), Ok(ServerEvent::Ack { .. }))
        }
        _ => false,
    };
    if !stored {
        return Err(AppError::new(ErrorCode::Unavailable, "not stored; send it again").retry_after(5));
    }
    store.channels().record_inbound(&channel.id, &m.provider_id, &contact, now).await?;
    store.channels().touch(&contact, now).await?;
    Ok(Some(contact))
}

#[utoipa::path(get, path = "/api/v1/channels/sms/{name}/dlr", tag = "channels", security(("channel" = [])),
    params(("name" = String, Path, description = "the channel's name"), SmsReport),
    responses(
        (status = 200, description = "recorded; the counsellor is told the reply's state"),
        (status = 401, description = "`unauthorized`: an unknown channel or not its secret", body = ErrorBody),
    ))]
async fn sms_report(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SmsReport>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let config = authenticate(&state, "sms", &name, &headers).await?;
    let Some(to) = super::rules::kannel::report_state(q.kind) else {
        return Ok(StatusCode::OK.into_response());
    };
    report(&state, &config, &q.contact, q.seq, to).await?;
    Ok(StatusCode::OK.into_response())
}

/// A provider's delivery report: the reply's row moves forward (never back) and its counsellor is told.
pub async fn report(state: &AppState, config: &ChannelConfig, contact: &str, seq: i64, to: &str) -> Result<(), AppError> {
    let Some(row) = state.store.channels().outbox_row(contact, seq).await? else {
        return Ok(());
    };
    if row.channel_id != config.summary.id {
        return Ok(());
    }
    let now = state.clock.now_ms();
    let error = (to == "failed").then_some("the provider reported it undelivered");
    let moved = state.store.channels().settle(contact, seq, super::rules::report_may_move(to), to, now, None, error, now).await?;
    if moved {
        let event =
            ServerEvent::Delivery { contact_id: contact.to_string(), seq, state: to.to_string(), detail: error.map(str::to_string) };
        super::tell_counsellor(state, contact, &event).await;
    }
    Ok(())
}

//! The telephone exchange's socket (`/ws/telephony`, gateway token checked at the upgrade): call events and `command_ack`s in, `ack` and stored commands (`connect`, `cancel`, `hold`, `unhold`, `hangup`) out.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{limited, run_session, Handler, RateLimit};
use crate::chat::hub::{Outbox, Outgoing};
use crate::protocol::{TelephonyCommand, TelephonyEvent};
use crate::state::AppState;
use crate::store::gateways::Gateway;

/// An exchange sends an event per call step, far more than a person types: its own, higher limit.
const EXCHANGE_RATE: RateLimit = RateLimit { burst: 2_000.0, per_sec: 1_000.0 };

/// `GET /ws/telephony` with `Authorization: Bearer <gateway token>`: refused (401) before the upgrade otherwise.
/// `?command_acks=true` declares an adapter that acknowledges commands (`command_ack`) from its
/// very first command on; sending a `command_ack` declares it too.
#[utoipa::path(get, path = "/ws/telephony", tag = "websocket",
    description = "A telephone exchange's socket: call events and `command_ack`s in, `ack` and stored commands out. Frames: docs/telephony.md.",
    params(("command_acks" = Option<bool>, Query, description = "`true`: this adapter acknowledges commands (`command_ack`) from its first command on")),
    security(("gateway" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the socket is open; frames as in docs/telephony.md"),
        (status = 400, description = "not a WebSocket upgrade request"),
        (status = 401, description = "no valid gateway token", body = crate::state::error::ErrorBody),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let gateway = match crate::telephony::authenticate_gateway(&state, &headers).await {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    if query.get("command_acks").is_some_and(|v| v == "true" || v == "1") {
        if let Err(err) = state.store.commands().set_gateway_acks_commands(&gateway.id).await {
            return crate::state::error::AppError::from(err).into_response();
        }
    }
    limited(ws).on_upgrade(move |socket| serve(socket, state, gateway))
}

async fn serve(socket: WebSocket, mut state: AppState, gateway: Gateway) {
    let (me, inbox) = state.hub.new_connection();
    let acks = state.store.commands().gateway_acks_commands(&gateway.id).await.unwrap_or_else(|err| {
        tracing::error!(error = %err, "reading a gateway's acknowledgement mode failed; assuming it acknowledges");
        true
    });
    // Registered first, then every stored command it has not acknowledged goes out, in order; one
    // committed meanwhile is handed to this socket once (either way).
    state.hub.gateways.attach(&gateway.id, me.clone(), acks);
    crate::telephony::deliver_pending(&state, &gateway.id, me.id).await;
    tracing::info!(gateway = %gateway.name, "telephony gateway connected");
    if state.rate_limit.per_sec > 0.0 {
        state.rate_limit = EXCHANGE_RATE;
    }
    let mut session = ExchangeSession { state: state.clone(), me: me.clone(), gateway, behind: None };
    run_session(socket, me, inbox, &mut session, &state).await;
}

struct ExchangeSession {
    state: AppState,
    me: Outbox,
    gateway: Gateway,
    /// An event still being handled after its time to be answered ran out (it was refused as
    /// `overloaded`; its own answer still goes out when it is done).
    behind: Option<tokio::task::JoinHandle<()>>,
}

impl Handler for ExchangeSession {
    type Request = TelephonyEvent;

    /// Every event read is answered within the promised time ([`crate::chat::promise`]): its `ack`
    /// (or `error`), or an `overloaded` refusal the exchange sends again after `retry_after_ms`.
    /// Events are handled one at a time, in order: while one refused is still being handled, the
    /// next is refused at once rather than overtake it.
    async fn on_request(&mut self, event: TelephonyEvent) {
        let within = self.state.keepalive.answer_within;
        let retry = crate::chat::promise::RETRY_AFTER.as_millis() as u64;
        let reference = event.event_id().map(str::to_string);
        let refuse = |me: &Outbox, reference: Option<String>| {
            if let Some(id) = reference {
                crate::chat::counters::METRICS.refused("telephony_not_answered_in_time", 1);
                me.push(Outgoing::Frame(TelephonyCommand::overloaded(id, retry).to_json().into()));
            }
        };
        if let Some(mut earlier) = self.behind.take() {
            if tokio::time::timeout(within, &mut earlier).await.is_err() {
                self.behind = Some(earlier);
                return refuse(&self.me, reference);
            }
        }
        let (state, gateway, me) = (self.state.clone(), self.gateway.clone(), self.me.clone());
        let mut task = tokio::spawn(async move {
            // Fault injection for the "never silent" tests: `FAILPOINTS=telephony-before-event=1*return(MS)`
            // holds the first event MS milliseconds (a router or database that stalls). Test builds only.
            if fail::has_failpoints() {
                if let Some(Some(ms)) = fail::eval("telephony-before-event", |arg| arg) {
                    if let Ok(ms) = ms.parse::<u64>() {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                }
            }
            for frame in crate::telephony::handle_event(&state, &gateway, event).await {
                me.push(Outgoing::Frame(frame.to_json().into()));
            }
        });
        if tokio::time::timeout(within, &mut task).await.is_err() {
            tracing::warn!(gateway = %self.gateway.name, "a telephony event was not handled in time: refused as overloaded");
            self.behind = Some(task);
            refuse(&self.me, reference);
        }
    }

    async fn on_close(&mut self) {
        let now = self.state.clock.now_ms();
        crate::chat::exchange::socket_closed(&self.state.store, &self.state.hub, now, &self.gateway.id, self.me.id).await;
        tracing::info!(gateway = %self.gateway.name, "telephony gateway disconnected");
    }
}

//! The telephone exchange's socket (`/ws/telephony`, gateway token checked at the upgrade): call events and `command_ack`s in, `ack` and stored commands (`connect`, `cancel`, `hold`, `unhold`, `hangup`) out.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{limited, run_session, Handler, RateLimit};
use crate::state::AppState;
use crate::chat::hub::{Outbox, Outgoing};
use crate::protocol::TelephonyEvent;
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
    let mut session = ExchangeSession { state: state.clone(), me: me.clone(), gateway };
    run_session(socket, me, inbox, &mut session, &state).await;
}

struct ExchangeSession {
    state: AppState,
    me: Outbox,
    gateway: Gateway,
}

impl Handler for ExchangeSession {
    type Request = TelephonyEvent;

    async fn on_request(&mut self, event: TelephonyEvent) {
        for frame in crate::telephony::handle_event(&self.state, &self.gateway, event).await {
            self.me.push(Outgoing::Frame(frame.to_json().into()));
        }
    }

    async fn on_close(&mut self) {
        let now = self.state.clock.now_ms();
        crate::chat::exchange::socket_closed(&self.state.store, &self.state.hub, now, &self.gateway.id, self.me.id).await;
        tracing::info!(gateway = %self.gateway.name, "telephony gateway disconnected");
    }
}

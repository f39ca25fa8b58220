//! The Asterisk adapter's rules, without I/O: ARI events and the hub's commands in, ARI requests and
//! gateway events out, the time passed in. `docs/telephony.md`, "Asterisk".
//!
//! - A caller's channel entering the Stasis app is answered, held with music and offered
//!   (`call_offered`, the call id is the channel id); leaving it (hung up) before the counsellor's leg
//!   answered is `call_abandoned`, after it `call_ended {by: "caller"}`.
//! - `connect` originates the counsellor's leg into the same app (channel id
//!   `{call_id}-leg-{command_id}`, so a repeated `connect` after a restart names the same leg); the leg
//!   entering the app means it picked up: bridge the two and report `call_answered`. The leg hanging up
//!   after that is `call_ended {by: "counsellor"}`.
//! - Event ids are derived from the caller's channel id and the kind (`{channel}:offered`, …): a resent
//!   or re-derived event (after a restart of the adapter) is the same event to the hub.
//! - Every event is kept until the hub acknowledges it and sent again every `resend_after_ms` and
//!   whenever the hub's socket opens. A command is acknowledged once its requests are made; the ids of
//!   done commands are kept for a day (a command may come again after a reconnect).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::protocol::{At, CallParty, TelephonyCommand, TelephonyEvent};

/// How long the ids of done commands are remembered.
const DONE_KEPT_MS: i64 = 24 * 3600 * 1000;

/// What the adapter is told at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Stasis application (`Stasis(helpline,116111)` in the dialplan).
    pub app: String,
    /// The dial string of a counsellor's phone, `{extension}` replaced (`PJSIP/{extension}`).
    pub dial: String,
    /// The music-on-hold class played while waiting and on hold.
    pub moh_class: String,
    /// Played to a rejected caller before hanging up (`sound:…`, `recording:…`).
    pub reject_media: String,
    /// Seconds the counsellor's phone rings before Asterisk gives up (the hub's own ring timeout is
    /// usually shorter and sends `cancel`).
    pub ring_timeout_s: u32,
    /// An unacknowledged event is sent again after this long.
    pub resend_after_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app: "helpline".into(),
            dial: "PJSIP/{extension}".into(),
            moh_class: "default".into(),
            reject_media: "sound:vm-goodbye".into(),
            ring_timeout_s: 30,
            resend_after_ms: 5_000,
        }
    }
}

/// A channel as ARI describes it (the fields the adapter uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    /// `Up`, `Ring`, `Ringing`, …
    pub state: String,
    pub caller_number: String,
    /// The channel's language (`Set(CHANNEL(language)=ro)` in the dialplan).
    pub language: String,
    /// The dialplan application the channel is in and its data (`Stasis`, `helpline,116111`).
    pub app_name: String,
    pub app_data: String,
    /// When the channel was created (ms since the epoch).
    pub created: i64,
}

/// An ARI event, reduced to what the adapter acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AriEvent {
    StasisStart {
        channel: Channel,
        args: Vec<String>,
        at: i64,
    },
    /// The channel left the app (hung up) or was destroyed.
    Gone {
        channel_id: String,
        at: i64,
    },
    PlaybackFinished {
        playback_id: String,
    },
    /// Anything else (ignored).
    Other,
}

/// What happens to the adapter.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Ari(AriEvent),
    /// A frame from the hub.
    Hub(TelephonyCommand),
    /// ARI's event socket (re)opened and these are the channels Asterisk has now: what happened while
    /// the adapter was away or disconnected is worked out from them.
    Channels(Vec<Channel>),
    /// The hub's socket (re)opened: every unacknowledged event goes again.
    HubConnected,
    /// Time passed.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// An ARI REST request (path below `/ari`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
}

fn req(method: Method, path: String, query: &[(&str, &str)]) -> Output {
    Output::Ari(Request { method, path, query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() })
}

/// What the adapter does.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Ari(Request),
    /// A frame to the hub (an event, or a `command_ack`).
    Hub(TelephonyEvent),
}

#[derive(Debug, Clone, Default)]
struct Leg {
    channel: String,
    up: bool,
}

#[derive(Debug, Clone, Default)]
struct Call {
    leg: Option<Leg>,
    answered: bool,
    held: bool,
}

#[derive(Debug, Clone)]
struct Unacked {
    event: TelephonyEvent,
    sent_at: i64,
}

/// The adapter's state.
#[derive(Debug, Clone)]
pub struct Machine {
    cfg: Config,
    /// Calls by the caller's channel id.
    calls: BTreeMap<String, Call>,
    /// Events not yet acknowledged by the hub, by event id.
    unacked: BTreeMap<String, Unacked>,
    /// Done commands and when.
    done: BTreeMap<String, i64>,
    /// Rejected callers' announcements: playback id → the caller's channel.
    rejecting: BTreeMap<String, String>,
}

/// The leg's channel id for `connect` `command_id` of `call_id`.
pub fn leg_id(call_id: &str, command_id: &str) -> String {
    format!("{call_id}-leg-{command_id}")
}

/// The call a leg's channel id belongs to.
fn call_of_leg(channel: &str) -> Option<&str> {
    channel.split_once("-leg-").map(|(call, _)| call)
}

fn bridge_id(call_id: &str) -> String {
    format!("helpline-{call_id}")
}

impl Machine {
    pub fn new(cfg: Config) -> Machine {
        Machine { cfg, calls: BTreeMap::new(), unacked: BTreeMap::new(), done: BTreeMap::new(), rejecting: BTreeMap::new() }
    }

    /// The calls the adapter follows (caller channel ids).
    pub fn followed_calls(&self) -> Vec<String> {
        self.calls.keys().cloned().collect()
    }

    /// Event ids not yet acknowledged by the hub.
    pub fn unacknowledged(&self) -> Vec<String> {
        self.unacked.keys().cloned().collect()
    }

    pub fn handle(&mut self, now: i64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Ari(event) => self.ari(now, event, &mut out),
            Input::Hub(command) => self.command(now, command, &mut out),
            Input::Channels(channels) => self.reconcile(now, channels, &mut out),
            Input::HubConnected => {
                for u in self.unacked.values_mut() {
                    u.sent_at = now;
                    out.push(Output::Hub(u.event.clone()));
                }
            }
            Input::Tick => {
                for u in self.unacked.values_mut() {
                    if now - u.sent_at >= self.cfg.resend_after_ms {
                        u.sent_at = now;
                        out.push(Output::Hub(u.event.clone()));
                    }
                }
                self.done.retain(|_, at| now - *at < DONE_KEPT_MS);
            }
        }
        out
    }

    fn send(&mut self, now: i64, event: TelephonyEvent, out: &mut Vec<Output>) {
        if let Some(id) = event.event_id() {
            self.unacked.insert(id.to_string(), Unacked { event: event.clone(), sent_at: now });
        }
        out.push(Output::Hub(event));
    }

    fn offered(&mut self, now: i64, channel: &Channel, dialled: String, at: i64, out: &mut Vec<Output>) {
        let caller = Some(channel.caller_number.clone()).filter(|n| !n.is_empty());
        let language = Some(channel.language.clone()).filter(|l| !l.is_empty());
        let event = TelephonyEvent::CallOffered {
            event_id: format!("{}:offered", channel.id),
            call_id: channel.id.clone(),
            dialled,
            caller,
            language,
            triage_digit: None,
            at: At(at),
        };
        self.send(now, event, out);
    }

    fn ari(&mut self, now: i64, event: AriEvent, out: &mut Vec<Output>) {
        match event {
            AriEvent::StasisStart { channel, args, at } => {
                if let Some(call_id) = call_of_leg(&channel.id).map(str::to_string) {
                    self.leg_up(now, &call_id, &channel.id, at, out);
                } else if !self.calls.contains_key(&channel.id) {
                    let id = &channel.id;
                    out.push(req(Method::Post, format!("/channels/{id}/answer"), &[]));
                    out.push(req(Method::Post, format!("/channels/{id}/moh"), &[("mohClass", &self.cfg.moh_class)]));
                    self.calls.insert(id.clone(), Call::default());
                    let dialled = args.first().cloned().unwrap_or_default();
                    self.offered(now, &channel, dialled, at, out);
                }
            }
            AriEvent::Gone { channel_id, at } => self.gone(now, &channel_id, at, out),
            AriEvent::PlaybackFinished { playback_id } => {
                if let Some(channel) = self.rejecting.remove(&playback_id) {
                    out.push(req(Method::Delete, format!("/channels/{channel}"), &[]));
                }
            }
            AriEvent::Other => {}
        }
    }

    /// The counsellor's leg `leg` of `call_id` picked up.
    fn leg_up(&mut self, now: i64, call_id: &str, leg: &str, at: i64, out: &mut Vec<Output>) {
        let current = self.calls.get(call_id).and_then(|c| c.leg.as_ref()).is_some_and(|l| l.channel == leg);
        let Some(call) = self.calls.get_mut(call_id).filter(|_| current) else {
            // A leg cancelled meanwhile, or of a call that is over: nobody wants it.
            out.push(req(Method::Delete, format!("/channels/{leg}"), &[]));
            return;
        };
        if let Some(l) = call.leg.as_mut() {
            l.up = true;
        }
        call.answered = true;
        call.held = false;
        let bridge = bridge_id(call_id);
        out.push(req(Method::Post, format!("/bridges/{bridge}"), &[("type", "mixing")]));
        out.push(req(Method::Delete, format!("/channels/{call_id}/moh"), &[]));
        out.push(req(Method::Post, format!("/bridges/{bridge}/addChannel"), &[("channel", &format!("{call_id},{leg}"))]));
        let event = TelephonyEvent::CallAnswered { event_id: format!("{call_id}:answered"), call_id: call_id.to_string(), at: At(at) };
        self.send(now, event, out);
    }

    /// A channel hung up (or left the app).
    fn gone(&mut self, now: i64, channel: &str, at: i64, out: &mut Vec<Output>) {
        if let Some(call_id) = call_of_leg(channel).map(str::to_string) {
            let Some(call) = self.calls.get_mut(&call_id) else { return };
            let Some(leg) = call.leg.as_ref().filter(|l| l.channel == channel) else { return };
            if leg.up {
                // The counsellor hung up a bridged call: it is over.
                self.calls.remove(&call_id);
                out.push(req(Method::Delete, format!("/channels/{call_id}"), &[]));
                out.push(req(Method::Delete, format!("/bridges/{}", bridge_id(&call_id)), &[]));
                let event =
                    TelephonyEvent::CallEnded { event_id: format!("{call_id}:ended"), call_id, by: CallParty::Counsellor, at: At(at) };
                self.send(now, event, out);
            } else {
                // The phone stopped ringing (declined, no answer): the caller goes on waiting; the
                // hub's ring timeout moves the offer on.
                call.leg = None;
            }
            return;
        }
        let Some(call) = self.calls.remove(channel) else { return };
        let call_id = channel.to_string();
        if let Some(leg) = &call.leg {
            out.push(req(Method::Delete, format!("/channels/{}", leg.channel), &[]));
        }
        let event = if call.answered {
            out.push(req(Method::Delete, format!("/bridges/{}", bridge_id(&call_id)), &[]));
            TelephonyEvent::CallEnded { event_id: format!("{call_id}:ended"), call_id, by: CallParty::Caller, at: At(at) }
        } else {
            TelephonyEvent::CallAbandoned { event_id: format!("{call_id}:abandoned"), call_id, at: At(at) }
        };
        self.send(now, event, out);
    }

    fn command(&mut self, now: i64, command: TelephonyCommand, out: &mut Vec<Output>) {
        let command_id = match &command {
            TelephonyCommand::Ack { event_id } => {
                self.unacked.remove(event_id);
                return;
            }
            TelephonyCommand::Error { reference: Some(r), code, .. } if *code == crate::protocol::ErrorCode::UnknownCall => {
                // The hub does not know the call (it was stored as an orphan): nothing more to send for it.
                let r = r.clone();
                self.unacked.retain(|_, u| event_call(&u.event) != Some(r.as_str()));
                return;
            }
            TelephonyCommand::Pong {} | TelephonyCommand::Error { .. } => return,
            TelephonyCommand::Reject { call_id, .. } => {
                if self.calls.remove(call_id).is_some() {
                    let playback = format!("reject-{call_id}");
                    out.push(req(
                        Method::Post,
                        format!("/channels/{call_id}/play"),
                        &[("media", &self.cfg.reject_media), ("playbackId", &playback)],
                    ));
                    self.rejecting.insert(playback, call_id.clone());
                }
                return;
            }
            TelephonyCommand::Connect { command_id, .. }
            | TelephonyCommand::Cancel { command_id, .. }
            | TelephonyCommand::Hold { command_id, .. }
            | TelephonyCommand::Unhold { command_id, .. }
            | TelephonyCommand::Hangup { command_id, .. } => command_id.clone(),
        };
        if !self.done.contains_key(&command_id) {
            self.carry_out(now, command, out);
            self.done.insert(command_id.clone(), now);
        }
        out.push(Output::Hub(TelephonyEvent::CommandAck { command_id }));
    }

    fn carry_out(&mut self, now: i64, command: TelephonyCommand, out: &mut Vec<Output>) {
        match command {
            TelephonyCommand::Connect { command_id, call_id, extension, .. } => {
                let Some(call) = self.calls.get_mut(&call_id) else { return };
                // A leg still ringing is cancelled; after a transfer the old counsellor's leg is hung up.
                if let Some(old) = call.leg.take() {
                    out.push(req(Method::Delete, format!("/channels/{}", old.channel), &[]));
                }
                let leg = leg_id(&call_id, &command_id);
                call.leg = Some(Leg { channel: leg.clone(), up: false });
                let endpoint = self.cfg.dial.replace("{extension}", &extension);
                let args = format!("counsellor,{call_id}");
                let timeout = self.cfg.ring_timeout_s.to_string();
                out.push(req(
                    Method::Post,
                    "/channels".into(),
                    &[("endpoint", &endpoint), ("app", &self.cfg.app), ("appArgs", &args), ("channelId", &leg), ("timeout", &timeout)],
                ));
            }
            TelephonyCommand::Cancel { call_id, .. } => {
                let Some(call) = self.calls.get_mut(&call_id) else { return };
                if let Some(leg) = call.leg.take_if(|l| !l.up) {
                    out.push(req(Method::Delete, format!("/channels/{}", leg.channel), &[]));
                }
            }
            TelephonyCommand::Hold { call_id, .. } => {
                let Some(call) = self.calls.get_mut(&call_id).filter(|c| c.answered && !c.held) else { return };
                call.held = true;
                out.push(req(Method::Post, format!("/bridges/{}/removeChannel", bridge_id(&call_id)), &[("channel", &call_id)]));
                out.push(req(Method::Post, format!("/channels/{call_id}/moh"), &[("mohClass", &self.cfg.moh_class)]));
            }
            TelephonyCommand::Unhold { call_id, .. } => {
                let Some(call) = self.calls.get_mut(&call_id).filter(|c| c.held) else { return };
                call.held = false;
                out.push(req(Method::Delete, format!("/channels/{call_id}/moh"), &[]));
                out.push(req(Method::Post, format!("/bridges/{}/addChannel", bridge_id(&call_id)), &[("channel", &call_id)]));
            }
            TelephonyCommand::Hangup { call_id, .. } => {
                let Some(call) = self.calls.remove(&call_id) else { return };
                out.push(req(Method::Delete, format!("/channels/{call_id}"), &[]));
                if let Some(leg) = &call.leg {
                    out.push(req(Method::Delete, format!("/channels/{}", leg.channel), &[]));
                }
                if call.answered {
                    out.push(req(Method::Delete, format!("/bridges/{}", bridge_id(&call_id)), &[]));
                }
                let event =
                    TelephonyEvent::CallEnded { event_id: format!("{call_id}:ended"), call_id, by: CallParty::Counsellor, at: At(now) };
                self.send(now, event, out);
            }
            _ => {}
        }
    }

    /// ARI's socket (re)opened: `channels` is what Asterisk has now. Calls the adapter did not know
    /// (it restarted) are taken up again with the same event ids; calls whose channels went away
    /// meanwhile are ended.
    fn reconcile(&mut self, now: i64, channels: Vec<Channel>, out: &mut Vec<Output>) {
        let by_id: BTreeMap<&str, &Channel> = channels.iter().map(|c| (c.id.as_str(), c)).collect();
        // Callers in the app that the adapter does not follow yet.
        let mut fresh = Vec::new();
        for c in &channels {
            let mut data = c.app_data.split(',');
            let in_app = c.app_name.eq_ignore_ascii_case("stasis") && data.next() == Some(self.cfg.app.as_str());
            if !in_app || call_of_leg(&c.id).is_some() || self.calls.contains_key(&c.id) {
                continue;
            }
            self.calls.insert(c.id.clone(), Call::default());
            fresh.push(c.id.clone());
            let dialled = data.next().unwrap_or_default().to_string();
            self.offered(now, c, dialled, c.created, out);
        }
        // Their counsellors' legs.
        for c in &channels {
            let Some(call_id) = call_of_leg(&c.id) else { continue };
            let Some(call) = self.calls.get_mut(call_id) else { continue };
            let known = call.leg.as_ref().is_some_and(|l| l.channel == c.id);
            if call.leg.is_none() || known {
                let up = c.state.eq_ignore_ascii_case("up");
                call.leg = Some(Leg { channel: c.id.clone(), up });
                if up && !call.answered {
                    call.answered = true;
                    let event = TelephonyEvent::CallAnswered {
                        event_id: format!("{call_id}:answered"),
                        call_id: call_id.to_string(),
                        at: At(c.created),
                    };
                    self.send(now, event, out);
                }
            }
        }
        // Callers taken up again and not in a conversation: answered if they were not yet, music again.
        for c in &channels {
            if !fresh.contains(&c.id) || self.calls.get(&c.id).is_some_and(|call| call.answered) {
                continue;
            }
            let id = &c.id;
            if !c.state.eq_ignore_ascii_case("up") {
                out.push(req(Method::Post, format!("/channels/{id}/answer"), &[]));
            }
            out.push(req(Method::Post, format!("/channels/{id}/moh"), &[("mohClass", &self.cfg.moh_class)]));
        }
        // What went away meanwhile.
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for call_id in ids {
            let Some(call) = self.calls.get(&call_id) else { continue };
            let leg = call.leg.as_ref().map(|l| l.channel.clone());
            if !by_id.contains_key(call_id.as_str()) {
                self.gone(now, &call_id, now, out);
            } else if let Some(leg) = leg.filter(|l| !by_id.contains_key(l.as_str())) {
                self.gone(now, &leg, now, out);
            }
        }
    }
}

fn event_call(event: &TelephonyEvent) -> Option<&str> {
    match event {
        TelephonyEvent::CallOffered { call_id, .. }
        | TelephonyEvent::CallAnswered { call_id, .. }
        | TelephonyEvent::CallEnded { call_id, .. }
        | TelephonyEvent::CallAbandoned { call_id, .. } => Some(call_id),
        TelephonyEvent::Ping {} | TelephonyEvent::CommandAck { .. } => None,
    }
}

/// ARI's time (`2026-12-07T20:15:03.123+0000`) in ms since the epoch.
pub fn ari_time(s: &str) -> Option<i64> {
    jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%z", s).ok().or_else(|| s.parse::<jiff::Timestamp>().ok()).map(|t| t.as_millisecond())
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or_default().to_string()
}

/// A channel from ARI's JSON (`None` without an id).
pub fn parse_channel(v: &Value, now: i64) -> Option<Channel> {
    let id = v["id"].as_str().filter(|s| !s.is_empty())?.to_string();
    Some(Channel {
        id,
        state: text(v, &["state"]),
        caller_number: text(v, &["caller", "number"]),
        language: text(v, &["language"]),
        app_name: text(v, &["dialplan", "app_name"]),
        app_data: text(v, &["dialplan", "app_data"]),
        created: ari_time(&text(v, &["creationtime"])).unwrap_or(now),
    })
}

/// An ARI event from its JSON; `now` stands in for a missing or unreadable timestamp.
pub fn parse_event(v: &Value, now: i64) -> AriEvent {
    let at = ari_time(&text(v, &["timestamp"])).unwrap_or(now);
    match v["type"].as_str().unwrap_or_default() {
        "StasisStart" => {
            let Some(channel) = parse_channel(&v["channel"], now) else { return AriEvent::Other };
            let args = v["args"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
            AriEvent::StasisStart { channel, args, at }
        }
        "StasisEnd" | "ChannelDestroyed" => match v["channel"]["id"].as_str() {
            Some(id) => AriEvent::Gone { channel_id: id.to_string(), at },
            None => AriEvent::Other,
        },
        "PlaybackFinished" => match v["playback"]["id"].as_str() {
            Some(id) => AriEvent::PlaybackFinished { playback_id: id.to_string() },
            None => AriEvent::Other,
        },
        _ => AriEvent::Other,
    }
}

#[cfg(test)]
mod tests;

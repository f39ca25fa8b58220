//! A fake Asterisk REST Interface (HTTP + WebSocket on loopback) for the Asterisk adapter's tests,
//! checked against Asterisk's own published ARI description (`../shared/reference/asterisk-ari/`,
//! Swagger 1.1 of ARI 2.0.0), loaded when the fake starts: every request must be a documented path and
//! method, with documented parameters only, the required ones present and the values of the
//! documented type; every event it sends must carry the fields `events.json` marks required (with
//! the models they hold: `Channel`, `CallerID`, …). Anything else is refused (HTTP 400/404, the event
//! not sent) and recorded as a violation; every test ends with [`AriFake::check`].
//!
//! Asterisk's side of a call is played by the test: [`AriFake::incoming`] (a caller reaches
//! `Stasis(helpline,116111)`), [`AriFake::answer_leg`] (a counsellor's phone picks up),
//! [`AriFake::hang_up`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub const ARI_USER: &str = "helpline";
pub const ARI_PASSWORD: &str = "ari-secret";

/// One documented parameter.
#[derive(Debug, Clone)]
struct Param {
    name: String,
    kind: String,
    required: bool,
    data_type: String,
    multiple: bool,
    values: Option<Vec<String>>,
}

/// One documented operation.
#[derive(Debug, Clone)]
struct Op {
    method: String,
    /// The path's segments below `/ari` (`{channelId}` for a parameter).
    segments: Vec<String>,
    params: Vec<Param>,
}

/// ARI's description: its operations and models.
pub struct Spec {
    ops: Vec<Op>,
    models: BTreeMap<String, Value>,
}

fn spec_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/asterisk-ari")
}

impl Spec {
    /// Reads every API declaration listed in `resources.json`.
    pub fn load() -> Spec {
        let dir = spec_dir();
        let read = |name: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("ARI description {name}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("ARI description {name}: {e}"))
        };
        let resources = read("resources.json");
        let mut ops = Vec::new();
        let mut models = BTreeMap::new();
        for api in resources["apis"].as_array().expect("resources.json lists apis") {
            // "/api-docs/channels.{format}" → channels.json
            let path = api["path"].as_str().expect("api path");
            let file = path.trim_start_matches("/api-docs/").replace(".{format}", ".json");
            if !dir.join(&file).exists() {
                // Not copied into the reference (e.g. `mailboxes`): its paths are refused as undocumented.
                continue;
            }
            let decl = read(&file);
            for a in decl["apis"].as_array().into_iter().flatten() {
                let path = a["path"].as_str().expect("path");
                let segments: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
                for op in a["operations"].as_array().into_iter().flatten() {
                    let params = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| Param {
                            name: p["name"].as_str().unwrap_or_default().into(),
                            kind: p["paramType"].as_str().unwrap_or_default().into(),
                            required: p["required"].as_bool().unwrap_or(false),
                            data_type: p["dataType"].as_str().unwrap_or_default().into(),
                            multiple: p["allowMultiple"].as_bool().unwrap_or(false),
                            values: (p["allowableValues"]["valueType"] == "LIST").then(|| {
                                p["allowableValues"]["values"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect()
                            }),
                        })
                        .collect();
                    ops.push(Op { method: op["httpMethod"].as_str().unwrap_or_default().into(), segments: segments.clone(), params });
                }
            }
            if let Some(m) = decl["models"].as_object() {
                for (name, model) in m {
                    models.insert(name.clone(), model.clone());
                }
            }
        }
        assert!(
            ops.len() > 50 && models.contains_key("StasisStart") && models.contains_key("Channel"),
            "the ARI description is incomplete"
        );
        Spec { ops, models }
    }

    /// Checks a request: `Err` names what is not documented.
    pub fn check_request(&self, method: &str, path: &str, query: &[(String, String)], body: &[u8]) -> Result<(), String> {
        let Some(rest) = path.strip_prefix("/ari/") else { return Err(format!("{method} {path}: not below /ari")) };
        let segments: Vec<&str> = rest.split('/').collect();
        let fits = |op: &&Op| {
            op.segments.len() == segments.len() && op.segments.iter().zip(&segments).all(|(s, got)| s.starts_with('{') || s == got)
        };
        // The most literal match wins (`/channels/create` over `/channels/{channelId}`).
        let literal = |op: &&Op| op.segments.iter().filter(|s| !s.starts_with('{')).count();
        let candidates: Vec<&Op> = self.ops.iter().filter(fits).collect();
        let best = candidates.iter().map(literal).max().ok_or_else(|| format!("{method} {path}: no such path in ARI"))?;
        let op = candidates
            .iter()
            .filter(|op| literal(op) == best)
            .find(|op| op.method == method)
            .ok_or_else(|| format!("{method} {path}: method not documented for this path"))?;
        for (name, value) in query {
            let param = op
                .params
                .iter()
                .find(|p| p.kind == "query" && &p.name == name)
                .ok_or_else(|| format!("{method} {path}: parameter {name:?} is not documented"))?;
            let values: Vec<&str> = if param.multiple { value.split(',').collect() } else { vec![value.as_str()] };
            for v in values {
                let ok = match param.data_type.as_str() {
                    "int" | "long" => v.parse::<i64>().is_ok(),
                    "boolean" => v == "true" || v == "false",
                    _ => true,
                };
                if !ok {
                    return Err(format!("{method} {path}: {name}={v:?} is not a {}", param.data_type));
                }
                if let Some(allowed) = &param.values {
                    if !allowed.iter().any(|a| a == v) {
                        return Err(format!("{method} {path}: {name}={v:?} is not one of {allowed:?}"));
                    }
                }
            }
        }
        for p in op.params.iter().filter(|p| p.required) {
            let present = match p.kind.as_str() {
                "query" => query.iter().any(|(n, v)| n == &p.name && !v.is_empty()),
                "body" => !body.is_empty(),
                _ => true,
            };
            if !present {
                return Err(format!("{method} {path}: required parameter {:?} is missing", p.name));
            }
        }
        if !body.is_empty() && !op.params.iter().any(|p| p.kind == "body") {
            return Err(format!("{method} {path}: a body where none is documented"));
        }
        Ok(())
    }

    /// The models `name` extends (`StasisStart` → `Event` → `Message`).
    fn ancestors(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = name.to_string();
        while let Some((parent, _)) =
            self.models.iter().find(|(_, m)| m["subTypes"].as_array().is_some_and(|s| s.iter().any(|t| t == current.as_str())))
        {
            out.push(parent.clone());
            current = parent.clone();
        }
        out
    }

    fn check_value(&self, v: &Value, ty: &str, at: &str, errors: &mut Vec<String>) {
        let ok = match ty {
            "string" | "Date" => v.is_string(),
            "int" | "long" | "double" => v.is_number(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            _ if ty.starts_with("List[") => {
                let inner = &ty[5..ty.len() - 1];
                match v.as_array() {
                    Some(items) => {
                        for (i, item) in items.iter().enumerate() {
                            self.check_value(item, inner, &format!("{at}[{i}]"), errors);
                        }
                        true
                    }
                    None => false,
                }
            }
            _ if self.models.contains_key(ty) => {
                self.check_model(v, ty, at, errors);
                v.is_object()
            }
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: not a {ty}: {v}"));
        }
    }

    fn check_model(&self, v: &Value, name: &str, at: &str, errors: &mut Vec<String>) {
        let mut models = vec![name.to_string()];
        models.extend(self.ancestors(name));
        for m in models {
            let Some(props) = self.models[&m]["properties"].as_object() else { continue };
            for (field, prop) in props {
                let ty = prop["type"].as_str().unwrap_or_default();
                match v.get(field) {
                    Some(value) => self.check_value(value, ty, &format!("{at}.{field}"), errors),
                    None if prop["required"].as_bool() == Some(true) => {
                        errors.push(format!("{at}: required field {field:?} ({m}) is missing"))
                    }
                    None => {}
                }
            }
        }
    }

    /// Checks an event against its model (by its `type`) and the models it extends.
    pub fn check_event(&self, event: &Value) -> Result<(), String> {
        let ty = event["type"].as_str().ok_or("an event without a type")?;
        if !self.models.contains_key(ty) || !self.ancestors(ty).iter().any(|a| a == "Event") {
            return Err(format!("{ty:?} is not an ARI event"));
        }
        let mut errors = Vec::new();
        self.check_model(event, ty, ty, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Checks a response body against a model (the fake's own answers are checked too).
    fn check_response(&self, body: &Value, model: &str) -> Result<(), String> {
        let mut errors = Vec::new();
        self.check_value(body, model, model, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// A counsellor's leg originated by the adapter.
#[derive(Debug, Clone)]
struct Leg {
    endpoint: String,
    args: Vec<String>,
}

#[derive(Default)]
struct World {
    channels: BTreeMap<String, Value>,
    /// Channels in the Stasis app.
    in_app: BTreeSet<String>,
    legs: BTreeMap<String, Leg>,
    bridges: BTreeMap<String, Vec<String>>,
    moh: BTreeSet<String>,
    playbacks: BTreeMap<String, Value>,
    requests: Vec<String>,
    /// When each request arrived (same order as `requests`).
    arrived: Vec<std::time::Instant>,
    violations: Vec<String>,
    sockets: Vec<mpsc::UnboundedSender<Option<String>>>,
    connections: usize,
    next: u64,
}

struct Inner {
    spec: Spec,
    world: Mutex<World>,
    changed: watch::Sender<u64>,
}

/// The fake ARI server.
#[derive(Clone)]
pub struct AriFake {
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
}

/// Asterisk's time format.
pub fn ari_time(ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(ms).expect("time");
    t.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn ms_now() -> i64 {
    crate::exchange::now_ms()
}

impl AriFake {
    pub async fn start() -> AriFake {
        let (changed, _) = watch::channel(0);
        let inner = Arc::new(Inner { spec: Spec::load(), world: Mutex::new(World::default()), changed });
        let router = axum::Router::new().route("/ari/events", axum::routing::get(events_socket)).fallback(rest).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        AriFake { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.inner.world.lock().expect("world")
    }

    /// Waits (up to 10 s) until `check` holds for the fake's state.
    async fn until<T>(&self, what: &str, mut check: impl FnMut(&World) -> Option<T>) -> T {
        let mut rx = self.inner.changed.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = check(&self.world()) {
                return v;
            }
            let violations = self.world().violations.clone();
            assert!(violations.is_empty(), "the ARI fake refused: {violations:#?}");
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                let w = self.world();
                panic!("ARI fake: waited in vain for {what}; requests so far: {:#?}", w.requests);
            }
        }
    }

    /// The adapter has opened ARI's event socket `n` times and listed the channels after it.
    pub async fn connected(&self, n: usize) {
        self.until(&format!("event socket #{n}"), |w| {
            (w.connections >= n && w.requests.iter().filter(|r| r.as_str() == "GET /ari/channels").count() >= n).then_some(())
        })
        .await;
    }

    /// Waits for a request (`"POST /ari/channels/17.1/answer"`, query included when given).
    pub async fn request(&self, line: &str) {
        self.until(line, |w| w.requests.iter().any(|r| r == line || r.split('?').next() == Some(line)).then_some(())).await;
    }

    /// Waits for the first request starting with `prefix` made after request number `after`; returns
    /// its index and when it arrived.
    pub async fn request_after(&self, after: usize, prefix: &str) -> (usize, std::time::Instant) {
        self.until(prefix, |w| {
            w.requests.iter().enumerate().skip(after).find(|(_, r)| r.starts_with(prefix)).map(|(i, _)| (i, w.arrived[i]))
        })
        .await
    }

    /// Every request made so far (`METHOD /ari/path?query`).
    pub fn requests(&self) -> Vec<String> {
        self.world().requests.clone()
    }

    /// Sends an event to every open event socket, if ARI's description allows it (else a violation).
    pub fn emit(&self, event: Value) {
        let mut w = self.world();
        emit(&self.inner.spec, &mut w, event);
        drop(w);
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// `caller`: number and language; `dialplan`: extension and the Stasis app's data.
    fn channel_json(w: &mut World, id: &str, name: &str, state: &str, caller: (&str, &str), dialplan: (&str, &str), at: i64) -> Value {
        let ((number, language), (exten, app_data)) = (caller, dialplan);
        w.next += 1;
        json!({
            "id": id, "protocol_id": "", "name": format!("{name}-{:08x}", w.next), "state": state,
            "caller": {"name": "", "number": number}, "connected": {"name": "", "number": ""},
            "accountcode": "", "language": language, "creationtime": ari_time(at),
            "dialplan": {"context": "helpline", "exten": exten, "priority": 2, "app_name": "Stasis", "app_data": app_data}
        })
    }

    /// A caller dialled `dialled`: the dialplan (`Set(CHANNEL(language)=…)`, `Stasis(helpline,…)`)
    /// puts their channel `id` into the app. Returns the event's time.
    pub fn incoming(&self, id: &str, dialled: &str, caller: &str, language: &str) -> i64 {
        let at = ms_now();
        let mut w = self.world();
        let channel =
            Self::channel_json(&mut w, id, "PJSIP/trunk", "Ring", (caller, language), (dialled, &format!("helpline,{dialled}")), at);
        w.channels.insert(id.into(), channel.clone());
        w.in_app.insert(id.into());
        let event =
            json!({"type": "StasisStart", "application": "helpline", "timestamp": ari_time(at), "args": [dialled], "channel": channel});
        emit(&self.inner.spec, &mut w, event);
        drop(w);
        self.inner.changed.send_modify(|n| *n += 1);
        at
    }

    /// Waits until the adapter rings `extension`, then that phone picks up: the leg enters the app.
    /// Returns the leg's channel id and the time.
    pub async fn answer_leg(&self, extension: &str) -> (String, i64) {
        let endpoint = format!("PJSIP/{extension}");
        let leg = self
            .until(&format!("a leg ringing {endpoint}"), |w| {
                w.legs
                    .iter()
                    .find(|(id, l)| l.endpoint == endpoint && !w.in_app.contains(*id) && w.channels.contains_key(*id))
                    .map(|(id, _)| id.clone())
            })
            .await;
        let at = ms_now();
        let mut w = self.world();
        let args = w.legs[&leg].args.clone();
        let Some(channel) = w.channels.get_mut(&leg) else { panic!("leg gone") };
        channel["state"] = json!("Up");
        let channel = channel.clone();
        w.in_app.insert(leg.clone());
        let event = json!({"type": "StasisStart", "application": "helpline", "timestamp": ari_time(at), "args": args, "channel": channel});
        emit(&self.inner.spec, &mut w, event);
        drop(w);
        self.inner.changed.send_modify(|n| *n += 1);
        (leg, at)
    }

    /// Channel `id` hangs up (its phone). Returns the time.
    pub fn hang_up(&self, id: &str) -> i64 {
        let at = ms_now();
        let mut w = self.world();
        assert!(hang_up(&self.inner.spec, &mut w, id, at), "no channel {id}");
        drop(w);
        self.inner.changed.send_modify(|n| *n += 1);
        at
    }

    /// Waits until channel `id` is gone (hung up by the adapter).
    pub async fn gone(&self, id: &str) {
        self.until(&format!("channel {id} gone"), |w| (!w.channels.contains_key(id)).then_some(())).await;
    }

    /// Waits until bridge `bridge` holds exactly `members` (in any order).
    pub async fn bridged(&self, bridge: &str, members: &[&str]) {
        let mut want: Vec<String> = members.iter().map(|s| s.to_string()).collect();
        want.sort();
        self.until(&format!("bridge {bridge} = {want:?}"), |w| {
            let mut got = w.bridges.get(bridge).cloned().unwrap_or_default();
            got.sort();
            (got == want).then_some(())
        })
        .await;
    }

    /// Waits until channel `id` hears music on hold (or not).
    pub async fn music(&self, id: &str, on: bool) {
        self.until(&format!("music on {id} = {on}"), |w| (w.moh.contains(id) == on).then_some(())).await;
    }

    /// Closes every event socket (as when Asterisk restarts its HTTP server or the network drops).
    pub fn drop_sockets(&self) {
        let mut w = self.world();
        for s in w.sockets.drain(..) {
            let _ = s.send(None);
        }
    }

    /// What the fake refused so far (and forgets it).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.world().violations)
    }

    /// The test fails if the fake refused anything.
    pub fn check(&self) {
        let violations = self.take_violations();
        assert!(violations.is_empty(), "the ARI fake refused: {violations:#?}");
    }
}

fn emit(spec: &Spec, w: &mut World, event: Value) {
    if let Err(e) = spec.check_event(&event) {
        w.violations.push(format!("event refused: {e}"));
        return;
    }
    let text = event.to_string();
    w.sockets.retain(|s| s.send(Some(text.clone())).is_ok());
}

/// Hangs up channel `id`: out of its bridges, `StasisEnd` if it was in the app, `ChannelDestroyed`.
fn hang_up(spec: &Spec, w: &mut World, id: &str, at: i64) -> bool {
    let Some(channel) = w.channels.remove(id) else { return false };
    for members in w.bridges.values_mut() {
        members.retain(|m| m != id);
    }
    w.moh.remove(id);
    if w.in_app.remove(id) {
        emit(spec, w, json!({"type": "StasisEnd", "application": "helpline", "timestamp": ari_time(at), "channel": channel}));
    }
    emit(
        spec,
        w,
        json!({"type": "ChannelDestroyed", "application": "helpline", "timestamp": ari_time(at), "cause": 16,
               "cause_txt": "Normal Clearing", "channel": channel}),
    );
    true
}

fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ARI_USER}:{ARI_PASSWORD}")));
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records and checks a request; `Err` is the answer to refuse it with.
fn admit(inner: &Inner, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, Box<Response>> {
    let query = query_pairs(uri);
    let line = match uri.query() {
        Some(_) => format!("{method} {}?{}", uri.path(), query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")),
        None => format!("{method} {}", uri.path()),
    };
    let mut w = inner.world.lock().expect("world");
    w.requests.push(line);
    w.arrived.push(std::time::Instant::now());
    if !authorized(headers) {
        w.violations.push(format!("{method} {}: without the ARI user's credentials", uri.path()));
        return Err(Box::new((StatusCode::UNAUTHORIZED, "unauthorized").into_response()));
    }
    if let Err(e) = inner.spec.check_request(method, uri.path(), &query, body) {
        let status = if e.contains("no such path") { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
        w.violations.push(e.clone());
        return Err(Box::new((status, Json(json!({"message": e}))).into_response()));
    }
    Ok(query)
}

async fn events_socket(State(inner): State<Arc<Inner>>, ws: WebSocketUpgrade, uri: Uri, headers: HeaderMap) -> Response {
    let query = match admit(&inner, "GET", &uri, &headers, &[]) {
        Ok(q) => q,
        Err(refused) => {
            inner.changed.send_modify(|n| *n += 1);
            return *refused;
        }
    };
    if !query.iter().any(|(k, v)| k == "app" && v == "helpline") {
        inner.world.lock().expect("world").violations.push("the event socket is not for app=helpline".into());
    }
    ws.on_upgrade(move |socket| serve_socket(inner, socket))
}

async fn serve_socket(inner: Arc<Inner>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<String>>();
    {
        let mut w = inner.world.lock().expect("world");
        w.sockets.push(tx);
        w.connections += 1;
    }
    inner.changed.send_modify(|n| *n += 1);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Some(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                _ => {}
            },
        }
    }
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn rest(State(inner): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let answer = answer(&inner, method.as_str(), &uri, &headers, &body);
    inner.changed.send_modify(|n| *n += 1);
    answer
}

fn answer(inner: &Inner, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let query = match admit(inner, method, uri, headers, body) {
        Ok(q) => q,
        Err(refused) => return *refused,
    };
    let spec = &inner.spec;
    let mut w = inner.world.lock().expect("world");
    let path: Vec<&str> = uri.path().trim_start_matches("/ari/").split('/').collect();
    let now = ms_now();
    let no_content = || StatusCode::NO_CONTENT.into_response();
    let not_found = |what: &str| (StatusCode::NOT_FOUND, Json(json!({"message": format!("{what} not found")}))).into_response();
    let checked = |w: &mut World, body: Value, model: &str| -> Response {
        if let Err(e) = spec.check_response(&body, model) {
            w.violations.push(format!("the fake's own {model} answer: {e}"));
        }
        Json(body).into_response()
    };
    match (method, path.as_slice()) {
        ("GET", ["channels"]) => {
            let list: Vec<Value> = w.channels.values().cloned().collect();
            checked(&mut w, Value::Array(list), "List[Channel]")
        }
        ("POST", ["channels"]) => {
            let id = param(&query, "channelId").map(str::to_string).unwrap_or_else(|| format!("leg.{}", now));
            if w.channels.contains_key(&id) {
                return (StatusCode::CONFLICT, Json(json!({"message": "Channel with given unique ID already exists"}))).into_response();
            }
            let endpoint = param(&query, "endpoint").unwrap_or_default().to_string();
            let args: Vec<String> = param(&query, "appArgs").map(|a| a.split(',').map(str::to_string).collect()).unwrap_or_default();
            let channel = AriFake::channel_json(&mut w, &id, &endpoint, "Ringing", ("", ""), ("", ""), now);
            w.channels.insert(id.clone(), channel.clone());
            w.legs.insert(id, Leg { endpoint, args });
            checked(&mut w, channel, "Channel")
        }
        ("DELETE", ["channels", id]) => {
            if hang_up(spec, &mut w, id, now) {
                no_content()
            } else {
                not_found("Channel")
            }
        }
        ("POST", ["channels", id, "answer"]) => match w.channels.get_mut(*id) {
            Some(c) => {
                c["state"] = json!("Up");
                no_content()
            }
            None => not_found("Channel"),
        },
        ("POST" | "DELETE", ["channels", id, "moh"]) => {
            if !w.channels.contains_key(*id) {
                return not_found("Channel");
            }
            if method == "POST" {
                w.moh.insert(id.to_string());
            } else {
                w.moh.remove(*id);
            }
            no_content()
        }
        ("POST", ["channels", id, "play"]) => {
            if !w.channels.contains_key(*id) {
                return not_found("Channel");
            }
            let playback_id = param(&query, "playbackId").map(str::to_string).unwrap_or_else(|| format!("pb.{now}"));
            let playback = json!({"id": playback_id, "media_uri": param(&query, "media").unwrap_or_default(),
                                  "target_uri": format!("channel:{id}"), "language": "en", "state": "playing"});
            w.playbacks.insert(playback_id, playback.clone());
            checked(&mut w, playback, "Playback")
        }
        ("POST", ["bridges", id]) => {
            let id = id.to_string();
            w.bridges.entry(id.clone()).or_default();
            let bridge = json!({"id": id, "technology": "simple_bridge", "bridge_type": param(&query, "type").unwrap_or("mixing"),
                                "bridge_class": "stasis", "creator": "Stasis", "name": "", "channels": w.bridges[&id],
                                "creationtime": ari_time(now)});
            checked(&mut w, bridge, "Bridge")
        }
        ("DELETE", ["bridges", id]) => {
            if w.bridges.remove(*id).is_some() {
                no_content()
            } else {
                not_found("Bridge")
            }
        }
        ("POST", ["bridges", id, op @ ("addChannel" | "removeChannel")]) => {
            let channels: Vec<String> = param(&query, "channel").unwrap_or_default().split(',').map(str::to_string).collect();
            if !w.bridges.contains_key(*id) {
                return not_found("Bridge");
            }
            if let Some(missing) = channels.iter().find(|c| !w.channels.contains_key(*c)) {
                return (StatusCode::BAD_REQUEST, Json(json!({"message": format!("Channel {missing} not found")}))).into_response();
            }
            let members = w.bridges.get_mut(*id).expect("bridge");
            for c in channels {
                if *op == "addChannel" {
                    if !members.contains(&c) {
                        members.push(c);
                    }
                } else {
                    members.retain(|m| *m != c);
                }
            }
            no_content()
        }
        _ => {
            let e = format!("{method} {}: documented, but the fake does not play it", uri.path());
            w.violations.push(e.clone());
            (StatusCode::NOT_IMPLEMENTED, Json(json!({"message": e}))).into_response()
        }
    }
}

//! CI smoke mode: the real server in this process (temporary SQLite, port 0), then `relay` and
//! `routing` at low rates for a few seconds each, and the bare relay once. Fails on any error, lost
//! or duplicated message, out-of-order delivery, double offer or over-capacity assignment.
//! Also `supervisors` (every probe contact seen on every board) and a short `day` of chats and
//! calls through an exchange socket (every event acknowledged, every contact answered).
//! Not a timing test: no latency thresholds.

use std::time::Duration;

use helpline::app::{Application, Settings};
use helpline::store::Store;
use helpline_load::day::{self, DayOpts};
use helpline_load::relay::{self, RelayOpts};
use helpline_load::report::Report;
use helpline_load::routing::{self, RoutingOpts};
use helpline_load::supervisors::{self, SupervisorOpts};
use helpline_load::target::Target;

const SECRET: &str = "smoke-test-secret-smoke-test-secret";

struct Server {
    target: Target,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("helpline.db").display());
    let mut settings = Settings::for_database(url.clone());
    settings.jwt_secret = Some(SECRET.into());
    // As for a spawned target (src/target.rs): the load comes from loopback addresses, so the per-address abuse limits are off.
    settings.guard.sockets_per_ip = 0;
    settings.guard.contacts_per_ip_per_min = 0;
    let app = Application::build(settings).await.expect("build the server");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let store = Store::connect(&url).await.expect("store");
    Server { target: Target::in_process(addr, store, SECRET, "helpline (sqlite, in process)"), stop: Some(stop), task, _dir: dir }
}

impl Server {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        task.await.expect("server task").expect("server stopped cleanly");
    }
}

fn check(r: &Report) {
    print!("{}", r.table());
    assert!(r.failures().is_empty(), "{}: {:?}\n{}", r.scenario, r.failures(), r.table());
}

fn relay_opts() -> RelayOpts {
    RelayOpts {
        conversations: 8,
        rates: vec![50.0, 200.0],
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(200),
        size: 64,
        drain: Duration::from_secs(15),
        ..RelayOpts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_on_helpline_loses_and_doubles_nothing() {
    let server = start().await;
    let reports = relay::run(&server.target, &relay_opts()).await.expect("relay scenario");
    assert_eq!(reports.len(), 2);
    for r in &reports {
        check(r);
        assert_eq!(r.counter("acked"), r.counter("sent"), "every message acked");
        assert_eq!(r.counter("received"), r.counter("sent"), "every message delivered");
        assert!(r.counter("sent") > 0);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_on_helpline_never_double_offers_or_overfills() {
    let server = start().await;
    let opts = RoutingOpts {
        counsellors: 4,
        capacity: 2,
        rate: 4.0,
        duration: Duration::from_secs(3),
        accept_delay: (Duration::from_millis(20), Duration::from_millis(200)),
        hold: Duration::from_millis(800),
        drain: Duration::from_secs(20),
        ..RoutingOpts::default()
    };
    let r = routing::run(&server.target, &opts).await.expect("routing scenario");
    check(&r);
    assert!(r.counter("arrivals") > 0);
    assert_eq!(r.counter("assigned"), r.counter("arrivals"), "every contact answered");
    assert_eq!(r.counter("ended"), r.counter("arrivals"), "every conversation ended");
    assert_eq!(r.counter("unanswered"), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_on_the_bare_baseline_works_too() {
    let bare = Target::bare_in_process().await.expect("bare relay");
    let mut opts = relay_opts();
    opts.rates = vec![200.0];
    for r in relay::run(&bare, &opts).await.expect("relay on bare") {
        check(&r);
        assert_eq!(r.counter("received"), r.counter("sent"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_see_every_probe_while_relay_runs() {
    let server = start().await;
    let mut relay = relay_opts();
    relay.conversations = 4;
    relay.rates = vec![50.0];
    let opts = SupervisorOpts { supervisors: 2, relay, probe_every: Duration::from_millis(400), ..SupervisorOpts::default() };
    let reports = supervisors::run(&server.target, &opts).await.expect("supervisors scenario");
    assert_eq!(reports.len(), 2, "one step without and one with supervisors");
    for r in &reports {
        check(r);
        assert_eq!(r.counter("received"), r.counter("sent"));
    }
    let watched = &reports[1];
    assert_eq!(watched.scenario, "supervisors");
    assert!(watched.counter("probes") > 0, "probes were opened");
    assert!(watched.counter("dashboards") > 0, "the supervisors got boards");
    assert_eq!(watched.latencies["state -> board"].count, watched.counter("probes") * 2, "every probe seen by both supervisors");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_day_of_chats_and_calls_answers_every_patient_contact() {
    let server = start().await;
    let opts = DayOpts {
        counsellors: 4,
        hours: 3,
        first_hour: 19,
        hour: Duration::from_millis(700),
        peak_rate: 4.0,
        accept_delay: (Duration::from_millis(10), Duration::from_millis(100)),
        handle: Duration::from_millis(300),
        // Patient callers: every contact must be answered.
        patience: Duration::from_secs(600),
        escalate: 0.3,
        drain: Duration::from_secs(30),
        ..DayOpts::default()
    };
    let r = day::run(&server.target, &opts).await.expect("day scenario");
    check(&r);
    assert!(r.counter("arrivals") > 0);
    assert_eq!(r.counter("answered"), r.counter("arrivals"), "every contact answered");
    assert_eq!(r.counter("unacked_events"), 0);
    assert_eq!(r.counter("escalated"), r.counter("escalations"), "every escalation confirmed");
    assert_eq!(r.figures.get("server_today_offered").copied(), Some(r.counter("arrivals") as f64), "the server counted the same contacts");
    server.stop().await;
}

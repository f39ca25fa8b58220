//! `helpline-load`: load scenarios against a running helpline (or the bare relay), over real WebSockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use helpline_load::client::Sources;
use helpline_load::connections::{self, ConnOpts};
use helpline_load::day::{self, DayOpts};
use helpline_load::relay::{self, RelayOpts};
use helpline_load::report::{ratios, Report};
use helpline_load::routing::{self, RoutingOpts};
use helpline_load::supervisors::{self, SupervisorOpts};
use helpline_load::target::Target;

#[derive(Parser, Debug)]
#[command(name = "helpline-load", about = "Load scenarios for helpline over real WebSockets")]
struct Cli {
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Tokio worker threads of the load generator.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Clone)]
struct TargetArgs {
    /// Start `helpline serve` (see --server-bin) on a fresh database: a temporary SQLite file,
    /// or a new database on the PostgreSQL server given with --database.
    #[arg(long)]
    spawn_server: bool,
    /// Target the bare in-memory relay instead (started as a child process).
    #[arg(long, conflicts_with = "spawn_server")]
    bare: bool,
    /// The helpline binary for --spawn-server (default: `helpline` next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// With --spawn-server: `postgres://…` (a fresh database is created on it and dropped after).
    /// Without: the database of the running server at --addr (counsellors are created there).
    #[arg(long)]
    database: Option<String>,
    /// Address of a running server (without --spawn-server / --bare).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Pid of the running server, for its CPU and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --spawn-server and a PostgreSQL --database: start a cluster of this many nodes on this
    /// Redis (`redis://127.0.0.1:6379`); clients are spread over the nodes.
    #[arg(long, requires = "spawn_server")]
    redis: Option<String>,
    /// Nodes of the cluster (with --redis).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Spread client sockets over this many source addresses 127.0.0.2… (0: the kernel picks).
    #[arg(long, default_value_t = 0)]
    sources: usize,
}

#[derive(Args, Debug, Clone)]
struct RelayArgs {
    #[arg(long, default_value_t = 100)]
    conversations: usize,
    /// Messages per second (all conversations together); a comma-separated list runs one step per rate.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rate: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start of each step that are not timed.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Longest wait, in seconds, after a step's last send for its acks and deliveries; messages the
    /// server refused as `overloaded` are sent again meanwhile, as the clients do.
    #[arg(long, default_value_t = relay::DEFAULT_WAIT.as_secs_f64())]
    wait: f64,
}

impl RelayArgs {
    fn opts(&self, sources_n: usize) -> RelayOpts {
        RelayOpts {
            conversations: self.conversations,
            rates: self.rate.clone(),
            duration: Duration::from_secs_f64(self.duration),
            warmup: Duration::from_secs_f64(self.warmup),
            size: self.size,
            drain: Duration::from_secs_f64(self.wait),
            sources: sources(sources_n),
            ..RelayOpts::default()
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Open conversations; messages at fixed arrival rates; one-way and ack latency, acked msg/s.
    Relay {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        relay: RelayArgs,
        /// Also run the same steps against the bare relay first, and print ratios.
        #[arg(long)]
        compare_bare: bool,
        /// Also run the steps against a real peer (`prosody`: started with --peer-script), and print ratios.
        #[arg(long, value_parser = ["prosody"])]
        compare_peer: Option<String>,
        /// Rates for the peer (default: the same as --rate); a saturated peer's backlog would spill into later steps.
        #[arg(long, value_delimiter = ',')]
        peer_rate: Vec<f64>,
        /// The script that installs, configures and runs the peer.
        #[arg(long, default_value = "load-tests/peer/prosody.sh")]
        peer_script: PathBuf,
    },
    /// S supervisors watching the board while `relay` runs: staleness of the board and the extra server CPU.
    Supervisors {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        relay: RelayArgs,
        #[arg(long, default_value_t = 100)]
        supervisors: usize,
        /// Milliseconds between probe contacts (each waits on the board until its caller leaves).
        #[arg(long, default_value_t = 500)]
        probe_every_ms: u64,
    },
    /// A mixed day faster than real time: chats and calls (through an exchange socket), peaks,
    /// abandonment, escalations; service level and answer times end to end.
    Day {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 30)]
        counsellors: usize,
        /// Chats at once per counsellor.
        #[arg(long, default_value_t = 2)]
        capacity: i64,
        /// Real seconds per simulated hour.
        #[arg(long, default_value_t = 2.0)]
        hour_secs: f64,
        #[arg(long, default_value_t = 24)]
        hours: usize,
        #[arg(long, default_value_t = 0)]
        first_hour: usize,
        /// Contacts per real second at the busiest regular hour (the 21h spike is 1.6 times that).
        #[arg(long, default_value_t = 6.0)]
        peak_rate: f64,
        #[arg(long, default_value_t = 0.4)]
        call_share: f64,
        #[arg(long, default_value = "200..1500")]
        accept_delay_ms: String,
        /// Mean handling time (exponential), real ms.
        #[arg(long, default_value_t = 4000)]
        handle_ms: u64,
        /// Mean caller patience before giving up (exponential), real ms.
        #[arg(long, default_value_t = 8000)]
        patience_ms: u64,
        /// Share of conversations escalated.
        #[arg(long, default_value_t = 0.05)]
        escalate: f64,
        /// Service level threshold, real ms (15 s compressed like the human times).
        #[arg(long, default_value_t = 1500)]
        sl_ms: u64,
    },
    /// Counsellors available; Poisson contact arrivals; offers, accepts, assignments/s.
    Routing {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 100)]
        counsellors: usize,
        #[arg(long, default_value_t = 3)]
        capacity: i64,
        /// λ, contacts per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Accept delay range in ms, `MIN..MAX` (uniform).
        #[arg(long, default_value = "300..1500")]
        accept_delay_ms: String,
        /// How long each conversation lasts before the counsellor ends it (ms).
        #[arg(long, default_value_t = 3000)]
        hold_ms: u64,
    },
    /// Idle caller sockets: server RSS per socket; then a reconnect storm.
    Connections {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        /// Skip the reconnect storm.
        #[arg(long)]
        no_storm: bool,
        /// Reconnects in flight at once during the storm.
        #[arg(long, default_value_t = 512)]
        storm_concurrency: usize,
    },
    /// PNG charts from JSON results (`--json` of earlier runs): relay latency and throughput against
    /// the offered rate per target, and SQLite / PostgreSQL / three nodes side by side.
    Plot {
        /// JSON result files; for a step present in several, the first file wins.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Directory for the PNGs (`relay-latency.png`, `backends.png`).
        #[arg(short = 'o', long, default_value = "docs/bench")]
        out: PathBuf,
        /// Relay rate (msg/s) compared across backends.
        #[arg(long, default_value_t = 2000.0)]
        relay_rate: f64,
        /// Routing λ (contacts/s) compared across backends.
        #[arg(long, default_value_t = 100.0)]
        routing_rate: f64,
        /// A TrueType font for the text (default: DejaVu Sans or Liberation Sans if installed).
        #[arg(long)]
        font: Option<PathBuf>,
    },
    /// Run the bare in-memory relay (used by --bare and --compare-bare).
    BareServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Conversations per counsellor.
        #[arg(long, default_value_t = 1)]
        capacity: usize,
    },
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

async fn open_target(t: &TargetArgs) -> anyhow::Result<Target> {
    if t.bare {
        return Target::spawn_bare(&std::env::current_exe()?);
    }
    if t.spawn_server {
        let bin = match &t.server_bin {
            Some(b) => b.clone(),
            None => sibling("helpline")?,
        };
        if !bin.exists() {
            bail!("{} not found: build it (`cargo build --release -p helpline`) or pass --server-bin", bin.display());
        }
        if let Some(redis) = &t.redis {
            if !t.database.as_deref().unwrap_or_default().starts_with("postgres") {
                bail!("a cluster (--redis) needs a PostgreSQL --database");
            }
            return Target::spawn_nodes(&bin, t.database.as_deref(), t.nodes, Some(redis)).await;
        }
        return Target::spawn_helpline(&bin, t.database.as_deref()).await;
    }
    let (Some(addr), Some(db)) = (t.addr, &t.database) else {
        bail!("give --spawn-server, --bare, or --addr with --database (and --server-pid for CPU/RSS)");
    };
    Target::external(addr, db, t.server_pid.unwrap_or(0)).await
}

fn sources(n: usize) -> Sources {
    if n == 0 {
        Sources(vec![])
    } else {
        Sources::loopback(n)
    }
}

fn parse_range(s: &str) -> anyhow::Result<(Duration, Duration)> {
    let (a, b) = s.split_once("..").unwrap_or((s, s));
    let a: u64 = a.trim().parse().context("accept delay")?;
    let b: u64 = b.trim().parse().context("accept delay")?;
    Ok((Duration::from_millis(a.min(b)), Duration::from_millis(a.max(b))))
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    serde_json::json!({"nproc": nproc, "cpu": cpu, "kernel": kernel})
}

async fn run(cli: Cli) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    match cli.command {
        Cmd::Plot { files, out, relay_rate, routing_rate, font } => {
            let opts = helpline_load::plot::PlotOpts { relay_rate, routing_rate, font };
            for f in helpline_load::plot::render(&files, &out, &opts)? {
                println!("wrote {}", f.display());
            }
        }
        Cmd::BareServer { listen, capacity } => {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            println!("bare relay is listening on http://{}", listener.local_addr()?);
            helpline_load::bare::serve_with_capacity(listener, capacity).await;
        }
        Cmd::Day {
            target,
            counsellors,
            capacity,
            hour_secs,
            hours,
            first_hour,
            peak_rate,
            call_share,
            accept_delay_ms,
            handle_ms,
            patience_ms,
            escalate,
            sl_ms,
        } => {
            let opts = DayOpts {
                counsellors,
                capacity,
                hour: Duration::from_secs_f64(hour_secs),
                hours,
                first_hour: first_hour % 24,
                peak_rate,
                call_share,
                accept_delay: parse_range(&accept_delay_ms)?,
                handle: Duration::from_millis(handle_ms),
                patience: Duration::from_millis(patience_ms),
                escalate,
                sl_target: Duration::from_millis(sl_ms),
                sources: sources(target.sources),
                ..DayOpts::default()
            };
            let t = open_target(&target).await?;
            let r = day::run(&t, &opts).await?;
            print!("{}", r.table());
            reports.push(r);
            t.shutdown().await;
        }
        Cmd::Supervisors { target, relay, supervisors, probe_every_ms } => {
            let opts = SupervisorOpts {
                supervisors,
                relay: relay.opts(target.sources),
                probe_every: Duration::from_millis(probe_every_ms.max(10)),
                ..SupervisorOpts::default()
            };
            let t = open_target(&target).await?;
            for r in supervisors::run(&t, &opts).await? {
                print!("{}", r.table());
                reports.push(r);
            }
            t.shutdown().await;
        }
        Cmd::Relay { target, relay, compare_bare, compare_peer, peer_rate, peer_script } => {
            let opts = relay.opts(target.sources);
            if compare_bare && !target.bare {
                let bare = Target::spawn_bare(&std::env::current_exe()?)?;
                for r in relay::run(&bare, &opts).await? {
                    print!("{}", r.table());
                    reports.push(r);
                }
                bare.shutdown().await;
            }
            if compare_peer.is_some() {
                if !peer_script.exists() {
                    bail!("{} not found: run from the repository root or pass --peer-script", peer_script.display());
                }
                let mut peer = Target::spawn_prosody(&peer_script)?;
                let mut popts = opts.clone();
                if !peer_rate.is_empty() {
                    popts.rates = peer_rate;
                }
                // The peer's SQLite: Prosody sets no PRAGMA; the library's compiled default applies.
                let sync = "synchronous=FULL (SQLite's default; Prosody sets no PRAGMA)";
                let mut peer_reports = relay::run(&peer, &popts).await?;
                peer.stop();
                let archive = peer.prosody_archive().await;
                for r in &mut peer_reports {
                    match &archive {
                        Ok((mode, rows)) => {
                            r.notes.push(format!("peer durability: archive in SQLite, journal_mode={mode}, {sync}; {rows} archive rows after the run (one per party per message)"));
                            r.figures.insert("peer_archive_rows".into(), *rows as f64);
                        }
                        Err(e) => r.notes.push(format!("peer archive not readable: {e:#}")),
                    }
                    print!("{}", r.table());
                }
                reports.extend(peer_reports);
                peer.shutdown().await;
            }
            let t = open_target(&target).await?;
            for r in relay::run(&t, &opts).await? {
                print!("{}", r.table());
                reports.push(r);
            }
            t.shutdown().await;
        }
        Cmd::Routing { target, counsellors, capacity, rate, duration, accept_delay_ms, hold_ms } => {
            let opts = RoutingOpts {
                counsellors,
                capacity,
                rate,
                duration: Duration::from_secs_f64(duration),
                accept_delay: parse_range(&accept_delay_ms)?,
                hold: Duration::from_millis(hold_ms),
                sources: sources(target.sources),
                ..RoutingOpts::default()
            };
            let t = open_target(&target).await?;
            let r = routing::run(&t, &opts).await?;
            print!("{}", r.table());
            reports.push(r);
            t.shutdown().await;
        }
        Cmd::Connections { target, sockets, no_storm, storm_concurrency } => {
            let opts = ConnOpts {
                sockets,
                sources: if target.sources == 0 { Sources::loopback(4) } else { sources(target.sources) },
                storm: !no_storm,
                storm_concurrency,
                ..ConnOpts::default()
            };
            let t = open_target(&target).await?;
            let r = connections::run(&t, &opts).await?;
            print!("{}", r.table());
            reports.push(r);
            t.shutdown().await;
        }
    }
    Ok(reports)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_path = cli.json.clone();
    let args: Vec<String> = std::env::args().collect();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reports = match rt.block_on(run(cli)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let ratio_lines = ratios(&reports);
    for l in &ratio_lines {
        println!("{l}");
    }
    if let Some(path) = json_path {
        let doc = serde_json::json!({
            "machine": machine(),
            "command": args.join(" "),
            "reports": reports,
            "ratios": ratio_lines,
        });
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    // A peer that cannot keep up leaves messages unacknowledged after the drain: that is its figure, not our failure.
    let failed = reports.iter().filter(|r| !r.is_peer()).any(|r| !r.failures().is_empty());
    rt.shutdown_timeout(Duration::from_secs(1));
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

//! The `helpline` command line: `serve`, `asterisk`, `migrate`, `user add|list|edit|reset|disable|enable`, `gateway add|list|revoke`, `number set|list`, `channel add|list|remove`, `hours set|show`, `settings set|show`, `service add|list`, `audit verify|checkpoint|prune`, `keys rotate`, `rollup`, `retention`, `backup`, `restore`, `erase`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::app::telemetry::{self, LogFormat};
use crate::app::{Application, Settings};
use crate::auth::accounts::{self, AccountChange, Refusal};
use crate::auth::hash_password;
use crate::clock::Clock;
use crate::store::users::{AccountFields, NewUser, Role};
use crate::store::{split_list, Store, StoreError};

#[derive(Parser, Debug)]
#[command(name = "helpline", version, about = "24/7 helpline and chat contact-centre backend")]
pub struct Cli {
    /// Database: `sqlite:PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long = "database", env = "DATABASE_URL", default_value = "sqlite:helpline.db", global = true)]
    pub database: String,
    /// The key file (docs/security.md, "Keys and sealing"): every key the server holds, outside the
    /// database. Default for SQLite: beside the database file (`<file>.keys`, created on first start).
    /// Required with PostgreSQL: the same file on every node.
    #[arg(long = "key-file", env = "HELPLINE_KEY_FILE", global = true)]
    pub key_file: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, env = "HELPLINE_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the Asterisk adapter: connects Asterisk's REST Interface (a Stasis application) to a
    /// helpline server's gateway socket (docs/telephony.md, "Asterisk").
    Asterisk(crate::edge::asterisk::AsteriskArgs),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the placement services registry.
    #[command(subcommand)]
    Service(crate::app::service_cli::ServiceCommand),
    /// Replay an arrival pattern through the routing engine in virtual time against a roster.
    Simulate(crate::supervision::simulate::SimulateArgs),
    /// Manage telephone exchanges (gateways) and their service tokens.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Manage the dialled-number map (which helpline a called number reaches).
    #[command(subcommand)]
    Number(NumberCommand),
    /// Manage messaging channels (SMS through Kannel): which account reaches which helpline (docs/channels.md).
    #[command(subcommand)]
    Channel(crate::app::channel_cli::ChannelCommand),
    /// A helpline's opening hours: time zone, weekly spans, holidays (none: open 24/7).
    #[command(subcommand)]
    Hours(crate::app::hours_cli::HoursCommand),
    /// A helpline's wrap-up limit, away reasons and triage question.
    #[command(subcommand)]
    Settings(crate::app::hours_cli::SettingsCommand),
    /// Roll up every settled hour for reports now, with progress (the server also does it every five minutes).
    Rollup,
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The key file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run retention now, with progress, for every class with each helpline's periods (`retention set`):
    /// conversations (default `--days`), contact forms, call records, closed cases, and the audit log's
    /// head (`--audit-days`). The server does it every hour. Open cases and what they hold are kept.
    Retention(RetentionArgs),
    /// Back the database up while the server serves, with progress (SQLite: an online copy;
    /// PostgreSQL: runs pg_dump). The backup holds no key: keep the key file apart.
    Backup(crate::app::backup_cli::BackupArgs),
    /// Restore a backup into an empty database (refuses one that holds data), with progress; then
    /// erases again the contacts erased since (the record beside the key file). Needs the key file.
    Restore(crate::app::backup_cli::RestoreArgs),
    /// Erase what is held on one contact (a data subject's request), audited by a redaction record.
    Erase(crate::app::backup_cli::EraseArgs),
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RetentionArgs {
    /// The conversations' retention period in days (at least 1) for helplines without their own.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
    /// Prune the audit log's lines older than this many days (at least 1), from the head.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_days: Option<u32>,
    #[command(subcommand)]
    pub command: Option<RetentionCommand>,
}

#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Set a helpline's retention periods in days (0: keep that class; what is not given stays as it was).
    Set {
        helpline: String,
        /// Conversations (messages) of contacts without a case.
        #[arg(long)]
        conversations_days: Option<u32>,
        /// Contact forms of contacts without a case.
        #[arg(long)]
        forms_days: Option<u32>,
        /// Call records (never a number) of contacts without a case.
        #[arg(long)]
        calls_days: Option<u32>,
        /// Closed cases' content, from their last change (open cases are never touched).
        #[arg(long)]
        cases_days: Option<u32>,
    },
    /// Show every helpline's retention periods.
    Show,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the audit log's keyed chain; exit 1 and name the first broken line if it was tampered with.
    Verify {
        /// A checkpoint printed earlier by `audit checkpoint` (`SEQ:MAC`): the chain must still reach
        /// it, unchanged (a cut-off tail or a rebuilt chain fails).
        #[arg(long)]
        checkpoint: Option<crate::store::audit::Checkpoint>,
    },
    /// Print the chain's head (`SEQ:MAC`) for the operator to keep outside the database.
    Checkpoint,
    /// Delete the lines up to line SEQ (retention), leaving an anchor keyed with the audit key.
    Prune {
        #[arg(long)]
        through: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new data key and a new signing key (the newest seal and sign; the older ones still open
    /// old rows and verify tokens until they expire). Restart the servers (every node, with the new
    /// file copied to each) to use them.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Register an exchange; prints its service token once (only its hash is stored).
    Add { name: String },
    /// List exchanges.
    List,
    /// Revoke an exchange's token: its sockets and webhooks are refused from now on.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
pub enum NumberCommand {
    /// Map a dialled number to a helpline (`*`: numbers not listed).
    Set { number: String, helpline: String },
    /// Show the map.
    List,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the log says which).
    #[arg(long, env = "HELPLINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seed the demo accounts listed in the README (only those missing).
    #[arg(long)]
    pub demo: bool,
    /// Web origins allowed to embed the chat widget's socket, comma-separated (e.g. https://www.116111.md).
    /// Without it, only pages served by this server may open caller sockets.
    #[arg(long, env = "HELPLINE_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: String,
    /// A token `GET /metrics` asks for (`Authorization: Bearer …`); without it /metrics is open (restrict it at the proxy).
    #[arg(long, env = "HELPLINE_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Frames per second one socket may send after its burst (0: unlimited, for load tests only).
    #[arg(long, env = "HELPLINE_WS_RATE_PER_SEC", default_value_t = crate::edge::ws::RATE_PER_SEC)]
    pub ws_rate_per_sec: f64,
    /// Frames one socket may send in a burst.
    #[arg(long, env = "HELPLINE_WS_BURST", default_value_t = crate::edge::ws::RATE_BURST)]
    pub ws_burst: f64,
    /// Seconds between pings on every socket.
    #[arg(long, env = "HELPLINE_WS_PING_SECS", default_value_t = crate::edge::ws::PING_EVERY.as_secs())]
    pub ws_ping_secs: u64,
    /// A socket silent this many seconds (no frame, no pong) is closed (4000).
    #[arg(long, env = "HELPLINE_WS_IDLE_TIMEOUT_SECS", default_value_t = crate::edge::ws::IDLE_TIMEOUT.as_secs())]
    pub ws_idle_timeout_secs: u64,
    /// A caller socket whose widget pings and then sends nothing for this many seconds is stalled:
    /// her counsellor is told the caller's connection dropped (`caller_presence`).
    #[arg(long, env = "HELPLINE_CALLER_STALL_SECS", default_value_t = crate::state::sockets::CALLER_STALL.as_secs())]
    pub caller_stall_secs: u64,
    /// A chat message read from a socket and not acknowledged within this many milliseconds is
    /// refused with `overloaded` (the client sends it again): nobody's message goes unanswered.
    #[arg(long, env = "HELPLINE_ANSWER_WITHIN_MS", default_value_t = crate::chat::promise::ANSWER_WITHIN.as_millis() as u64)]
    pub answer_within_ms: u64,
    /// Lifetime of access tokens, in seconds (the console and dashboard refresh them before they expire).
    #[arg(long, env = "HELPLINE_TOKEN_TTL_SECS", default_value_t = 15 * 60)]
    pub token_ttl_secs: u64,
    /// How long a login lasts through refreshes, in seconds (refresh tokens rotate on every use).
    #[arg(long, env = "HELPLINE_REFRESH_TTL_SECS", default_value_t = 12 * 3600)]
    pub refresh_ttl_secs: u64,
    /// Addresses of load balancers whose X-Forwarded-For is believed, comma-separated.
    #[arg(long, env = "HELPLINE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Open WebSockets per client address (IPv4, or IPv6 /64) at most; 0: no limit.
    #[arg(long, env = "HELPLINE_SOCKETS_PER_IP", default_value_t = crate::auth::guard::SOCKETS_PER_IP)]
    pub sockets_per_ip: u32,
    /// New chats one client address may start per minute; 0: no limit.
    #[arg(long, env = "HELPLINE_CONTACTS_PER_IP_PER_MIN", default_value_t = crate::auth::guard::CONTACTS_PER_IP_PER_MIN)]
    pub contacts_per_ip_per_min: u32,
    /// Login attempts per client address per minute; 0: no limit.
    #[arg(long, env = "HELPLINE_LOGINS_PER_IP_PER_MIN", default_value_t = crate::auth::guard::LOGINS_PER_IP_PER_MIN)]
    pub logins_per_ip_per_min: u32,
    /// Failed logins for one account from one address per minute before that address is locked out of
    /// that account (1 min, doubling up to 1 h); other addresses still get in. 0: no limit.
    #[arg(long, env = "HELPLINE_LOGINS_PER_ACCOUNT_PER_MIN", default_value_t = crate::auth::guard::LOGINS_PER_ACCOUNT_PER_MIN)]
    pub logins_per_account_per_min: u32,
    /// First delay (ms) of an account slowed down by failed logins from anywhere (doubling, up to 8 s); 0: no delays.
    #[arg(long, env = "HELPLINE_LOGIN_DELAY_MS", default_value_t = crate::auth::guard::LOGIN_DELAY_MS)]
    pub login_delay_ms: u64,
    /// Require a second factor (TOTP) of admins and supervisors: they enrol at their next login.
    #[arg(long, env = "HELPLINE_REQUIRE_TOTP")]
    pub require_totp: bool,
    /// Delete the conversations of contacts without a case this many days after they ended (checked
    /// every hour); 0: keep them (the default; set your jurisdiction's period).
    #[arg(long, env = "HELPLINE_RETENTION_DAYS", default_value_t = 0)]
    pub retention_days: u32,
    /// Prune the audit log's lines older than this many days from its head (checked every hour; the
    /// keyed anchor keeps the chain verifiable); 0: keep them (the default).
    #[arg(long, env = "HELPLINE_AUDIT_RETENTION_DAYS", default_value_t = 0)]
    pub audit_retention_days: u32,
    /// Seconds between roll-ups of settled hours for reports; 0: only with `helpline rollup`.
    #[arg(long, env = "HELPLINE_REPORT_ROLLUP_EVERY_SECS", default_value_t = 300)]
    pub report_rollup_every_secs: u64,
    /// Cluster mode: `redis://HOST:PORT`. With a PostgreSQL database, this node joins the cluster
    /// of every node using the same database, Redis and prefix.
    #[arg(long = "redis", env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Cluster mode: this node's id (unique in the cluster; default: random).
    #[arg(long, env = "HELPLINE_NODE_ID")]
    pub node_id: Option<String>,
    /// Cluster mode: the leader lease in milliseconds; a dead leader is replaced within it.
    #[arg(long, env = "HELPLINE_LEASE_MS", default_value_t = 5000)]
    pub lease_ms: u64,
    /// Cluster mode: prefix of every Redis key (several clusters can share one Redis).
    #[arg(long, env = "HELPLINE_REDIS_PREFIX", default_value = "helpline")]
    pub redis_prefix: String,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input (one line).
    Add(UserAdd),
    /// List accounts.
    List,
    /// Disable an account: it can no longer log in, and its open sockets close within seconds.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Set a new password (read from standard input, one line; it must meet the password rule). The
    /// account's sessions end.
    Passwd {
        #[arg(long)]
        username: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lift every login lockout of an account (from every address), e.g. after a guesser's attack.
    Unlock {
        /// The account (any case).
        username: String,
    },
    /// Remove an account's second factor (TOTP) and recovery codes, e.g. after a lost phone.
    ResetTotp {
        /// The account (any case).
        username: String,
    },
    /// Change an account: only the fields given change (audited). A running server's consoles of the
    /// account take the change at their next connection.
    Edit(UserEdit),
    /// Make a one-time code (24 h, single use) with which the account's owner sets her own password on
    /// the `/reset` page (audited); her password and sessions are untouched until she uses it.
    Reset {
        #[arg(long)]
        username: String,
    },
    /// Grant a supervisor every helpline (audited). Without it a supervisor sees only the helplines on
    /// their account; an empty list is none.
    GrantAllHelplines {
        #[arg(long)]
        username: String,
    },
    /// Take the grant of every helpline back (audited).
    RevokeAllHelplines {
        #[arg(long)]
        username: String,
    },
}

#[derive(Args, Debug)]
pub struct UserAdd {
    #[arg(long)]
    pub username: String,
    #[arg(long, value_enum)]
    pub role: Role,
    /// Name shown to callers and colleagues (defaults to the username).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Helplines served first-line, comma-separated (children,disability,family_violence).
    #[arg(long, default_value = "")]
    pub helplines: String,
    /// Helplines this counsellor backs up when a contact has waited 10 s.
    #[arg(long, default_value = "")]
    pub backup_helplines: String,
    /// Languages spoken, comma-separated (ro,ru,uk,en).
    #[arg(long, default_value = "")]
    pub languages: String,
    /// Concurrent chats at most.
    #[arg(long, default_value_t = 3)]
    pub capacity: i64,
    /// Phone extension for calls (counsellors without one are never offered calls).
    #[arg(long)]
    pub extension: Option<String>,
    /// A senior counsellor: takes the contacts of callers a supervisor routed to seniors instead of blocking.
    #[arg(long)]
    pub senior: bool,
    /// Districts a case manager covers, comma-separated (new cases there are assigned to them).
    #[arg(long, default_value = "")]
    pub districts: String,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct UserEdit {
    #[arg(long)]
    pub username: String,
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    #[arg(long)]
    pub display_name: Option<String>,
    /// Helplines served first-line, comma-separated (empty: none).
    #[arg(long)]
    pub helplines: Option<String>,
    /// Helplines backed up, comma-separated (empty: none).
    #[arg(long)]
    pub backup_helplines: Option<String>,
    /// Languages spoken, comma-separated.
    #[arg(long)]
    pub languages: Option<String>,
    #[arg(long)]
    pub capacity: Option<i64>,
    /// Phone extension for calls (empty: none, never offered calls).
    #[arg(long)]
    pub extension: Option<String>,
    #[arg(long)]
    pub senior: Option<bool>,
    /// Districts a case manager covers, comma-separated (empty: none).
    #[arg(long)]
    pub districts: Option<String>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    if let Err(err) = configure_failpoints(std::env::var("FAILPOINTS").ok().as_deref()) {
        eprintln!("error: FAILPOINTS: {err}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Arms the fault injection points named in `spec` (`name=actions;name=actions`, the `fail` crate's
/// syntax), for the failure tests; an operator never sets it. A bad spec is refused, naming the problem.
///
/// Only a test build has fault injection points (the `fail` crate's `failpoints` feature is a
/// dev-dependency feature, so `cargo test` turns it on and a release build does not): a release binary
/// ignores `FAILPOINTS`, with a warning, so a test setting copied into production arms nothing.
fn configure_failpoints(spec: Option<&str>) -> Result<(), String> {
    if !fail::has_failpoints() {
        if spec.is_some_and(|s| !s.trim().is_empty()) {
            tracing::warn!("FAILPOINTS is set but this build has no fault injection points: ignored");
        }
        return Ok(());
    }
    for part in spec.unwrap_or_default().split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, actions) = part.split_once('=').ok_or_else(|| format!("expected name=actions, got {part:?}"))?;
        fail::cfg(name.trim(), actions.trim())?;
        tracing::warn!(failpoint = name.trim(), actions = actions.trim(), "fault injection point armed");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(path) = &cli.key_file {
        // Every store this command opens on that database uses this key file.
        crate::store::keys::remember_key_file(&cli.database, path);
    }
    match cli.command {
        Command::Serve(args) => serve(cli.database, cli.key_file, args).await,
        Command::Asterisk(args) => crate::edge::asterisk::run(args).await,
        Command::Migrate => {
            let store = open(&cli.database).await?;
            crate::store::defaults::seed_helplines(&store).await?;
            println!("database migrated: {}", describe(&cli.database));
            Ok(())
        }
        Command::User(cmd) => user(&cli.database, cmd).await,
        Command::Service(cmd) => crate::app::service_cli::run(&open(&cli.database).await?, cmd).await,
        Command::Simulate(args) => crate::supervision::simulate::run(&cli.database, args).await,
        Command::Gateway(cmd) => gateway(&cli.database, cmd).await,
        Command::Number(cmd) => number(&cli.database, cmd).await,
        Command::Hours(cmd) => crate::app::hours_cli::run(&open(&cli.database).await?, cmd).await,
        Command::Channel(cmd) => crate::app::channel_cli::run(&open(&cli.database).await?, cmd).await,
        Command::Settings(cmd) => crate::app::hours_cli::settings(&open(&cli.database).await?, cmd).await,
        Command::Rollup => crate::store::rollup::run_to_completion(&open(&cli.database).await?).await,
        Command::Audit(AuditCommand::Verify { checkpoint }) => audit_verify(&cli.database, checkpoint.as_ref()).await,
        Command::Audit(AuditCommand::Checkpoint) => {
            let store = open(&cli.database).await?;
            println!("{}", store.audit_log().checkpoint().await?);
            Ok(())
        }
        Command::Audit(AuditCommand::Prune { through }) => {
            let store = open(&cli.database).await?;
            let deleted = store.audit_log().prune_through(through, Clock::new().now_ms()).await?;
            println!("audit log: {deleted} lines pruned; verify still passes from the anchor");
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let store = open(&cli.database).await?;
            let (data, signing) = store.keys().update(|k| k.rotate(Clock::new().now_ms()))?;
            // The database records the new keys' checks now: a node started with the old file is refused.
            store.migrate().await?;
            let path = store.keys().path().map(|p| p.display().to_string()).unwrap_or_default();
            println!("key file {path}: data key {data} and signing key {signing} added; restart every node with this file");
            Ok(())
        }
        Command::Backup(args) => crate::app::backup_cli::backup(&cli.database, args).await,
        Command::Restore(args) => crate::app::backup_cli::restore(&cli.database, cli.key_file, args).await,
        Command::Erase(args) => crate::app::backup_cli::erase(&open(&cli.database).await?, args).await,
        Command::Retention(args) => retention(&open(&cli.database).await?, args).await,
    }
}

async fn open(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url).await.with_context(|| format!("opening {}", describe(url)))?;
    store.migrate().await.context("migrating")?;
    Ok(store)
}

/// A comma-separated list of IP addresses; a bad one is a startup error that names it.
fn parse_addresses(list: &str) -> anyhow::Result<Vec<std::net::IpAddr>> {
    split_list(list).iter().map(|a| a.parse().map_err(|_| anyhow::anyhow!("--trusted-proxies: {a:?} is not an IP address"))).collect()
}

/// The database URL without any password, for messages.
fn describe(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

async fn serve(database: String, key_file: Option<std::path::PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings {
        listen: args.listen,
        database_url: database.clone(),
        key_file,
        jwt_secret: std::env::var("HELPLINE_JWT_SECRET").ok(),
        jwt_previous_secret: std::env::var("HELPLINE_JWT_PREVIOUS_SECRET").ok(),
        token_ttl: Duration::from_secs(args.token_ttl_secs.max(60)),
        refresh_ttl: Duration::from_secs(args.refresh_ttl_secs.max(args.token_ttl_secs).max(60)),
        demo: args.demo,
        account_check_every: Duration::from_secs(1),
        report_rollup_every: (args.report_rollup_every_secs > 0).then(|| Duration::from_secs(args.report_rollup_every_secs)),
        retention_days: (args.retention_days > 0).then_some(args.retention_days),
        audit_retention_days: (args.audit_retention_days > 0).then_some(args.audit_retention_days),
        retention_every: crate::app::RETENTION_EVERY,
        allowed_origins: split_list(&args.allowed_origins),
        metrics_token: args.metrics_token,
        rate_limit: crate::edge::ws::RateLimit { burst: args.ws_burst, per_sec: args.ws_rate_per_sec },
        guard: crate::auth::guard::GuardSettings {
            trusted_proxies: parse_addresses(&args.trusted_proxies)?,
            sockets_per_ip: args.sockets_per_ip,
            contacts_per_ip_per_min: args.contacts_per_ip_per_min,
            logins_per_ip_per_min: args.logins_per_ip_per_min,
            logins_per_account_per_min: args.logins_per_account_per_min,
            login_delay_ms: args.login_delay_ms,
            totp_required: args.require_totp,
        },
        cluster: args.redis_url.filter(|u| !u.is_empty()).map(|url| crate::cluster::ClusterSettings {
            redis_url: url,
            node_id: args.node_id,
            lease: Duration::from_millis(args.lease_ms.max(300)),
            prefix: args.redis_prefix,
        }),
        keepalive: crate::edge::ws::Keepalive {
            ping_every: Duration::from_secs(args.ws_ping_secs.max(1)),
            idle_timeout: Duration::from_secs(args.ws_idle_timeout_secs.max(2)),
            answer_within: Duration::from_millis(args.answer_within_ms.clamp(100, 9_000)),
            caller_stall: Duration::from_secs(args.caller_stall_secs.max(1)),
        },
        // No channels beyond the core's web chat and phone yet (see `crate::chat::channel`).
        channels: Vec::new(),
        messaging: crate::edge::channels::MessagingSettings::default(),
    };
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, database = %describe(&database), "helpline listening");
    println!("helpline is listening on http://{addr}  (database: {})", describe(&database));
    println!("  counsellor console:    http://{addr}/agent");
    println!("  caller chat widget:    http://{addr}/chat");
    println!("  supervisor dashboard:  http://{addr}/supervisor");
    println!("  health and metrics:    http://{addr}/healthz  /readyz  /metrics");
    if args.demo {
        println!("  demo accounts (password = <username>-demo): ana, ion, olena (counsellors), maria (supervisor), admin");
    }
    app.run_until(shutdown_signal()).await
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// A new password for `username` from standard input (one line), checked against the password rule.
fn read_password(password_stdin: bool, username: &str) -> anyhow::Result<String> {
    if !password_stdin {
        bail!("pass --password-stdin and write the password on standard input");
    }
    if std::io::stdin().is_terminal() {
        eprintln!("password (one line):");
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    crate::auth::password::check(username, &password)?;
    Ok(password)
}

/// The account called `username` (any case), or an error naming it.
async fn account(store: &Store, username: &str) -> anyhow::Result<crate::store::users::User> {
    match store.accounts().user_with_hash(&crate::auth::guard::account_key(username)).await? {
        Some((user, _)) => Ok(user),
        None => bail!("no account {username:?}"),
    }
}

async fn user(database: &str, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open(database).await?;
    // The helplines `user add` checks against: a fresh database has them as after `migrate`.
    crate::store::defaults::seed_helplines(&store).await?;
    let now = Clock::new().now_ms();
    match cmd {
        UserCommand::Add(a) => {
            let username = accounts::check_username(&a.username)?;
            let password = read_password(a.password_stdin, &username)?;
            let change = AccountChange {
                display_name: a.display_name.clone(),
                role: Some(a.role.as_str().to_string()),
                helplines: Some(split_list(&a.helplines)),
                backup_helplines: Some(split_list(&a.backup_helplines)),
                languages: Some(split_list(&a.languages)),
                capacity: Some(a.capacity),
                extension: Some(a.extension.clone()),
                senior: Some(a.senior),
                districts: Some(split_list(&a.districts)),
            };
            let fields = checked_fields(&store, accounts::new_fields(&username), &change).await?;
            let password_hash = hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            let new = NewUser {
                display_name: fields.display_name.clone(),
                username: username.clone(),
                password_hash,
                role: fields.role,
                helplines: fields.helplines.clone(),
                backup_helplines: fields.backup_helplines.clone(),
                languages: fields.languages.clone(),
                capacity: fields.capacity,
            };
            let created = match store.accounts().create_user(&new, now).await {
                Err(StoreError::Conflict(_)) => bail!("username {:?} is taken", a.username),
                other => other?,
            };
            store.accounts().set_fields(&created.id, &fields).await?;
            store.audit_log().audit(now, "cli", "user_add", Some(&created.id), Some(a.role.as_str())).await?;
            println!("created {} ({}) id {}", created.username, created.role.as_str(), created.id);
        }
        UserCommand::List => {
            println!("{:<20} {:<11} {:<9} {:<32} {:<12} {:>3} {:<8}", "USERNAME", "ROLE", "STATE", "HELPLINES", "LANGUAGES", "CAP", "EXT");
            for u in store.accounts().users().await? {
                let mut helplines = u.helplines.join(",");
                if !u.backup_helplines.is_empty() {
                    helplines.push_str(&format!(" (+{})", u.backup_helplines.join(",")));
                }
                println!(
                    "{:<20} {:<11} {:<9} {:<32} {:<12} {:>3} {:<8}",
                    u.username,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "enabled" },
                    helplines,
                    u.languages.join(","),
                    u.capacity,
                    u.extension.as_deref().unwrap_or("-")
                );
            }
        }
        UserCommand::Disable { username } => set_disabled(&store, &username, true, now).await?,
        UserCommand::Enable { username } => set_disabled(&store, &username, false, now).await?,
        UserCommand::Passwd { username, password_stdin } => {
            let user = account(&store, &username).await?;
            let password = read_password(password_stdin, &user.username)?;
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            store.accounts().set_password_hash(&user.id, &hash).await?;
            store.sessions().revoke_sessions(&user.id, now + 1).await?;
            store.sessions().revoke_refresh_tokens(&user.id, now).await?;
            store.audit_log().audit(now, "cli", "password_reset", Some(&user.id), None).await?;
            println!("new password set for {}; its sessions have ended", user.username);
        }
        UserCommand::Unlock { username } => {
            let user = account(&store, &username).await?;
            let key = store.secrets().secret_or_create(crate::auth::keyed::LOGIN_NAME_KEY, now, crate::auth::random_secret).await?;
            let lifted = store.accounts().unlock_login(&crate::auth::keyed::login_name_hash(&key, &user.username), now).await?;
            store.audit_log().audit(now, "cli", "login_unlock", Some(&user.id), Some(&lifted.to_string())).await?;
            println!("unlocked {} ({lifted} lockout(s) lifted)", user.username);
        }
        UserCommand::ResetTotp { username } => {
            let user = account(&store, &username).await?;
            store.accounts().reset_totp(&user.id).await?;
            store.audit_log().audit(now, "cli", "totp_reset", Some(&user.id), None).await?;
            println!("second factor removed for {}", user.username);
        }
        UserCommand::Edit(e) => {
            let user = account(&store, &e.username).await?;
            let list = |v: &Option<String>| v.as_deref().map(split_list);
            let change = AccountChange {
                display_name: e.display_name.clone(),
                role: e.role.map(|r| r.as_str().to_string()),
                helplines: list(&e.helplines),
                backup_helplines: list(&e.backup_helplines),
                languages: list(&e.languages),
                capacity: e.capacity,
                extension: e.extension.clone().map(Some),
                senior: e.senior,
                districts: list(&e.districts),
            };
            let before = accounts::fields_of(&user, store.accounts().user_districts(&user.id).await?);
            let after = checked_fields(&store, before, &change).await?;
            let admins = store.accounts().enabled_admins().await?;
            accounts::keeps_an_admin(user.role == Role::Admin, !user.disabled, after.role, !user.disabled, admins)?;
            store.accounts().set_fields(&user.id, &after).await?;
            store.audit_log().audit(now, "cli", "user_edit", Some(&user.id), Some(after.role.as_str())).await?;
            println!(
                "changed {} ({}): helplines {} (backup {}), languages {}, capacity {}, extension {}",
                user.username,
                after.role.as_str(),
                after.helplines.join(","),
                after.backup_helplines.join(","),
                after.languages.join(","),
                after.capacity,
                after.extension.as_deref().unwrap_or("-")
            );
        }
        UserCommand::Reset { username } => {
            let user = account(&store, &username).await?;
            let code = accounts::new_reset_code();
            let expires = now + accounts::RESET_VALID_MS;
            store.accounts().create_reset(&user.id, &accounts::reset_code_hash(&code), "cli", now, expires).await?;
            store.audit_log().audit(now, "cli", "password_reset_code", Some(&user.id), Some(&crate::protocol::rfc3339(expires))).await?;
            println!("one-time code for {} (shown once; works once, until {}):", user.username, crate::protocol::rfc3339(expires));
            println!("{code}");
            println!("she sets her password at /reset on the server (or /reset#{code})");
        }
        UserCommand::GrantAllHelplines { username } => set_all_helplines(&store, &username, true, now).await?,
        UserCommand::RevokeAllHelplines { username } => set_all_helplines(&store, &username, false, now).await?,
    }
    Ok(())
}

/// `fields` with `change` applied, checked against the rules and the database's helplines.
async fn checked_fields(store: &Store, fields: AccountFields, change: &AccountChange) -> anyhow::Result<AccountFields> {
    let known: Vec<String> = store.directory().helplines().await?.into_iter().map(|h| h.name).collect();
    match accounts::apply(fields, change, &known) {
        Err(Refusal::UnknownHelpline(h)) => bail!("unknown helpline {h:?}; known: {}", known.join(", ")),
        other => Ok(other?),
    }
}

async fn gateway(database: &str, cmd: GatewayCommand) -> anyhow::Result<()> {
    let store = open(database).await?;
    let now = Clock::new().now_ms();
    match cmd {
        GatewayCommand::Add { name } => {
            if accounts::check_username(&name).is_err() {
                bail!("gateway names are 1-64 characters of a-z, 0-9, '.', '_' and '-'");
            }
            let token = crate::auth::random_token(32);
            let created = match store.exchanges().create_gateway(&name, &crate::auth::token_hash(&token), now).await {
                Err(StoreError::Conflict(_)) => bail!("gateway {name:?} exists"),
                other => other?,
            };
            store.audit_log().audit(now, "cli", "gateway_add", Some(&created.id), Some(&name)).await?;
            println!("created gateway {name} id {}", created.id);
            println!("service token (shown once; the exchange sends it as `Authorization: Bearer …`):");
            println!("{token}");
        }
        GatewayCommand::List => {
            println!("{:<24} {:<38} {:<8}", "NAME", "ID", "STATE");
            for g in store.exchanges().gateways().await? {
                println!("{:<24} {:<38} {:<8}", g.name, g.id, if g.revoked_at.is_some() { "revoked" } else { "active" });
            }
        }
        GatewayCommand::Revoke { name } => {
            match store.exchanges().revoke_gateway(&name, now).await {
                Err(StoreError::NotFound) => bail!("no gateway {name:?}"),
                other => other?,
            }
            store.audit_log().audit(now, "cli", "gateway_revoke", None, Some(&name)).await?;
            println!("revoked gateway {name}");
        }
    }
    Ok(())
}

async fn number(database: &str, cmd: NumberCommand) -> anyhow::Result<()> {
    let store = open(database).await?;
    crate::store::defaults::seed_helplines(&store).await?;
    match cmd {
        NumberCommand::Set { number, helpline } => {
            let digits = crate::telephony::normalise_number(&number);
            let key = if number == crate::store::helplines::DEFAULT_NUMBER {
                number.clone()
            } else {
                digits.ok_or_else(|| anyhow::anyhow!("a dialled number needs digits (or `*` for the default)"))?
            };
            if store.directory().helpline(&helpline).await?.is_none() {
                bail!("unknown helpline {helpline:?}");
            }
            store.directory().set_dialled_number(&key, &helpline).await?;
            println!("{key} -> {helpline}");
        }
        NumberCommand::List => {
            for (number, helpline) in store.directory().dialled_numbers().await? {
                println!("{number:<20} {helpline}");
            }
        }
    }
    Ok(())
}

/// `helpline retention [--days N] [--audit-days N]`, `retention set HELPLINE …`, `retention show`.
async fn retention(store: &Store, args: RetentionArgs) -> anyhow::Result<()> {
    use crate::store::retention::Periods;
    let show = |h: &str, p: &Periods| {
        let d = |v: Option<u32>| v.map_or_else(|| "keep".to_string(), |d| format!("{d} d"));
        println!(
            "{h:<20} conversations {:<8} forms {:<8} calls {:<8} closed cases {:<8}",
            d(p.conversations_days),
            d(p.forms_days),
            d(p.calls_days),
            d(p.cases_days)
        );
    };
    match args.command {
        None => {
            let policy = crate::safety::retention::Policy { conversation_days: args.days, audit_days: args.audit_days };
            crate::safety::retention::run_to_completion(store, policy).await
        }
        Some(RetentionCommand::Show) => {
            for (h, p) in store.retention().all_periods().await? {
                show(&h, &p);
            }
            Ok(())
        }
        Some(RetentionCommand::Set { helpline, conversations_days, forms_days, calls_days, cases_days }) => {
            if store.directory().helpline(&helpline).await?.is_none() {
                bail!("unknown helpline {helpline:?}");
            }
            let mut p = store.retention().periods(&helpline).await?;
            let pick = |given: Option<u32>, was: Option<u32>| match given {
                Some(0) => None,
                Some(d) => Some(d),
                None => was,
            };
            p.conversations_days = pick(conversations_days, p.conversations_days);
            p.forms_days = pick(forms_days, p.forms_days);
            p.calls_days = pick(calls_days, p.calls_days);
            p.cases_days = pick(cases_days, p.cases_days);
            crate::safety::retention::check_periods(&p).map_err(|why| anyhow::anyhow!("{why}"))?;
            let now = Clock::new().now_ms();
            store.retention().set_periods(&helpline, &p, now).await?;
            let detail = serde_json::to_string(&p)?;
            store.audit_log().audit_from(now, "cli", "retention_set", Some(&helpline), Some(&detail), "cli").await?;
            show(&helpline, &p);
            Ok(())
        }
    }
}

/// `helpline audit verify`: prints the chain's length and head, or fails (exit 1) naming the first broken line.
async fn audit_verify(database: &str, checkpoint: Option<&crate::store::audit::Checkpoint>) -> anyhow::Result<()> {
    let store = open(database).await?;
    let report = match checkpoint {
        Some(c) => store.audit_log().verify_against(c).await?,
        None => store.audit_log().verify_audit_chain().await?,
    };
    match &report.first_break {
        None => {
            println!("audit log intact: {} lines, head {}", report.lines, report.head);
            Ok(())
        }
        Some(b) => {
            let at = b.seq.map_or_else(|| "a line outside the chain".to_string(), |s| format!("line {s}"));
            bail!("audit log broken at {at} (id {}): {}; the {} lines before it are intact", b.id, b.problem, report.lines)
        }
    }
}

/// `user grant-all-helplines` / `revoke-all-helplines`: supervisors only; audited.
async fn set_all_helplines(store: &Store, username: &str, all: bool, now: i64) -> anyhow::Result<()> {
    match store.accounts().user_with_hash(username).await? {
        None => bail!("no account {username:?}"),
        Some((u, _)) if all && u.role != Role::Supervisor => {
            bail!("{username:?} is a {}: only supervisors are granted every helpline (admins have them)", u.role.as_str())
        }
        Some(_) => {}
    }
    let user = store.accounts().set_user_all_helplines(username, all).await?;
    let action = if all { "user_grant_all_helplines" } else { "user_revoke_all_helplines" };
    store.audit_log().audit(now, "cli", action, Some(&user.id), None).await?;
    println!(
        "{} {}: {}",
        if all { "granted" } else { "revoked" },
        user.username,
        if all { "every helpline" } else { "only the helplines on the account" }
    );
    Ok(())
}

async fn set_disabled(store: &Store, username: &str, disabled: bool, now: i64) -> anyhow::Result<()> {
    let user = match store.accounts().set_user_disabled(username, disabled).await {
        Err(StoreError::NotFound) => bail!("no account {username:?}"),
        other => other?,
    };
    let action = if disabled { "user_disable" } else { "user_enable" };
    store.audit_log().audit(now, "cli", action, Some(&user.id), None).await?;
    println!("{} {}", if disabled { "disabled" } else { "enabled" }, user.username);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::configure_failpoints;

    #[test]
    fn failpoints_are_armed_from_a_spec_and_a_bad_one_is_refused() {
        assert_eq!(configure_failpoints(None), Ok(()));
        assert_eq!(configure_failpoints(Some(" ; ")), Ok(()));
        assert_eq!(configure_failpoints(Some("cli-test-point=return(x)")), Ok(()));
        assert_eq!(fail::eval("cli-test-point", |arg| arg), Some(Some("x".to_string())));
        assert!(configure_failpoints(Some("no-equals-sign")).unwrap_err().contains("name=actions"));
        assert!(configure_failpoints(Some("cli-test-point=explode")).is_err(), "an unknown action is refused");
        fail::remove("cli-test-point");
    }
}

//! The `helpline` command line: `serve`, `migrate`, `user add|list|disable|enable`, `service add|list`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::app::{Application, Settings};
use crate::auth::hash_password;
use crate::clock::Clock;
use crate::store::users::{NewUser, Role};
use crate::store::{split_list, Store, StoreError};
use crate::telemetry::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(name = "helpline", version, about = "24/7 helpline and chat contact-centre backend")]
pub struct Cli {
    /// Database: `sqlite:PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long = "database", env = "DATABASE_URL", default_value = "sqlite:helpline.db", global = true)]
    pub database: String,
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
    /// Create or update the database schema, then exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the placement services registry.
    #[command(subcommand)]
    Service(crate::service_cli::ServiceCommand),
    /// Replay an arrival pattern through the routing engine in virtual time against a roster.
    Simulate(crate::simulate::SimulateArgs),
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
    /// Frames per second one socket may send after its burst (0: unlimited, for load tests only).
    #[arg(long, env = "HELPLINE_WS_RATE_PER_SEC", default_value_t = crate::ws::RATE_PER_SEC)]
    pub ws_rate_per_sec: f64,
    /// Frames one socket may send in a burst.
    #[arg(long, env = "HELPLINE_WS_BURST", default_value_t = crate::ws::RATE_BURST)]
    pub ws_burst: f64,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "HELPLINE_TOKEN_TTL_SECS", default_value_t = 12 * 3600)]
    pub token_ttl_secs: u64,
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
    /// Districts a case manager covers, comma-separated (new cases there are assigned to them).
    #[arg(long, default_value = "")]
    pub districts: String,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(cli.database, args).await,
        Command::Migrate => {
            let store = open(&cli.database).await?;
            crate::demo::seed_helplines(&store).await?;
            println!("database migrated: {}", describe(&cli.database));
            Ok(())
        }
        Command::User(cmd) => user(&cli.database, cmd).await,
        Command::Service(cmd) => crate::service_cli::run(&open(&cli.database).await?, cmd).await,
        Command::Simulate(args) => crate::simulate::run(&cli.database, args).await,
    }
}

async fn open(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url).await.with_context(|| format!("opening {}", describe(url)))?;
    store.migrate().await.context("migrating")?;
    Ok(store)
}

/// The database URL without any password, for messages.
fn describe(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

async fn serve(database: String, args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings {
        listen: args.listen,
        database_url: database.clone(),
        jwt_secret: std::env::var("HELPLINE_JWT_SECRET").ok(),
        token_ttl: Duration::from_secs(args.token_ttl_secs.max(60)),
        demo: args.demo,
        account_check_every: Duration::from_secs(1),
        allowed_origins: split_list(&args.allowed_origins),
        rate_limit: crate::ws::RateLimit { burst: args.ws_burst, per_sec: args.ws_rate_per_sec },
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

fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

async fn user(database: &str, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open(database).await?;
    let now = Clock::new().now_ms();
    match cmd {
        UserCommand::Add(a) => {
            if !valid_username(&a.username) {
                bail!("usernames are 1-64 characters of a-z, 0-9, '.', '_' and '-'");
            }
            if !a.password_stdin {
                bail!("pass --password-stdin and write the password on standard input");
            }
            if std::io::stdin().is_terminal() {
                eprintln!("password (one line):");
            }
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            if password.chars().count() < 8 {
                bail!("the password must have at least 8 characters");
            }
            if !(1..=50).contains(&a.capacity) {
                bail!("capacity must be between 1 and 50");
            }
            let known: Vec<String> = store.helplines().await?.into_iter().map(|h| h.name).collect();
            let helplines = split_list(&a.helplines);
            let backup_helplines = split_list(&a.backup_helplines);
            for h in helplines.iter().chain(&backup_helplines) {
                if !known.contains(h) {
                    bail!("unknown helpline {h:?}; known: {}", known.join(", "));
                }
            }
            let password_hash = hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            let new = NewUser {
                display_name: a.display_name.clone().unwrap_or_else(|| a.username.clone()),
                username: a.username.clone(),
                password_hash,
                role: a.role,
                helplines,
                backup_helplines,
                languages: split_list(&a.languages),
                capacity: a.capacity,
            };
            let created = match store.create_user(&new, now).await {
                Err(StoreError::Conflict(_)) => bail!("username {:?} is taken", a.username),
                other => other?,
            };
            let districts = split_list(&a.districts);
            if !districts.is_empty() {
                store.set_user_districts(&created.id, &districts).await?;
            }
            store.audit(now, "cli", "user_add", Some(&created.id), Some(a.role.as_str())).await?;
            println!("created {} ({}) id {}", created.username, created.role.as_str(), created.id);
        }
        UserCommand::List => {
            println!("{:<20} {:<11} {:<9} {:<32} {:<12} {:>3}", "USERNAME", "ROLE", "STATE", "HELPLINES", "LANGUAGES", "CAP");
            for u in store.users().await? {
                let mut helplines = u.helplines.join(",");
                if !u.backup_helplines.is_empty() {
                    helplines.push_str(&format!(" (+{})", u.backup_helplines.join(",")));
                }
                println!(
                    "{:<20} {:<11} {:<9} {:<32} {:<12} {:>3}",
                    u.username,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "enabled" },
                    helplines,
                    u.languages.join(","),
                    u.capacity
                );
            }
        }
        UserCommand::Disable { username } => set_disabled(&store, &username, true, now).await?,
        UserCommand::Enable { username } => set_disabled(&store, &username, false, now).await?,
    }
    Ok(())
}

async fn set_disabled(store: &Store, username: &str, disabled: bool, now: i64) -> anyhow::Result<()> {
    let user = match store.set_user_disabled(username, disabled).await {
        Err(StoreError::NotFound) => bail!("no account {username:?}"),
        other => other?,
    };
    let action = if disabled { "user_disable" } else { "user_enable" };
    store.audit(now, "cli", action, Some(&user.id), None).await?;
    println!("{} {}", if disabled { "disabled" } else { "enabled" }, user.username);
    Ok(())
}

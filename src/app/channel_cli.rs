//! `helpline channel add|list|remove`: the messaging channels (docs/channels.md). The provider's
//! credential comes from `HELPLINE_CHANNEL_TOKEN` or `--token-file`, never a flag (a flag is seen by
//! every user of the machine in the process list); it is stored sealed with the data key.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::store::channels::NewChannel;
use crate::store::{Store, StoreError};

/// The environment variable the provider's credential is read from.
pub const TOKEN_ENV: &str = "HELPLINE_CHANNEL_TOKEN";

#[derive(Subcommand, Debug)]
pub enum ChannelCommand {
    /// Register a messaging channel for a helpline; prints what to configure at the provider.
    #[command(subcommand)]
    Add(AddCommand),
    /// List the messaging channels (no credentials).
    List,
    /// Remove a channel: its webhooks are refused from now on; its open conversations' replies still go out.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum AddCommand {
    /// SMS through Kannel: inbound from its sms-service `post-url`, replies through its `sendsms`
    /// interface (the sendsms-user's password is the token), delivery reports at a `dlr-url`.
    Sms(SmsArgs),
}

#[derive(Args, Debug)]
pub struct Common {
    /// The channel's name (in its webhook URLs): 1-64 characters of a-z, 0-9, '.', '_' and '-'.
    #[arg(long)]
    pub name: String,
    /// The helpline its contacts reach.
    #[arg(long)]
    pub helpline: String,
    /// The language its contacts are routed by.
    #[arg(long, default_value = "ro")]
    pub language: String,
    /// The server's address as the provider reaches it (its webhooks are under it).
    #[arg(long)]
    pub public_url: String,
    /// Minutes of silence after which an answered conversation is closed (0: never).
    #[arg(long, default_value_t = 60)]
    pub idle_minutes: i64,
    /// A file holding the provider's credential (instead of HELPLINE_CHANNEL_TOKEN).
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct SmsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Kannel's sendsms interface (smsbox's `sendsms-port`), e.g. http://127.0.0.1:13013.
    #[arg(long)]
    pub api_base: String,
    /// The Kannel sendsms-user's name (its password is the token).
    #[arg(long)]
    pub username: String,
    /// The number replies are sent from (Kannel's `from`; the global sender if absent).
    #[arg(long)]
    pub sender: Option<String>,
}

/// The provider's credential: the environment variable, or the file.
fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
        None => std::env::var(TOKEN_ENV).map_err(|_| anyhow::anyhow!("set {TOKEN_ENV} or give --token-file: the provider's credential"))?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("the provider's credential is empty");
    }
    Ok(token)
}

pub async fn run(store: &Store, cmd: ChannelCommand) -> anyhow::Result<()> {
    let now = Clock::new().now_ms();
    match cmd {
        ChannelCommand::Add(AddCommand::Sms(args)) => {
            let c = &args.common;
            let token = read_token(c.token_file.as_deref())?;
            check_common(store, c).await?;
            if reqwest::Url::parse(&args.api_base).is_err() {
                bail!("--api-base is not a URL: {}", args.api_base);
            }
            let new = NewChannel {
                name: c.name.clone(),
                kind: "sms".into(),
                helpline: c.helpline.clone(),
                language: c.language.clone(),
                public_url: c.public_url.trim_end_matches('/').to_string(),
                api_base: args.api_base.trim_end_matches('/').to_string(),
                account: Some(args.username.clone()),
                sender: args.sender.clone(),
                token,
                // URL-safe (base64url): Kannel is given it as the Basic password inside its URLs.
                inbound_secret: crate::auth::random_token(24),
                idle_limit_ms: c.idle_minutes.max(0) * 60_000,
            };
            let created = match store.channels().add(&new, now).await {
                Err(StoreError::Conflict(_)) => bail!("a channel named {:?} exists", c.name),
                other => other?,
            };
            store.audit_log().audit(now, "cli", "channel_add", Some(&created.id), Some(&format!("sms {}", c.name))).await?;
            println!("created sms channel {} for helpline {} (id {})", created.name, created.helpline, created.id);
            println!("In kannel.conf, the sms-service that brings its messages in (the secret is shown once):");
            println!();
            println!("{}", kannel_service(&new));
        }
        ChannelCommand::List => {
            println!("{:<20} {:<10} {:<20} {:<6} {:<10} API BASE", "NAME", "KIND", "HELPLINE", "LANG", "IDLE MIN");
            for c in store.channels().list().await? {
                println!(
                    "{:<20} {:<10} {:<20} {:<6} {:<10} {}",
                    c.name,
                    c.kind,
                    c.helpline,
                    c.language,
                    c.idle_limit_ms / 60_000,
                    c.api_base
                );
            }
        }
        ChannelCommand::Remove { name } => {
            if !store.channels().remove(&name, now).await? {
                bail!("no channel {name:?}");
            }
            store.audit_log().audit(now, "cli", "channel_remove", None, Some(&name)).await?;
            println!("removed channel {name}");
        }
    }
    Ok(())
}

async fn check_common(store: &Store, c: &Common) -> anyhow::Result<()> {
    let valid = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
    if !valid {
        bail!("channel names are 1-64 characters of a-z, 0-9, '.', '_' and '-'");
    }
    crate::store::defaults::seed_helplines(store).await?;
    if !store.directory().helplines().await?.iter().any(|h| h.name == c.helpline) {
        bail!("no helpline {:?}", c.helpline);
    }
    if reqwest::Url::parse(&c.public_url).is_err() {
        bail!("--public-url is not a URL: {}", c.public_url);
    }
    Ok(())
}

/// The Kannel `sms-service` group that posts a channel's inbound messages to the server.
pub fn kannel_service(c: &NewChannel) -> String {
    let mut url = reqwest::Url::parse(&c.public_url).unwrap_or_else(|_| reqwest::Url::parse("http://invalid/").expect("a URL"));
    let _ = url.set_username(crate::edge::channels::http::BASIC_USER);
    let _ = url.set_password(Some(&c.inbound_secret));
    let root = url.as_str().trim_end_matches('/').to_string();
    format!(
        "group = sms-service\nkeyword = default\ncatch-all = true\nmax-messages = 0\n\
         post-url = \"{root}/api/v1/channels/sms/{}/inbound?from=%p&to=%P&id=%I\"",
        c.name
    )
}

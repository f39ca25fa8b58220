//! `helpline backup`, `helpline restore` and `helpline erase` (docs/deployment.md, "Backup",
//! "Restore", "Erasure"). SQLite is copied online by the store (`VACUUM INTO`); PostgreSQL with
//! `pg_dump --format=custom` and `pg_restore`, which this command runs and names. Neither copy holds a
//! key; a restore needs the key file, and erases again every contact named in the record of erasures
//! beside it (erased after the backup was taken).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

use crate::clock::Clock;
use crate::store::backup::restore_sqlite_file;
use crate::store::erasures::{erasures_file, recorded_erasures};
use crate::store::keys::{default_key_file, remembered_key_file};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The backup file to write (must not exist). SQLite: a database file; PostgreSQL: a `pg_dump`
    /// archive (custom format).
    #[arg(long)]
    pub to: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup written by `helpline backup` (or `pg_dump --format=custom`).
    #[arg(long)]
    pub from: PathBuf,
    /// The record of erasures to apply after the restore (default: beside the key file,
    /// `<key file>.erasures`).
    #[arg(long)]
    pub erasures: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EraseArgs {
    /// The contact's id.
    #[arg(long)]
    pub contact: String,
    /// Why (the data subject's request, its reference): kept in the redaction record.
    #[arg(long)]
    pub reason: String,
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn megabytes(path: &Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len() as f64 / 1_048_576.0).unwrap_or(0.0)
}

/// "3 contacts, 12 messages, …" of a store's counts.
fn counts(held: &[(&str, u64)]) -> String {
    held.iter().map(|(t, n)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
}

/// Runs `program args`, its output going to ours (pg_dump's and pg_restore's `--verbose` lines are
/// the progress); an error names the program and what to check.
fn run_tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("running: {program} {}", args.iter().map(|a| if a.contains("://") { "<database>" } else { a }).collect::<Vec<_>>().join(" "));
    let status = std::process::Command::new(program).args(args).status().with_context(|| {
        format!("cannot run {program}: install the PostgreSQL client (Debian: postgresql-client) of the server's major version")
    })?;
    if !status.success() {
        bail!("{program} failed ({status}); see its messages above");
    }
    Ok(())
}

/// `helpline backup --to FILE`.
pub async fn backup(database: &str, args: BackupArgs) -> anyhow::Result<()> {
    if args.to.exists() {
        bail!("{} exists: give a new file name (a backup never overwrites one)", args.to.display());
    }
    let started = Instant::now();
    if is_postgres(database) {
        eprintln!("backup: PostgreSQL is backed up with pg_dump (custom format, a consistent snapshot while the servers serve)");
        let to = args.to.to_str().context("the backup path is not UTF-8")?;
        run_tool("pg_dump", &["--format=custom", "--verbose", "--no-owner", "--file", to, "--dbname", database])?;
    } else {
        let file = crate::store::backup::sqlite_file(database).context("an in-memory database has nothing to back up")?;
        if !file.exists() {
            bail!("no database at {}", file.display());
        }
        let store = Store::connect_without_keys(database).await?;
        let held = store.backup().held().await?;
        eprintln!(
            "backup: copying {} ({:.1} MB: {}) to {} while the server serves…",
            file.display(),
            megabytes(&file),
            counts(&held),
            args.to.display()
        );
        store.backup().copy_to(&args.to).await.with_context(|| format!("writing {}", args.to.display()))?;
        store.close().await;
        eprintln!("backup: copy checked (quick_check ok)");
    }
    println!(
        "backup written to {} ({:.1} MB, {:.1} s). It holds no key: keep the key file and the record of erasures beside it \
         (docs/security.md) in another place than the backups",
        args.to.display(),
        megabytes(&args.to),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `helpline restore --from FILE` into an empty database, then the erasures recorded since.
pub async fn restore(database: &str, key_file: Option<PathBuf>, args: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if !args.from.is_file() {
        bail!("no backup at {}", args.from.display());
    }
    let key_file = key_file.or_else(|| remembered_key_file(database)).or_else(|| default_key_file(database));
    let Some(key_file) = key_file.filter(|k| k.is_file()) else {
        bail!(
            "a restore needs the key file of the backed-up database (the backup holds no key): give --key-file PATH \
             (docs/deployment.md, \"Restore\")"
        );
    };
    // The database restored into must be empty: a restore never overwrites data.
    let target = Store::connect_without_keys(database).await.context("opening the database to restore into")?;
    let held = target.backup().held().await?;
    target.close().await;
    let data: Vec<_> = held.iter().filter(|(t, n)| *n > 0 && *t != "audit_log").copied().collect();
    if !data.is_empty() {
        bail!(
            "the database to restore into is not empty ({}): restore only into a new, empty database (a new SQLite file, \
             or `createdb` a new PostgreSQL database)",
            counts(&data)
        );
    }
    eprintln!("restore: {} ({:.1} MB) into the empty database…", args.from.display(), megabytes(&args.from));
    if is_postgres(database) {
        let from = args.from.to_str().context("the backup path is not UTF-8")?;
        run_tool("pg_restore", &["--verbose", "--no-owner", "--clean", "--if-exists", "--exit-on-error", "--dbname", database, from])?;
    } else {
        restore_sqlite_file(&args.from, database).await.context("copying the backup")?;
    }
    eprintln!("restore: copied ({:.1} s); migrating and checking the key file…", started.elapsed().as_secs_f64());
    let store = Store::connect_with(database, Some(key_file.as_path())).await?;
    store.migrate().await.context("the restored database")?;
    let record = args.erasures.unwrap_or_else(|| erasures_file(&key_file));
    let erasures = recorded_erasures(&record).with_context(|| format!("reading the record of erasures {}", record.display()))?;
    let mut applied = 0;
    for (i, (id, at)) in erasures.iter().enumerate() {
        if store.privacy().erase_contact(id, *at).await?.is_some() {
            applied += 1;
        }
        if (i + 1) % 100 == 0 || i + 1 == erasures.len() {
            eprintln!("restore: erasures {}/{} checked, {applied} contacts of the backup erased again", i + 1, erasures.len());
        }
    }
    let now = Clock::new().now_ms();
    let detail = format!("from a backup; {} recorded erasures applied again ({applied} in the backup)", erasures.len());
    store.audit_log().audit(now, "cli", "restore", None, Some(&detail)).await?;
    let held = store.backup().held().await?;
    store.close().await;
    println!(
        "restored {} in {:.1} s: {}; {} erasures recorded in {} applied again; start the server with the same key file",
        args.from.display(),
        started.elapsed().as_secs_f64(),
        counts(&held),
        erasures.len(),
        record.display()
    );
    Ok(())
}

/// `helpline erase --contact ID --reason TEXT`: as `cli` (the redaction record's actor).
pub async fn erase(store: &Store, args: EraseArgs) -> anyhow::Result<()> {
    let reason = args.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        bail!("--reason: say why (the request's reference), up to 1000 characters");
    }
    match store.contacts().contact(&args.contact).await? {
        None => bail!("no contact {:?}", args.contact),
        Some(c) if matches!(c.state.as_str(), "queued" | "active") => bail!("contact {} is still open: end it before erasing it", c.id),
        Some(_) => {}
    }
    let now = Clock::new().now_ms();
    let erased = crate::safety::privacy::erase_contact(store, "cli", "cli", &args.contact, reason, now)
        .await?
        .with_context(|| format!("no contact {:?}", args.contact))?;
    println!(
        "erased contact {}: {} messages, {} form, {} call record, {} other rows; redaction record written to the audit log",
        args.contact, erased.messages, erased.forms, erased.calls, erased.other
    );
    Ok(())
}

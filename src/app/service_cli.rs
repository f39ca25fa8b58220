//! `helpline service add|list`: the placement services registry from the command line (admins' tool, audited as `cli`).

use clap::{Args, Subcommand};

use crate::casework::services::NewService;
use crate::clock::Clock;
use crate::store::{split_list, Store};

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Add a placement service.
    Add(ServiceAdd),
    /// List the services with their free places.
    List,
}

#[derive(Args, Debug)]
pub struct ServiceAdd {
    #[arg(long)]
    pub name: String,
    /// family_violence_centre, maternal_centre, community_home_children, family_type_home, elderly_disability_centre.
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub district: String,
    #[arg(long, default_value = "")]
    pub address: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    /// Admits around the clock.
    #[arg(long)]
    pub always_open: bool,
    #[arg(long)]
    pub capacity: i64,
    /// Places already taken.
    #[arg(long, default_value_t = 0)]
    pub in_use: i64,
    /// Helplines that may place people here, comma-separated.
    #[arg(long)]
    pub helplines: String,
}

pub async fn run(store: &Store, cmd: ServiceCommand) -> anyhow::Result<()> {
    let now = Clock::new().now_ms();
    match cmd {
        ServiceCommand::Add(a) => {
            let known: Vec<String> = store.directory().helplines().await?.into_iter().map(|h| h.name).collect();
            let new = NewService {
                name: a.name,
                kind: a.kind,
                district: a.district,
                address: a.address,
                phone: a.phone,
                admission_24_7: a.always_open,
                capacity: a.capacity,
                in_use: a.in_use,
                helplines: split_list(&a.helplines),
            };
            let record = new.build(&known, now).map_err(|e| anyhow::anyhow!(e))?;
            store.placements().add_service(&record).await?;
            store.audit_log().audit_from(now, "cli", "service_add", Some(&record.id), Some(&record.name), "cli").await?;
            println!("added {} ({}, {}) id {}", record.name, record.kind, record.district, record.id);
        }
        ServiceCommand::List => {
            println!("{:<36} {:<40} {:<26} {:<12} {:>5} {:<5} HELPLINES", "ID", "NAME", "KIND", "DISTRICT", "FREE", "24/7");
            for s in store.placements().services().await? {
                println!(
                    "{:<36} {:<40} {:<26} {:<12} {:>5} {:<5} {}",
                    s.id,
                    s.name,
                    s.kind,
                    s.district,
                    format!("{}/{}", s.free(), s.capacity),
                    if s.admission_24_7 { "yes" } else { "no" },
                    s.helplines.join(",")
                );
            }
        }
    }
    Ok(())
}

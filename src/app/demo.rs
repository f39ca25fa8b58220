//! Demo data for `serve --demo`: the accounts listed in the README and a few services. (The three
//! helplines themselves are created on every start if missing: `store::defaults`.)

use crate::auth::hash_password;
use crate::store::users::{NewUser, Role};
use crate::store::Store;

/// The demo's senior counsellor: takes the contacts of callers a supervisor routed to seniors.
pub const DEMO_SENIORS: &[&str] = &["ion"];

/// Phone extensions of the demo counsellors.
pub const DEMO_EXTENSIONS: &[(&str, &str)] = &[("ana", "201"), ("ion", "202"), ("olena", "203")];

/// A demo account: (username, display name, role, helplines, backup helplines, languages).
pub struct DemoAccount {
    pub username: &'static str,
    pub display_name: &'static str,
    pub role: Role,
    pub helplines: &'static [&'static str],
    pub backup_helplines: &'static [&'static str],
    pub languages: &'static [&'static str],
}

/// The demo accounts; each one's password is `<username>-demo`.
pub const DEMO_ACCOUNTS: &[DemoAccount] = &[
    DemoAccount {
        username: "ana",
        display_name: "Ana",
        role: Role::Counsellor,
        helplines: &["children", "disability"],
        backup_helplines: &["family_violence"],
        languages: &["ro", "ru", "en"],
    },
    DemoAccount {
        username: "ion",
        display_name: "Ion",
        role: Role::Counsellor,
        helplines: &["family_violence", "children"],
        backup_helplines: &[],
        languages: &["ro", "ru"],
    },
    DemoAccount {
        username: "olena",
        display_name: "Olena",
        role: Role::Counsellor,
        helplines: &["disability", "family_violence"],
        backup_helplines: &["children"],
        languages: &["uk", "ru", "en"],
    },
    DemoAccount {
        username: "maria",
        display_name: "Maria (supervisor)",
        role: Role::Supervisor,
        helplines: &["children", "disability", "family_violence"],
        backup_helplines: &[],
        languages: &["ro", "ru", "uk", "en"],
    },
    DemoAccount {
        username: "vera",
        display_name: "Vera (case manager)",
        role: Role::CaseManager,
        helplines: &[],
        backup_helplines: &[],
        languages: &["ro", "ru"],
    },
    DemoAccount {
        username: "admin",
        display_name: "Administrator",
        role: Role::Admin,
        helplines: &[],
        backup_helplines: &[],
        languages: &["ro", "en"],
    },
];

/// Creates the demo accounts that are missing.
pub async fn seed_accounts(store: &Store, now: i64) -> anyhow::Result<()> {
    for a in DEMO_ACCOUNTS {
        if store.accounts().user_with_hash(a.username).await?.is_some() {
            continue;
        }
        // DEMO ONLY: `<username>-demo` does not meet the password rule (`auth::password::check`: it
        // is short and contains the username). The demo seeds it on purpose, so the README's accounts
        // work; every real path (`user add`, `user passwd`, a change, a reset) enforces the rule.
        let password = format!("{}-demo", a.username);
        let password_hash = hash_password(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
        let to_vec = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let user = NewUser {
            username: a.username.into(),
            display_name: a.display_name.into(),
            password_hash,
            role: a.role,
            helplines: to_vec(a.helplines),
            backup_helplines: to_vec(a.backup_helplines),
            languages: to_vec(a.languages),
            capacity: 3,
        };
        let created = store.accounts().create_user(&user, now).await?;
        if let Some((_, ext)) = DEMO_EXTENSIONS.iter().find(|(u, _)| *u == a.username) {
            store.accounts().set_user_extension(&created.id, Some(ext)).await?;
        }
        if DEMO_SENIORS.contains(&a.username) {
            store.accounts().set_user_senior(&created.id, true).await?;
        }
        if a.role == Role::CaseManager {
            store
                .accounts()
                .set_user_districts(&created.id, &DEMO_CASE_DISTRICTS.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .await?;
        }
        store.audit_log().audit(now, "demo", "user_add", Some(&created.id), Some(a.role.as_str())).await?;
        tracing::info!(username = a.username, "created demo account");
    }
    Ok(())
}

/// The districts the demo case manager covers.
pub const DEMO_CASE_DISTRICTS: &[&str] = &["Chișinău", "Orhei", "Ungheni"];

/// Demo placement services, a few per region: (name, kind, district, capacity, helplines).
pub const DEMO_SERVICES: &[(&str, &str, &str, i64, &[&str])] = &[
    ("Centrul de asistență și protecție Chișinău", "family_violence_centre", "Chișinău", 12, &["family_violence"]),
    ("Centrul maternal Chișinău", "maternal_centre", "Chișinău", 8, &["family_violence", "children"]),
    ("Casa comunitară pentru copii Chișinău", "community_home_children", "Chișinău", 10, &["children"]),
    (
        "Centrul de plasament pentru persoane vârstnice și cu dizabilități Chișinău",
        "elderly_disability_centre",
        "Chișinău",
        20,
        &["disability"],
    ),
    ("Centrul de asistență și protecție Bălți", "family_violence_centre", "Bălți", 8, &["family_violence"]),
    ("Casa de copii de tip familial Bălți", "family_type_home", "Bălți", 6, &["children"]),
    ("Centrul de asistență și protecție Cahul", "family_violence_centre", "Cahul", 10, &["family_violence"]),
    ("Centrul maternal Cahul", "maternal_centre", "Cahul", 6, &["family_violence", "children"]),
    ("Casa comunitară pentru copii Orhei", "community_home_children", "Orhei", 8, &["children"]),
    ("Centrul de plasament Orhei", "elderly_disability_centre", "Orhei", 15, &["disability"]),
    ("Centrul maternal Ungheni", "maternal_centre", "Ungheni", 6, &["family_violence", "children"]),
    ("Centrul de asistență și protecție Hâncești", "family_violence_centre", "Hâncești", 8, &["family_violence"]),
];

/// Adds the demo placement services when the registry is empty.
pub async fn seed_services(store: &Store, now: i64) -> anyhow::Result<()> {
    if !store.placements().services().await?.is_empty() {
        return Ok(());
    }
    for (name, kind, district, capacity, helplines) in DEMO_SERVICES {
        let service = crate::store::services::ServiceRecord {
            id: crate::store::new_id(),
            name: name.to_string(),
            kind: kind.to_string(),
            district: district.to_string(),
            address: String::new(),
            phone: String::new(),
            admission_24_7: true,
            capacity: *capacity,
            in_use: 0,
            helplines: helplines.iter().map(|h| h.to_string()).collect(),
            created_at: now,
        };
        store.placements().add_service(&service).await?;
    }
    tracing::info!(count = DEMO_SERVICES.len(), "created demo placement services");
    Ok(())
}

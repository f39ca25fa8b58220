//! Secrets at rest (docs/security.md, "Keys and sealing"): what an attacker holding a copy of the
//! database (a stolen laptop, a leaked backup, a curious administrator) finds, and what one who can
//! write to it can forge. Every scenario runs on SQLite and PostgreSQL.

use helpline::store::keys::{read_key_file, KeyFile};
use helpline::store::users::Role;
use helpline::store::Store;
use serde_json::json;

use crate::abuse::{helpline_cli, sql_execute, sql_text};
use crate::helpers::{add_user, call, Backend, TestApp, TestDb};

crate::on_both_backends!(
    nothing_readable_in_the_database_its_wal_or_a_backup,
    keys_move_out_of_server_secrets_on_upgrade,
    key_rotation_keeps_old_tokens_and_rows,
    the_keyed_audit_chain_resists_a_database_writer,
    a_tampered_ciphertext_is_a_clear_error,
    existing_rows_are_sealed_by_the_migration,
);

/// The key file the test's store uses.
fn key_file(store: &Store) -> KeyFile {
    store.keys().snapshot().expect("keys")
}

/// Every spelling of every key that could sit in a file: as written, its bytes, hex, standard base64.
fn key_spellings(keys: &KeyFile) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let mut all = Vec::new();
    for secret in keys.all_secrets() {
        all.push(secret.as_bytes().to_vec());
        let hex: String = secret.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        all.push(hex.into_bytes());
        if let Some(raw) = helpline::store::keys::decode_key(&secret) {
            all.push(raw.to_vec());
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            all.push(hex.into_bytes());
            all.push(base64::engine::general_purpose::STANDARD.encode(raw).into_bytes());
        }
    }
    all
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Everything an attacker with the database would read: the SQLite file and its WAL, or PostgreSQL's dump
/// (`pg_dump`; when it cannot run, every text column of every table read with SQL).
pub(crate) async fn database_bytes(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let path = app.db.url.trim_start_matches("sqlite:").to_string();
            let mut files = Vec::new();
            for suffix in ["", "-wal"] {
                if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                    files.push((format!("database file{suffix}"), bytes));
                }
            }
            files
        }
        helpline::store::Backend::Postgres => {
            let dump = std::process::Command::new("pg_dump").arg("--no-owner").arg(&app.db.url).output();
            match dump {
                Ok(out) if out.status.success() && !out.stdout.is_empty() => vec![("pg_dump".into(), out.stdout)],
                _ => {
                    let pool = sqlx::PgPool::connect(&app.db.url).await.expect("connect");
                    let columns: Vec<(String, String)> = sqlx::query_as(
                        "SELECT table_name::text, column_name::text FROM information_schema.columns
                         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying')",
                    )
                    .fetch_all(&pool)
                    .await
                    .expect("columns");
                    let mut all = Vec::new();
                    for (table, column) in columns {
                        let sql = format!("SELECT COALESCE(string_agg(\"{column}\", E'\\n'), '') FROM \"{table}\"");
                        let (text,): (String,) = sqlx::query_as(&sql).fetch_one(&pool).await.expect("scan");
                        all.extend_from_slice(text.as_bytes());
                        all.push(b'\n');
                    }
                    pool.close().await;
                    vec![("every text column".into(), all)]
                }
            }
        }
    }
}

/// A backup: SQLite's `VACUUM INTO` (what an operator's backup script does) and a copy of the file;
/// PostgreSQL's dump is [`database_bytes`]'s.
async fn backup_bytes(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    if app.store.backend() != helpline::store::Backend::Sqlite {
        return Vec::new();
    }
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("backup.db");
    sql_execute(app, &format!("VACUUM INTO '{}'", target.display())).await;
    vec![("VACUUM INTO backup".into(), std::fs::read(&target).expect("backup"))]
}

async fn assert_nothing_found(app: &TestApp, texts: &[&str], keys: &KeyFile) {
    let mut places = database_bytes(app).await;
    places.extend(backup_bytes(app).await);
    assert!(!places.is_empty());
    for (what, bytes) in &places {
        for t in texts {
            assert!(!contains(bytes, t.as_bytes()), "{t:?} found in the {what}");
        }
        for (i, k) in key_spellings(keys).iter().enumerate() {
            assert!(!contains(bytes, k), "key spelling #{i} found in the {what}");
        }
    }
}

/// A chat through the real server: the caller writes `caller_text`, the counsellor answers; ended.
async fn chat(app: &TestApp, counsellor: &str, caller_text: &str, answer: &str) -> String {
    let mut agent = app.available_agent(counsellor).await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence", "language": "ro"})).await;
    caller.expect("queued").await;
    let offer = agent.expect("offer").await;
    let contact = offer["contact_id"].as_str().expect("contact").to_string();
    agent.send(json!({"type": "accept", "contact_id": contact})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    caller.send(json!({"type": "message", "client_id": "c1", "text": caller_text})).await;
    caller.expect("ack").await;
    agent.expect("message").await;
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "a1", "text": answer})).await;
    agent.expect("ack").await;
    caller.expect("message").await;
    caller.send(json!({"type": "end"})).await;
    caller.expect("contact_ended").await;
    agent.expect("contact_ended").await;
    contact
}

async fn nothing_readable_in_the_database_its_wal_or_a_backup(backend: Backend) {
    let Some(mut app) = TestApp::spawn_with_settings(backend, |s| s.jwt_secret = None).await else { return };
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    add_user(&app.store, "vera", Role::CaseManager, &[], &[], &["ro"], 1).await;
    let token = app.login("ana").await;

    let said = "Tata m-a lovit aseară CANARY-MESSAGE-7731";
    let answered = "Ești în siguranță acum? CANARY-ANSWER-2290";
    let summary = "Fata de 12 ani, lovită acasă CANARY-SUMMARY-5518";
    let note = "Vizită la școală joi CANARY-NOTE-9043";
    let name = "Elena CANARY-NAME Rusu";
    let address = "str. Ștefan cel Mare 1 CANARY-ADDRESS";
    let reason = "Escaladare: pericol CANARY-REASON-1177";
    let contact = chat(&app, "ana", said, answered).await;
    let form = json!({"draft": false, "form": {"caller_type": "child", "age_group": "10-13", "gender": "female", "district": "Cahul",
        "categories": ["physical_violence"], "summary": summary, "outcome": "referred", "risk": "high"}});
    let (status, body) = call(&app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(form.clone())).await;
    if status != 200 {
        // The taxonomy differs per helpline: a draft with the summary alone is enough here.
        let draft = json!({"draft": true, "form": {"summary": summary, "district": "Cahul"}});
        let (status, again) = call(&app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(draft)).await;
        assert_eq!(status, 200, "{body} / {again}");
    }
    let (status, escalation) = call(
        &app,
        &token,
        "POST",
        "/api/v1/escalations",
        Some(json!({"contact_id": contact, "kind": "child_protection", "risk": "high", "reason": reason, "district": "Cahul"})),
    )
    .await;
    assert!(status == 201 || status == 200, "{escalation}");
    let (status, case) = call(&app, &token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact, "district": "Cahul"}))).await;
    assert_eq!(status, 201, "{case}");
    let case = case["id"].as_str().or(case["case"]["id"].as_str()).expect("case id").to_string();
    let (status, entry) =
        call(&app, &token, "POST", &format!("/api/v1/cases/{case}/entries"), Some(json!({"kind": "note", "body": {"text": note}}))).await;
    assert_eq!(status, 201, "{entry}");
    let person = json!({"full_name": name, "birth_date": "2014-03-02", "address": address, "phone": "+37369000111"});
    assert_eq!(call(&app, &token, "PUT", &format!("/api/v1/cases/{case}/person"), Some(person)).await.0, 204);

    // The server reads them back as written.
    let (_, got) = call(&app, &token, "GET", &format!("/api/v1/cases/{case}/person"), None).await;
    assert_eq!(got["full_name"], name, "{got}");
    let (_, got) = call(&app, &token, "GET", &format!("/api/v1/contacts/{contact}/form"), None).await;
    assert!(got.to_string().contains(summary), "{got}");
    let messages = app.store.messages().messages_after(&contact, 0).await.expect("history");
    assert_eq!(messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), [said, answered]);
    let entries = app.store.cases().case_entries(&case).await.expect("entries");
    assert!(entries.iter().any(|e| e.body.contains(note)));
    // Reports still count what stays in clear (the form's district and categories are not sealed).
    let raw_form = sql_text(&app, &format!("SELECT data FROM contact_forms WHERE contact_id = '{contact}'")).await;
    assert!(raw_form.contains("Cahul") && !raw_form.contains("CANARY"), "{raw_form}");

    let keys = key_file(&app.store);
    let texts = [said, answered, summary, note, name, address, reason, "+37369000111", "CANARY"];
    // While the server runs (the WAL holds the newest pages), and after it stopped.
    assert_nothing_found(&app, &texts, &keys).await;
    app.shutdown().await;
    assert_nothing_found(&app, &texts, &keys).await;
}

async fn keys_move_out_of_server_secrets_on_upgrade(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let legacy_jwt = "legacy-signing-key-legacy-signing-key-0001";
    let legacy_number = "legacy-number-hmac-key-0002";
    let user;
    {
        // A database from before the key file: its keys in `server_secrets`, no key file.
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        helpline::store::defaults::seed_helplines(&store).await.expect("helplines");
        user = add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
        let path = store.keys().path().expect("a key file").to_path_buf();
        store.close().await;
        std::fs::remove_file(&path).expect("no key file yet");
        let app_like = |sql: String| sql;
        for sql in [
            app_like("DELETE FROM key_checks WHERE name NOT LIKE 'sealed:%'".into()),
            format!("INSERT INTO server_secrets (name, value, created_at) VALUES ('jwt_hs256', '{legacy_jwt}', 1)"),
            format!("INSERT INTO server_secrets (name, value, created_at) VALUES ('caller_number_hmac', '{legacy_number}', 1)"),
        ] {
            raw_execute(&db.url, &sql).await;
        }
    }
    let now = helpline::clock::Clock::new().now_ms();
    let old_token = helpline::auth::AuthKeys::new(legacy_jwt.as_bytes(), std::time::Duration::from_secs(900))
        .issue(&user, Role::Counsellor, now)
        .expect("token")
        .0;
    let store = Store::connect(&db.url).await.expect("connect");
    let app = TestApp::start_tuned(db, store, |s| s.jwt_secret = None).await;
    // The old token (signed with the key the database held) still works.
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(&old_token).send().await.expect("me");
    assert_eq!(res.status(), 200, "a token signed before the upgrade");
    // The keys are in the key file, and gone from the database.
    assert_eq!(raw_count(&app.db.url, "SELECT COUNT(*) FROM server_secrets").await, 0);
    let path = helpline::store::keys::remembered_key_file(&app.db.url).expect("key file");
    let keys = read_key_file(&path).expect("key file");
    assert_eq!(keys.hmac.get("caller_number_hmac").map(String::as_str), Some(legacy_number), "caller hashes keep matching");
    assert!(keys.signing.iter().any(|k| k.key == legacy_jwt));
    // New logins work too, and neither key is anywhere in the database.
    app.login("ana").await;
    assert_nothing_found(&app, &[legacy_jwt, legacy_number], &keys).await;
}

/// Runs one statement on the database at `url` (as someone with database access would).
async fn raw_execute(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        sqlx::query(sql).execute(&pool).await.expect("execute");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query(sql).execute(&pool).await.expect("execute");
        pool.close().await;
    }
}

async fn raw_count(url: &str, sql: &str) -> i64 {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("count");
        n
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("count");
        n
    }
}

async fn key_rotation_keeps_old_tokens_and_rows(backend: Backend) {
    let Some(mut app) = TestApp::spawn_with_settings(backend, |s| s.jwt_secret = None).await else { return };
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    let old_token = app.login("ana").await;
    let contact = chat(&app, "ana", "before the rotation CANARY-OLD", "ok").await;
    let (status, case) = call(&app, &old_token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact}))).await;
    assert_eq!(status, 201, "{case}");
    let case = case["id"].as_str().or(case["case"]["id"].as_str()).expect("case id").to_string();
    assert_eq!(call(&app, &old_token, "PUT", &format!("/api/v1/cases/{case}/person"), Some(json!({"full_name": "Old Name"}))).await.0, 204);

    let (code, out) = helpline_cli(&app, &["keys", "rotate"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("data key d2") && out.contains("signing key s2"), "{out}");

    // Restarted with the rotated key file (every node would be).
    app.shutdown().await;
    let db = std::mem::replace(&mut app.db, TestDb::sqlite_at(std::path::Path::new("/nonexistent")));
    drop(app);
    let store = Store::connect(&db.url).await.expect("connect");
    let app = TestApp::start_tuned(db, store, |s| s.jwt_secret = None).await;
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(&old_token).send().await.expect("me");
    assert_eq!(res.status(), 200, "a token of the old signing key is valid until it expires");
    let new_token = app.login("ana").await;
    let kid = |t: &str| jsonwebtoken::decode_header(t).expect("header").kid;
    assert_ne!(kid(&old_token), kid(&new_token), "the new key signs");
    // Old rows open; new ones are sealed with the new data key.
    let (_, person) = call(&app, &new_token, "GET", &format!("/api/v1/cases/{case}/person"), None).await;
    assert_eq!(person["full_name"], "Old Name", "{person}");
    let history = app.store.messages().messages_after(&contact, 0).await.expect("history");
    assert_eq!(history[0].body, "before the rotation CANARY-OLD");
    assert_eq!(call(&app, &new_token, "PUT", &format!("/api/v1/cases/{case}/person"), Some(json!({"full_name": "New Name"}))).await.0, 204);
    let raw = sql_text(&app, &format!("SELECT full_name FROM case_people WHERE case_id = '{case}'")).await;
    assert!(raw.starts_with("hl1.d2."), "{raw}");
    let (_, person) = call(&app, &new_token, "GET", &format!("/api/v1/cases/{case}/person"), None).await;
    assert_eq!(person["full_name"], "New Name");
}

async fn the_keyed_audit_chain_resists_a_database_writer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let log = app.store.audit_log();
    for i in 0..8 {
        log.audit(i, "admin", "test_line", Some("target"), Some(&format!("detail {i}"))).await.expect("line");
    }
    let checkpoint = log.checkpoint().await.expect("checkpoint");
    assert!(checkpoint.seq >= 8);
    let (code, printed) = helpline_cli(&app, &["audit", "checkpoint"]).await;
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(printed.trim(), checkpoint.to_string(), "the CLI prints the same head");
    let (code, out) = helpline_cli(&app, &["audit", "verify", "--checkpoint", &checkpoint.to_string()]).await;
    assert_eq!(code, Some(0), "{out}");

    // 1. An edited line.
    let original = sql_text(&app, "SELECT detail FROM audit_log WHERE seq = 4").await;
    sql_execute(&app, "UPDATE audit_log SET detail = 'nothing here' WHERE seq = 4").await;
    let report = log.verify_audit_chain().await.expect("verify");
    assert_eq!(report.first_break.as_ref().and_then(|b| b.seq), Some(4), "{report:?}");
    sql_execute(&app, &format!("UPDATE audit_log SET detail = '{original}' WHERE seq = 4")).await;
    assert!(log.verify_audit_chain().await.expect("verify").intact());

    // 2. An edited line with every hash after it recomputed (as one without the audit key can: plain
    //    SHA-256, or an HMAC under a key of their own).
    let rows = chain_rows(&app).await;
    for forged_key in [None, Some([9u8; 32])] {
        let mut prev = rows.iter().find(|r| r.0 == 3).expect("line 3").2.clone();
        for (seq, id, _, hash, at, actor, action, target, detail, source) in rows.iter().filter(|r| r.0 >= 4) {
            let _ = hash;
            let detail = if *seq == 4 { Some("nothing here".to_string()) } else { detail.clone() };
            let new = helpline::store::audit::line_hash(
                forged_key.as_ref(),
                &prev,
                *seq,
                id,
                *at,
                actor,
                action,
                target.as_deref(),
                detail.as_deref(),
                source.as_deref(),
            );
            let detail_sql = detail.map_or("NULL".to_string(), |d| format!("'{d}'"));
            sql_execute(
                &app,
                &format!("UPDATE audit_log SET prev_hash = '{prev}', hash = '{new}', detail = {detail_sql} WHERE seq = {seq}"),
            )
            .await;
            prev = new;
        }
        let report = log.verify_audit_chain().await.expect("verify");
        assert_eq!(report.first_break.as_ref().and_then(|b| b.seq), Some(4), "a recomputed suffix: {report:?}");
        restore_rows(&app, &rows).await;
        assert!(log.verify_audit_chain().await.expect("verify").intact());
    }

    // 3. A truncated tail: the shorter chain is intact, but it no longer reaches the checkpoint.
    let last = checkpoint.seq;
    sql_execute(&app, &format!("DELETE FROM audit_log WHERE seq >= {}", last - 1)).await;
    assert!(log.verify_audit_chain().await.expect("verify").intact(), "a cut-off chain alone looks intact");
    let report = log.verify_against(&checkpoint).await.expect("verify");
    assert!(report.first_break.as_ref().is_some_and(|b| b.problem.contains("cut off")), "{report:?}");
    let (code, out) = helpline_cli(&app, &["audit", "verify", "--checkpoint", &checkpoint.to_string()]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cut off"), "{out}");
    restore_rows(&app, &rows).await;
    assert!(log.verify_against(&checkpoint).await.expect("verify").intact());

    // 4. Pruning leaves a keyed anchor: the chain still verifies, against the checkpoint too.
    let pruned = log.prune_through(5, 100).await.expect("prune");
    assert_eq!(pruned, 5);
    assert!(log.verify_audit_chain().await.expect("verify").intact(), "verifies from the anchor");
    assert!(log.verify_against(&checkpoint).await.expect("verify").intact());
    log.audit(200, "admin", "after_pruning", None, None).await.expect("line");
    assert!(log.verify_audit_chain().await.expect("verify").intact());
    let (code, out) = helpline_cli(&app, &["audit", "verify"]).await;
    assert_eq!(code, Some(0), "{out}");
    // A forged anchor (moved on to hide more lines) is named.
    sql_execute(&app, "DELETE FROM audit_log WHERE seq = 6").await;
    sql_execute(&app, "UPDATE audit_anchor SET seq = 6").await;
    let report = log.verify_audit_chain().await.expect("verify");
    assert!(report.first_break.as_ref().is_some_and(|b| b.problem.contains("anchor")), "{report:?}");
}

type Row = (i64, String, String, String, i64, String, String, Option<String>, Option<String>, Option<String>);

/// Every chained line: (seq, id, hash, hash, at, actor, action, target, detail, source) — the hash
/// twice so a forger's loop can read the previous one.
async fn chain_rows(app: &TestApp) -> Vec<Row> {
    let sql = "SELECT seq, id, hash, hash, at, actor, action, target, detail, source FROM audit_log WHERE seq IS NOT NULL ORDER BY seq";
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&pool).await.expect("rows")
        }
        helpline::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&pool).await.expect("rows")
        }
    }
}

/// Puts the chain back as it was (rows deleted are inserted again, edited ones restored).
async fn restore_rows(app: &TestApp, rows: &[Row]) {
    let mut prev = helpline::store::audit::GENESIS.to_string();
    for (seq, id, hash, _, at, actor, action, target, detail, source) in rows {
        let q = |v: &Option<String>| v.as_ref().map_or("NULL".to_string(), |s| format!("'{s}'"));
        sql_execute(app, &format!("DELETE FROM audit_log WHERE id = '{id}'")).await;
        sql_execute(
            app,
            &format!(
                "INSERT INTO audit_log (id, at, actor, action, target, detail, source, seq, prev_hash, hash)
             VALUES ('{id}', {at}, '{actor}', '{action}', {}, {}, {}, {seq}, '{prev}', '{hash}')",
                q(target),
                q(detail),
                q(source)
            ),
        )
        .await;
        prev = hash.clone();
    }
}

async fn a_tampered_ciphertext_is_a_clear_error(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    let token = app.login("ana").await;
    let mut cases = Vec::new();
    for i in 0..2 {
        let contact = chat(&app, "ana", &format!("hello {i}"), "hi").await;
        let (status, case) = call(&app, &token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact}))).await;
        assert_eq!(status, 201, "{case}");
        cases.push(case["id"].as_str().or(case["case"]["id"].as_str()).expect("case").to_string());
    }
    for (i, case) in cases.iter().enumerate() {
        let person = json!({"full_name": format!("Person {i}")});
        assert_eq!(call(&app, &token, "PUT", &format!("/api/v1/cases/{case}/person"), Some(person)).await.0, 204);
    }
    // A sealed name moved to another case's row does not open there.
    let first = sql_text(&app, &format!("SELECT full_name FROM case_people WHERE case_id = '{}'", cases[0])).await;
    sql_execute(&app, &format!("UPDATE case_people SET full_name = '{first}' WHERE case_id = '{}'", cases[1])).await;
    let (status, body) = call(&app, &token, "GET", &format!("/api/v1/cases/{}/person", cases[1]), None).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "internal", "a stable code, no detail: {body}");
    // One altered character: the same.
    let mut altered = first.into_bytes();
    let at = altered.len() - 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    sql_execute(&app, &format!("UPDATE case_people SET full_name = '{altered}' WHERE case_id = '{}'", cases[0])).await;
    assert_eq!(call(&app, &token, "GET", &format!("/api/v1/cases/{}/person", cases[0]), None).await.0, 500);
    let err = app.store.cases().case_person(&cases[0]).await.expect_err("does not open");
    assert!(err.to_string().contains("does not open"), "{err}");
    // The server goes on serving.
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.expect("me");
    assert_eq!(res.status(), 200);
}

async fn existing_rows_are_sealed_by_the_migration(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    let _ = ana;
    // Rows written in clear, as before sealing existed, and the columns not yet sealed.
    let contact = crate::helpers::stored_contact(&app.store).await;
    for chunk in 0..4 {
        let rows: Vec<String> = (chunk * 300 + 1..=chunk * 300 + 300)
            .map(|seq| format!("('{contact}', {seq}, 'caller', NULL, 'c{seq}', 'clear text {seq}', {seq})"))
            .collect();
        sql_execute(
            &app,
            &format!("INSERT INTO messages (contact_id, seq, sender, sender_id, client_id, body, at) VALUES {}", rows.join(", ")),
        )
        .await;
    }
    sql_execute(&app, &format!(
        "INSERT INTO contact_forms (contact_id, helpline, counsellor_id, data, risk, status, updated_at)
         SELECT '{contact}', 'children', id, '{{\"summary\":\"clear summary\",\"categories\":[\"bullying\"]}}', NULL, 'draft', 1 FROM users WHERE username = 'ana'")).await;
    sql_execute(&app, "DELETE FROM key_checks WHERE name LIKE 'sealed:%'").await;
    app.store.migrate().await.expect("the migration seals them");
    assert_eq!(raw_count(&app.db.url, "SELECT COUNT(*) FROM messages WHERE body NOT LIKE 'hl1.%'").await, 0);
    let data = sql_text(&app, &format!("SELECT data FROM contact_forms WHERE contact_id = '{contact}'")).await;
    assert!(!data.contains("clear summary") && data.contains("bullying"), "{data}");
    let history = app.store.messages().messages_after(&contact, 1198).await.expect("history");
    assert_eq!(history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["clear text 1199", "clear text 1200"]);
    let form = app.store.forms().form(&contact).await.expect("form").expect("there");
    assert!(form.data.contains("clear summary"));
    // Once: a second start seals nothing again (and changes nothing).
    let before = sql_text(&app, &format!("SELECT body FROM messages WHERE contact_id = '{contact}' AND seq = 7")).await;
    app.store.migrate().await.expect("again");
    assert_eq!(sql_text(&app, &format!("SELECT body FROM messages WHERE contact_id = '{contact}' AND seq = 7")).await, before);
}

/// A PostgreSQL node without a key file does not start, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_node_without_a_key_file_refuses_to_start() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    // The same database under a URL this process knows no key file for.
    let url = format!("{}?application_name=no-key-file", db.url);
    let settings = helpline::app::Settings::for_database(url);
    let err = helpline::app::Application::build(settings).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("key file") && text.contains("HELPLINE_KEY_FILE"), "{text}");
}

//! schemathesis (from PyPI) against the running server, on both backends: every operation of
//! `GET /api/v1/openapi.json` is called with requests generated from its description (the boundary
//! values of each rule, random ones, and sequences that follow one answer's ids into the next call),
//! as an admin, and the run fails on any server error, any answer its schema does not describe, any
//! schema-valid request refused or any schema-violating one accepted. The rules a JSON Schema cannot
//! state are in `tests/schemathesis.toml`, per operation, with why.
//!
//! The sockets (`/ws/…`) are WebSocket upgrades, not request and answer: their frames are in
//! `docs/protocol.md` and tested by the socket tests. `POST /api/v1/auth/logout` and `POST
//! /api/v1/users/{username}/password` are left out because they end the run's own session (the run
//! finds its own username in `GET /api/v1/me`, and a new password rightly signs it out everywhere);
//! `tests/it/logins.rs` and `tests/it/admin.rs` test them.
//!
//! `.ci/run` installs schemathesis in `.ci/venv`; `SCHEMATHESIS` names another binary. Without it the
//! test prints `SKIPPED: …` and passes, except in CI (`CI` set), where it fails.

use std::path::PathBuf;

use helpline::store::users::Role;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

/// The schemathesis binary: `$SCHEMATHESIS`, `.ci/venv/bin/schemathesis`, or one on the PATH.
fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/schemathesis");
    if venv.exists() {
        return Some(venv);
    }
    let on_path =
        std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("schemathesis")).find(|p| p.exists()));
    if on_path.is_none() {
        assert!(std::env::var_os("CI").is_none(), "schemathesis is missing: .ci/run installs it in .ci/venv");
        eprintln!("SKIPPED: schemathesis run (not found; python3 -m venv .ci/venv && .ci/venv/bin/pip install schemathesis)");
    }
    on_path
}

async fn the_server_answers_as_its_document_says(backend: Backend) {
    let Some(program) = schemathesis() else { return };
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("admin", Role::Admin, &[], &["en"], 1).await;
    let token = app.login("admin").await;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    // Its own working directory: schemathesis keeps an example database in `.hypothesis` there.
    let scratch = tempfile::tempdir().expect("scratch directory");
    let out = tokio::process::Command::new(&program)
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config)
        .args(["run", &app.url("/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", "10", "--generation-deterministic"])
        // No text may hold U+0000 (refused at the door with `bad_field`, a rule of every string).
        .args(["--generation-allow-x00", "false"])
        .args(["--exclude-path-regex", "^/ws/|^/api/v1/auth/logout$|^/api/v1/users/\\{username\\}/password$"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found the server and its OpenAPI document disagreeing:\n{printed}");
    // It did test: the summary counts the operations (not an empty run that passes by testing nothing).
    let tested = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no operation count in schemathesis's summary:\n{printed}"));
    assert!(tested >= 80, "schemathesis tested only {tested} operations:\n{printed}");
}

on_both_backends!(the_server_answers_as_its_document_says);

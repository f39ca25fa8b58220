//! A helpline's waiting settings without SQL (issue 22): wrap-up limit, away reasons and triage
//! question read and set over REST by admins and the helpline's supervisors (checked, audited), taken
//! by the running router at once; and the same from the command line.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{call, until, Backend, TestApp, TestDb};

crate::on_both_backends!(settings_are_read_and_set_by_scope_checked_audited_and_live, settings_from_the_command_line);

const PATH: &str = "/api/v1/helplines/children/settings";

async fn settings_are_read_and_set_by_scope_checked_audited_and_live(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 1).await;
    let (root, petru, maria, ana_token) =
        (app.login("root").await, app.login("petru").await, app.login("maria").await, app.login("ana").await);
    // The defaults, for the helpline's supervisor; not for another helpline's, nor a counsellor.
    let (status, body) = call(&app, &petru, "GET", PATH, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"helpline": "children", "wrapup_limit_ms": 60000, "away_reasons": ["break", "training", "supervision", "admin"],
            "triage_priority": null})
    );
    assert_eq!(call(&app, &maria, "GET", PATH, None).await.0, 403);
    assert_eq!(call(&app, &ana_token, "GET", PATH, None).await.0, 403);
    assert_eq!(call(&app, &root, "GET", "/api/v1/helplines/nowhere/settings", None).await.0, 404);
    let good = json!({"wrapup_limit_ms": 0, "away_reasons": ["break", "lunch"], "triage_priority": 90});
    // Only the helpline's supervisors and admins may set them; refusals are audited.
    assert_eq!(call(&app, &maria, "PUT", PATH, Some(good.clone())).await.0, 403);
    assert_eq!(call(&app, &ana_token, "PUT", PATH, Some(good.clone())).await.0, 403);
    // Bad values: 422 with a stable code and the field named; not JSON of the settings: 400.
    for (bad, field) in [
        (json!({"wrapup_limit_ms": -5, "away_reasons": ["break"], "triage_priority": null}), "wrapup_limit_ms"),
        (json!({"wrapup_limit_ms": 7_200_000, "away_reasons": ["break"], "triage_priority": null}), "wrapup_limit_ms"),
        (json!({"wrapup_limit_ms": 0, "away_reasons": [], "triage_priority": null}), "away_reasons"),
        (json!({"wrapup_limit_ms": 0, "away_reasons": ["Coffee break"], "triage_priority": null}), "away_reasons"),
        (json!({"wrapup_limit_ms": 0, "away_reasons": ["break", "break"], "triage_priority": null}), "away_reasons"),
        (json!({"wrapup_limit_ms": 0, "away_reasons": ["missed_offers"], "triage_priority": null}), "away_reasons"),
        (json!({"wrapup_limit_ms": 0, "away_reasons": ["break"], "triage_priority": 0}), "triage_priority"),
        (json!({"wrapup_limit_ms": 0, "away_reasons": ["break"], "triage_priority": 500}), "triage_priority"),
    ] {
        let (status, body) = call(&app, &petru, "PUT", PATH, Some(bad.clone())).await;
        assert_eq!((status, body["code"].as_str()), (422, Some("invalid_settings")), "{bad}: {body}");
        assert!(body["message"].as_str().unwrap_or("").starts_with(field), "{bad}: {body}");
    }
    for bad in [
        json!({"wrapup_limit_ms": 0}),
        json!({"wrapup_limit_ms": "60", "away_reasons": ["break"], "triage_priority": null}),
        json!({"wrapup_limit_ms": 0, "away_reasons": ["break"], "triage_priority": null, "colour": "red"}),
    ] {
        let (status, body) = call(&app, &petru, "PUT", PATH, Some(bad.clone())).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_field")), "{bad}: {body}");
    }
    let (status, body) = call(&app, &root, "GET", PATH, None).await;
    assert_eq!((status, &body["wrapup_limit_ms"]), (200, &json!(60000)), "nothing changed: {body}");
    // Ana is on shift under the old settings.
    let mut ana = app.available_agent("ana").await;
    // Petru sets them; they are stored, audited, and the router has them at once.
    let (status, body) = call(&app, &petru, "PUT", PATH, Some(good.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["away_reasons"], json!(["break", "lunch"]));
    let (_, read) = call(&app, &root, "GET", PATH, None).await;
    assert_eq!((&read["wrapup_limit_ms"], &read["triage_priority"]), (&json!(0), &json!(90)), "{read}");
    let (_, audit) = call(&app, &root, "GET", "/api/v1/audit?target=children", None).await;
    let audit = audit.to_string();
    assert!(audit.contains("helpline_settings_set") && audit.contains("helpline_settings_set_denied"), "{audit}");
    // The widget asks the triage question now.
    let helplines: Value = app.http.get(app.url("/api/v1/helplines")).send().await.unwrap().json().await.unwrap();
    let children = helplines.as_array().unwrap().iter().find(|h| h["name"] == "children").unwrap();
    assert_eq!(children["triage"], true, "{helplines}");
    // The new away reasons: "lunch" is taken, "training" no longer.
    ana.send(json!({"type": "status", "status": "away", "reason": "training"})).await;
    assert_eq!(until(&mut ana, "error", &[]).await["code"], "unknown_away_reason");
    ana.send(json!({"type": "status", "status": "away", "reason": "lunch"})).await;
    assert_eq!(until(&mut ana, "status", &[]).await["reason"], "lunch");
    ana.send(json!({"type": "status", "status": "available"})).await;
    until(&mut ana, "status", &[]).await;
    // No wrap-up any more: when her only conversation ends, the waiting chat is offered at once.
    let mut first = app.caller().await;
    first.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let offer = until(&mut ana, "offer", &[]).await;
    let id = offer["contact_id"].as_str().unwrap().to_string();
    ana.send(json!({"type": "accept", "contact_id": id})).await;
    until(&mut ana, "assigned", &[]).await;
    let mut second = app.caller().await;
    second.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = until(&mut second, "queued", &[]).await;
    // Her triage yes is taken (children asks now): the helpline's supervisor is alerted.
    let mut board = crate::waiting::watching(&app, "petru").await;
    second.send(json!({"type": "triage", "answer": "yes"})).await;
    let alert = crate::supervisor::until(&mut board, "alert", |a| a["kind"] == "danger").await;
    assert_eq!(alert["contact_id"], queued["contact_id"]);
    ana.send(json!({"type": "end", "contact_id": id})).await;
    let offer = until(&mut ana, "offer", &["contact_ended"]).await;
    assert_eq!(offer["contact_id"], queued["contact_id"], "no wrap-up before the next offer");
    let events = app.store.contacts().contact_events(&id).await.unwrap();
    assert!(!events.iter().any(|e| e.kind == "wrap_up"), "{events:?}");
}

async fn settings_from_the_command_line(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        use crate::cli::helpline;
        let text = |o: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        let m = helpline(&url, &["migrate"], None);
        assert!(m.status.success(), "{}", text(&m));
        let show = helpline(&url, &["settings", "show", "children"], None);
        assert!(show.status.success(), "{}", text(&show));
        assert!(text(&show).contains("wrap-up: at most 60 s") && text(&show).contains("triage question: not asked"), "{}", text(&show));
        let set = helpline(
            &url,
            &[
                "settings",
                "set",
                "children",
                "--wrapup-limit-s",
                "90",
                "--away-reason",
                "break",
                "--away-reason",
                "peer_support",
                "--triage-priority",
                "90",
            ],
            None,
        );
        assert!(set.status.success(), "{}", text(&set));
        let shown = text(&helpline(&url, &["settings", "show", "children"], None));
        assert!(shown.contains("at most 90 s") && shown.contains("break, peer_support") && shown.contains("priority 90"), "{shown}");
        // Only what is given changes; bad values are refused with the field named, and nothing changes.
        let off = helpline(&url, &["settings", "set", "children", "--no-triage"], None);
        assert!(off.status.success(), "{}", text(&off));
        let shown = text(&helpline(&url, &["settings", "show", "children"], None));
        assert!(shown.contains("at most 90 s") && shown.contains("not asked"), "{shown}");
        for bad in [&["--wrapup-limit-s", "7200"][..], &["--away-reason", "Nap Time"], &["--triage-priority", "0"]] {
            let mut args = vec!["settings", "set", "children"];
            args.extend_from_slice(bad);
            let o = helpline(&url, &args, None);
            assert!(!o.status.success(), "{bad:?}: {}", text(&o));
            assert!(
                text(&o).contains("wrapup_limit_ms") || text(&o).contains("away_reasons") || text(&o).contains("triage_priority"),
                "{}",
                text(&o)
            );
        }
        let o = helpline(&url, &["settings", "set", "nowhere", "--no-triage"], None);
        assert!(!o.status.success() && text(&o).contains("unknown helpline"), "{}", text(&o));
        assert_eq!(text(&helpline(&url, &["settings", "show", "children"], None)), shown, "the refused changes changed nothing");
    })
    .await
    .expect("cli");
    drop(db);
}

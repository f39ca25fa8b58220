//! Escalation and casework over the real server: a live escalation to an emergency placement and its case deadline, the race for the last place, contact forms, and every role against every object kind with the audit log checked.

use helpline::store::audit::AuditQuery;
use helpline::store::contacts::{Change, NewContactRecord};
use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{add_user, call, Backend, TestApp, Ws, FRAME_TIMEOUT};
use crate::supervisor::supervisor;

crate::on_both_backends!(
    live_escalation_to_placement_and_overdue_case,
    race_for_the_last_place,
    contact_form_drafts_and_required_fields,
    access_every_role_every_object,
    stage_deadlines_per_helpline,
    imminent_risk_during_a_live_conversation,
    open_without_a_contact,
    case_entries_and_their_refusals,
    stage_forms_as_data,
    tasks_with_due_dates,
    transfer_and_approvals,
    casework_report
);

const DAY_MS: i64 = 86_400_000;

/// Reads frames until one of `kind` matching `pred` (anything else is skipped: boards, other alerts).
async fn frame(ws: &mut Ws, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no {kind} frame in time");
        let v = ws.recv().await;
        if v["type"] == kind && pred(&v) {
            return v;
        }
    }
}

/// True if a frame of `kind` arrives within `ms` (other frames skipped).
async fn arrives(ws: &mut Ws, kind: &str, ms: u64) -> bool {
    tokio::time::timeout(std::time::Duration::from_millis(ms), frame(ws, kind, |_| true)).await.is_ok()
}

pub(crate) async fn user_id(app: &TestApp, username: &str) -> String {
    app.store.accounts().user_with_hash(username).await.unwrap().unwrap().0.id
}

pub(crate) async fn case_manager(app: &TestApp, username: &str, districts: &[&str]) -> String {
    let id = add_user(&app.store, username, Role::CaseManager, &[], &[], &["ro"], 1).await;
    let districts: Vec<String> = districts.iter().map(|d| d.to_string()).collect();
    app.store.accounts().set_user_districts(&id, &districts).await.unwrap();
    id
}

/// A contact handled (answered, then ended) by `counsellor`, written straight to the store.
pub(crate) async fn handled_contact(app: &TestApp, helpline: &str, counsellor: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = app.clock.now_ms();
    let new = NewContactRecord {
        id: id.clone(),
        channel: "chat".into(),
        helpline: helpline.into(),
        language: "ro".into(),
        priority: 0,
        resume_token_hash: format!("hash-{id}"),
        queued_at: now,
    };
    app.store.contacts().create_contact(&new).await.unwrap();
    let changes = [
        Change::Assigned { contact: id.clone(), counsellor: counsellor.into(), at: now },
        Change::Ended { contact: id.clone(), at: now + 1, reason: "counsellor_ended", abandoned: false },
    ];
    app.store.contacts().apply_changes(&changes).await.unwrap();
    id
}

/// Adds a service as the admin; returns its id.
pub(crate) async fn service(
    app: &TestApp,
    admin: &str,
    name: &str,
    kind: &str,
    district: &str,
    capacity: i64,
    helplines: &[&str],
) -> String {
    let body =
        json!({"name": name, "kind": kind, "district": district, "capacity": capacity, "helplines": helplines, "admission_24_7": true});
    let (status, s) = call(app, admin, "POST", "/api/v1/services", Some(body)).await;
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_string()
}

async fn in_use(app: &TestApp, id: &str) -> i64 {
    app.store.placements().service(id).await.unwrap().unwrap().in_use
}

async fn live_escalation_to_placement_and_overdue_case(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let admin = app.login("root").await;
    let cahul = service(&app, &admin, "Centrul Cahul", "family_violence_centre", "Cahul", 2, &["family_violence"]).await;
    let chisinau = service(&app, &admin, "Centrul Chișinău", "family_violence_centre", "Chișinău", 5, &["family_violence"]).await;
    let children_only = service(&app, &admin, "Casa Cahul", "community_home_children", "Cahul", 5, &["children"]).await;

    let mut maria = supervisor(&app, "maria").await;
    let mut petru = supervisor(&app, "petru").await;
    frame(&mut maria, "dashboard", |_| true).await;
    frame(&mut petru, "dashboard", |_| true).await;

    // A live chat: the caller writes, Ana answers.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    let mut ana = app.available_agent("ana").await;
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;

    // Ion may not escalate Ana's contact.
    let mut ion = app.available_agent("ion").await;
    ion.send(json!({"type": "escalate", "contact_id": contact, "kind": "emergency_placement", "risk": "high", "reason": "x"})).await;
    let refused = ion.expect("error").await;
    assert_eq!((refused["code"].as_str(), refused["ref"].as_str()), (Some("unknown_contact"), Some(contact.as_str())));

    // Ana escalates to emergency placement: suggestions fit, the person's district first.
    ana.send(json!({"type": "escalate", "contact_id": contact, "kind": "emergency_placement", "risk": "high",
                    "reason": "she cannot go home tonight with two children", "district": "Cahul"}))
        .await;
    let escalated = ana.expect("escalated").await;
    let escalation = escalated["escalation_id"].as_str().unwrap().to_string();
    let suggested: Vec<&str> = escalated["suggestions"].as_array().unwrap().iter().map(|s| s["service_id"].as_str().unwrap()).collect();
    assert_eq!(suggested, [cahul.as_str(), chisinau.as_str()], "fitting services, Cahul first, never the children's home {children_only}");

    // The helpline's supervisor is alerted at once; the children's supervisor is not.
    let alert = frame(&mut maria, "escalation", |_| true).await;
    assert_eq!((alert["escalation_id"].as_str(), alert["contact_id"].as_str()), (Some(escalation.as_str()), Some(contact.as_str())));
    assert_eq!(
        (alert["kind"].as_str(), alert["risk"].as_str(), alert["everyone"].as_bool()),
        (Some("emergency_placement"), Some("high"), Some(false))
    );
    // Names, not codes, for a wall: the helpline's and the counsellor's display names.
    assert_eq!(
        (alert["helpline_name"].as_str(), alert["counsellor_name"].as_str()),
        (Some("Helpline for victims of family violence and violence against women"), Some("ana display")),
        "{alert}"
    );
    assert!(!arrives(&mut petru, "escalation", 300).await, "only the helpline's supervisors at first");

    // A place is reserved in the first suggestion: the case opens, linked, due 3 days later, assigned by district.
    let ana_token = app.login("ana").await;
    let (status, placed) =
        call(&app, &ana_token, "POST", "/api/v1/placements", Some(json!({"service_id": suggested[0], "escalation_id": escalation}))).await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["placement"]["status"], "requested");
    let case = &placed["case"];
    let number = case["number"].as_str().unwrap();
    assert!(number.starts_with("FV-") && number.ends_with("-000001"), "{number}");
    let placed_at = placed["placement"]["created_at"].as_i64().unwrap();
    assert_eq!(case["due_at_ms"].as_i64(), Some(placed_at + 3 * DAY_MS));
    assert_eq!((case["due_what"].as_str(), case["case_manager_id"].as_str()), (Some("case_file"), Some(vera.as_str())));
    let case_id = case["id"].as_str().unwrap().to_string();
    let (_, full) = call(&app, &ana_token, "GET", &format!("/api/v1/cases/{case_id}"), None).await;
    assert_eq!(full["contacts"], json!([contact]));
    assert_eq!(full["placements"][0]["escalation_id"], escalation.as_str());
    assert_eq!(in_use(&app, &cahul).await, 1);

    // Not overdue yet; then the clock passes the deadline.
    // (Access tokens expire by the server's clock: after days pass, everyone logs in again.)
    let maria_token = app.login("maria").await;
    let listed = |v: &Value| v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(listed(&call(&app, &maria_token, "GET", "/api/v1/cases?due=overdue", None).await.1).is_empty());
    app.clock.advance(2 * DAY_MS + 12 * 3_600_000);
    let vera_token = app.login("vera").await;
    assert_eq!(listed(&call(&app, &vera_token, "GET", "/api/v1/cases?due=24h", None).await.1), [case_id.as_str()], "due within 24 h");
    app.clock.advance(DAY_MS);
    let (maria_token, vera_token, petru_token) = (app.login("maria").await, app.login("vera").await, app.login("petru").await);
    for token in [&maria_token, &vera_token] {
        assert_eq!(listed(&call(&app, token, "GET", "/api/v1/cases?due=overdue", None).await.1), [case_id.as_str()]);
    }
    assert!(
        listed(&call(&app, &petru_token, "GET", "/api/v1/cases?due=overdue", None).await.1).is_empty(),
        "other helplines' supervisors do not see it"
    );

    // Unacknowledged for more than 2 minutes: every supervisor is told.
    let broadcast = frame(&mut petru, "escalation", |a| a["escalation_id"] == escalation.as_str()).await;
    assert_eq!(broadcast["everyone"], true);
    maria.send(json!({"type": "acknowledge", "escalation_id": escalation})).await;
    frame(&mut maria, "done", |d| d["request"] == "acknowledge" && d["ref"] == escalation.as_str()).await;
    let esc = app.store.forms().escalation(&escalation).await.unwrap().unwrap();
    assert_eq!(esc.acknowledged_by.as_deref(), Some(user_id(&app, "maria").await.as_str()));

    // Imminent risk: every supervisor at once, and the contact's priority raised.
    ana.send(
        json!({"type": "escalate", "contact_id": contact, "kind": "emergency_services", "risk": "imminent", "reason": "he is at the door"}),
    )
    .await;
    let imminent = ana.expect("escalated").await;
    assert_eq!(imminent["suggestions"], json!([]));
    let alert = frame(&mut petru, "escalation", |a| a["risk"] == "imminent").await;
    assert_eq!(alert["everyone"], true);
    assert_eq!(app.store.contacts().contact(&contact).await.unwrap().unwrap().priority, 100);
    let audit = app.store.audit_log().audit_for(&contact).await.unwrap();
    assert!(audit.iter().filter(|(_, a)| a == "escalate").count() == 2 && audit.iter().any(|(_, a)| a == "escalate_denied"), "{audit:?}");
}

async fn race_for_the_last_place(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    let ion = add_user(&app.store, "ion", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    let admin = app.login("root").await;
    let last = service(&app, &admin, "Centrul Cahul", "family_violence_centre", "Cahul", 1, &["family_violence"]).await;
    let next = service(&app, &admin, "Centrul Bălți", "family_violence_centre", "Bălți", 3, &["family_violence"]).await;
    let (ana_token, ion_token) = (app.login("ana").await, app.login("ion").await);

    // Two counsellors, eight requests each, all at once, for one place.
    let mut racers = Vec::new();
    for i in 0..16 {
        let (token, who) = if i % 2 == 0 { (ana_token.clone(), ana.clone()) } else { (ion_token.clone(), ion.clone()) };
        let contact = handled_contact(&app, "family_violence", &who).await;
        let body = json!({"service_id": last, "contact_id": contact, "district": "Cahul"});
        let (http, url) = (app.http.clone(), app.url("/api/v1/placements"));
        racers.push(tokio::spawn(async move {
            let res = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }));
    }
    let mut won = 0;
    for r in racers {
        let (status, body) = r.await.unwrap();
        match status {
            201 => won += 1,
            409 => {
                assert_eq!(body["code"], "service_full", "{body}");
                assert_eq!(body["next_suggestion"]["service_id"], next.as_str(), "the loser gets the next suggestion");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won, 1, "exactly one reservation wins the last place");
    assert_eq!(in_use(&app, &last).await, 1, "capacity never exceeded");

    // Leaving frees the place; a full service refuses with nothing written.
    let winner = app.store.audit_log().audit_lines(&AuditQuery { limit: 1000, ..Default::default() }).await.unwrap();
    let placement = winner.iter().find(|l| l.action == "placement_reserve").unwrap().target.clone().unwrap();
    let token = if winner.iter().any(|l| l.action == "placement_reserve" && l.actor == ana) { &ana_token } else { &ion_token };
    let (status, p) = call(&app, token, "POST", &format!("/api/v1/placements/{placement}/status"), Some(json!({"status": "left"}))).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("conflict")), "requested → left is not allowed: {p}");
    assert_eq!(p["allowed"], json!(["admitted", "cancelled"]));
    for status in ["admitted", "left"] {
        let (code, p) = call(&app, token, "POST", &format!("/api/v1/placements/{placement}/status"), Some(json!({"status": status}))).await;
        assert_eq!((code, p["status"].as_str()), (200, Some(status)));
    }
    assert_eq!(in_use(&app, &last).await, 0, "leaving frees the place");
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (status, _) = call(&app, &ana_token, "POST", "/api/v1/placements", Some(json!({"service_id": last, "contact_id": contact}))).await;
    assert_eq!(status, 201);

    // A service the helpline may not use: refused with the reason, nothing written.
    let children = service(&app, &admin, "Casa", "community_home_children", "Cahul", 5, &["children"]).await;
    let (status, body) =
        call(&app, &ana_token, "POST", "/api/v1/placements", Some(json!({"service_id": children, "contact_id": contact}))).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_allowed")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("family_violence"));
    assert_eq!(in_use(&app, &children).await, 0);
}

async fn contact_form_drafts_and_required_fields(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    let mut maria = supervisor(&app, "maria").await;
    let token = app.login("ana").await;
    let (status, taxonomy) = call(&app, &token, "GET", "/api/v1/helplines/family_violence/taxonomy", None).await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = taxonomy["categories"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"violence.family") && codes.contains(&"violence.economic") && !codes.contains(&"violence.child_labour"));

    // The chat ended; its wrap-up stays open until the form is submitted.
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (_, open) = call(&app, &token, "GET", "/api/v1/contact-forms/incomplete", None).await;
    assert_eq!(open["contacts"], json!([contact]));

    // Submitting an empty form names every missing field; an unknown category is named too.
    let path = format!("/api/v1/contacts/{contact}/form");
    let (status, err) = call(&app, &token, "PUT", &path, Some(json!({"draft": false, "form": {}}))).await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_form")));
    let fields: Vec<&str> = err["fields"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["age_group", "caller_type", "categories", "gender", "outcome", "risk", "summary"]);
    let (status, err) =
        call(&app, &token, "PUT", &path, Some(json!({"draft": true, "form": {"categories": ["violence.family", "aliens"]}}))).await;
    assert_eq!((status, err["fields"]["categories"].as_str()), (422, Some("unknown: aliens")));

    // A draft is saved as typed and read back (after a reconnect, by any console); imminent risk alerts at once.
    let draft = json!({"caller_type": "person_concerned", "categories": ["violence.family"], "risk": "imminent"});
    let (status, saved) = call(&app, &token, "PUT", &path, Some(json!({"draft": true, "form": draft}))).await;
    assert_eq!((status, saved["status"].as_str()), (200, Some("draft")));
    let alert = frame(&mut maria, "alert", |a| a["kind"] == "risk_imminent").await;
    assert_eq!(alert["contact_id"], contact.as_str());
    let token2 = app.login("ana").await;
    let (_, read) = call(&app, &token2, "GET", &path, None).await;
    assert_eq!((read["status"].as_str(), read["form"]["risk"].as_str()), (Some("draft"), Some("imminent")));
    assert_eq!(read["form"]["categories"], json!(["violence.family"]));

    // Submitted with every required field: the wrap-up closes.
    let full = json!({"caller_type": "person_concerned", "age_group": "25_59", "gender": "female", "district": "Orhei",
                      "categories": ["violence.family"], "summary": "Safety plan made.", "outcome": "escalated", "risk": "high"});
    let (status, done) = call(&app, &token, "PUT", &path, Some(json!({"form": full}))).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("submitted")), "{done}");
    let (_, open) = call(&app, &token, "GET", "/api/v1/contact-forms/incomplete", None).await;
    assert_eq!(open["contacts"], json!([]));
    // A submitted form stays complete: a later "draft" missing fields is refused.
    let (status, _) = call(&app, &token, "PUT", &path, Some(json!({"draft": true, "form": {"risk": "low"}}))).await;
    assert_eq!(status, 422);
    let actions: Vec<String> = app.store.audit_log().audit_for(&contact).await.unwrap().into_iter().map(|(_, a)| a).collect();
    assert_eq!(actions, ["form_draft", "form_read", "form_submit"]);
}

async fn access_every_role_every_object(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    case_manager(&app, "nina", &["Bălți"]).await;
    let admin = app.login("root").await;
    let svc = service(&app, &admin, "Centrul Cahul", "family_violence_centre", "Cahul", 3, &["family_violence"]).await;

    let contact = handled_contact(&app, "family_violence", &ana).await;
    let ana_token = app.login("ana").await;
    let form = json!({"draft": true, "form": {"summary": "first words"}});
    assert_eq!(call(&app, &ana_token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(form)).await.0, 200);
    let (status, placed) =
        call(&app, &ana_token, "POST", "/api/v1/placements", Some(json!({"service_id": svc, "contact_id": contact, "district": "Cahul"})))
            .await;
    assert_eq!(status, 201);
    let placement = placed["placement"]["id"].as_str().unwrap().to_string();
    let case = placed["case"]["id"].as_str().unwrap().to_string();
    assert_eq!(placed["case"]["case_manager_id"], vera.as_str());
    assert_eq!(call(&app, &ana_token, "PUT", &format!("/api/v1/cases/{case}/person"), Some(json!({"full_name": "Elena R."}))).await.0, 204);

    // (path, audit target, audited action) × expected status for ana, ion, vera, nina, maria, petru, root.
    let users = ["ana", "ion", "vera", "nina", "maria", "petru", "root"];
    let form_path = format!("/api/v1/contacts/{contact}/form");
    let case_path = format!("/api/v1/cases/{case}");
    let person_path = format!("/api/v1/cases/{case}/person");
    let placement_path = format!("/api/v1/placements/{placement}");
    let reads: [(&str, &str, &str, [u16; 7]); 5] = [
        (&form_path, &contact, "form_read", [200, 404, 200, 404, 200, 404, 200]),
        (&case_path, &case, "case_read", [200, 404, 200, 404, 200, 404, 200]),
        (&person_path, &case, "case_person_read", [200, 404, 200, 404, 403, 404, 200]),
        (&placement_path, &placement, "placement_read", [200, 404, 200, 404, 200, 404, 200]),
        ("/api/v1/audit", "audit_log", "audit_read", [403, 403, 403, 403, 403, 403, 200]),
    ];
    for (path, target, action, expected) in reads {
        for (username, want) in users.iter().zip(expected) {
            let token = app.login(username).await;
            let (status, body) = call(&app, &token, "GET", path, None).await;
            assert_eq!(status, want, "{username} GET {path}: {body}");
            let audited = if want == 200 { action.to_string() } else { format!("{action}_denied") };
            let actor = user_id(&app, username).await;
            let lines = app
                .store
                .audit_log()
                .audit_lines(&AuditQuery { target: Some(target.to_string()), actor: Some(actor), since: None, limit: 100 })
                .await
                .unwrap();
            assert!(
                lines.iter().any(|l| l.action == audited && l.source.as_deref().is_some_and(|s| s.starts_with("http"))),
                "{username} {path}: no {audited} line in {lines:?}"
            );
        }
    }
    let (status, person) = call(&app, &app.login("vera").await, "GET", &person_path, None).await;
    assert_eq!((status, person["full_name"].as_str()), (200, Some("Elena R.")), "the case manager sees the details");
    let (_, as_supervisor) = call(&app, &app.login("maria").await, "GET", &case_path, None).await;
    assert!(!as_supervisor.to_string().contains("Elena"), "identifying details stay out of the case record");

    // Writes: services (admins), stage changes (case manager, supervisors, admins; in order only).
    for (username, want) in users.iter().zip([403, 403, 403, 403, 403, 403, 201]) {
        let body = json!({"name": "X", "kind": "maternal_centre", "district": "Orhei", "capacity": 1, "helplines": ["family_violence"]});
        let (status, _) = call(&app, &app.login(username).await, "POST", "/api/v1/services", Some(body)).await;
        assert_eq!(status, want, "{username} adds a service");
    }
    // Entries: whoever sees the case writes them; the others get 404 (audited either way).
    let entries_path = format!("/api/v1/cases/{case}/entries");
    for (username, want) in users.iter().zip([201, 404, 201, 404, 201, 404, 201]) {
        let (status, body) =
            call(&app, &app.login(username).await, "POST", &entries_path, Some(json!({"kind": "note", "body": {"text": "seen"}}))).await;
        assert_eq!(status, want, "{username} adds an entry: {body}");
        let audited = if want == 201 { "case_entry" } else { "case_entry_denied" };
        let actor = user_id(&app, username).await;
        let lines = app
            .store
            .audit_log()
            .audit_lines(&AuditQuery { target: Some(case.clone()), actor: Some(actor), since: None, limit: 100 })
            .await
            .unwrap();
        assert!(lines.iter().any(|l| l.action == audited), "{username}: no {audited} in {lines:?}");
    }
    let stage_path = format!("/api/v1/cases/{case}/stage");
    for (username, want) in [("ion", 404), ("nina", 404), ("petru", 404), ("ana", 403), ("vera", 200)] {
        let (status, body) =
            call(&app, &app.login(username).await, "POST", &stage_path, Some(json!({"stage": "initial_assessment"}))).await;
        assert_eq!(status, want, "{username} moves the case: {body}");
    }
    let (status, body) = call(&app, &app.login("maria").await, "POST", &stage_path, Some(json!({"stage": "monitoring"}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("stage_order")));
    assert_eq!(body["allowed"], json!(["comprehensive_assessment", "closed"]));
    let actions: Vec<(String, String)> = app.store.audit_log().audit_for(&case).await.unwrap();
    assert!(actions.contains(&(vera.clone(), "case_stage".into())), "{actions:?}");
    assert!(actions.contains(&(ana.clone(), "case_stage_denied".into())));

    // The admin reads the audit log over HTTP: every access to the case is there.
    let (_, log) = call(&app, &admin, "GET", &format!("/api/v1/audit?target={case}&limit=500"), None).await;
    let lines = log["lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l["action"] == "case_open" && l["actor"] == ana.as_str()));
    assert!(lines.iter().all(|l| l["source"].as_str().is_some_and(|s| s.starts_with("http"))));
}

/// A helpline's case stage deadlines: the defaults, admins change them over REST (others refused,
/// bad values named), a stage change sets the next deadline from them, and the due lists follow.
async fn stage_deadlines_per_helpline(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    let (admin, maria, ana_token) = (app.login("root").await, app.login("maria").await, app.login("ana").await);
    let days = |v: &Value| -> Vec<(String, f64)> {
        v["stages"].as_array().unwrap().iter().map(|s| (s["stage"].as_str().unwrap().to_string(), s["days"].as_f64().unwrap())).collect()
    };
    let path = "/api/v1/helplines/family_violence/case-deadlines";
    let (status, defaults) = call(&app, &maria, "GET", path, None).await;
    assert_eq!(status, 200, "{defaults}");
    let expected: Vec<(String, f64)> =
        [("open", 3.0), ("initial_assessment", 3.0), ("comprehensive_assessment", 30.0), ("intervention_plan", 7.0), ("monitoring", 90.0)]
            .iter()
            .map(|(s, d)| (s.to_string(), *d))
            .collect();
    assert_eq!(days(&defaults), expected);
    assert_eq!(defaults["stages"][0]["due"], "case_file");

    // Only admins change them; bad stages and values are named; nothing changes on a refusal.
    let change = json!({"days": {"initial_assessment": 5, "monitoring": 60}});
    for token in [&maria, &ana_token] {
        assert_eq!(call(&app, token, "PUT", path, Some(change.clone())).await.0, 403);
    }
    for (bad, word) in [
        (json!({"days": {"closed": 2}}), "closed"),
        (json!({"days": {"planning": 2}}), "planning"),
        (json!({"days": {"monitoring": 0}}), "monitoring"),
    ] {
        let (status, err) = call(&app, &admin, "PUT", path, Some(bad)).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("bad_field")), "{err}");
        assert!(err["message"].as_str().unwrap().contains(word), "{err}");
    }
    assert_eq!(call(&app, &admin, "PUT", "/api/v1/helplines/nowhere/case-deadlines", Some(change.clone())).await.0, 404);
    assert_eq!(days(&call(&app, &admin, "GET", path, None).await.1), expected);
    let (status, set) = call(&app, &admin, "PUT", path, Some(change)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(days(&set)[1], ("initial_assessment".to_string(), 5.0));
    assert_eq!(days(&set)[4], ("monitoring".to_string(), 60.0));
    let (_, children) = call(&app, &admin, "GET", "/api/v1/helplines/children/case-deadlines", None).await;
    assert_eq!(days(&children), expected, "other helplines keep the defaults");
    let audit = app.store.audit_log().audit_for("family_violence").await.unwrap();
    assert!(
        audit.iter().any(|(_, a)| a == "case_deadlines_set") && audit.iter().filter(|(_, a)| a == "case_deadlines_set_denied").count() == 2,
        "{audit:?}"
    );

    // A case opened by hand: the case file is due in 3 days; its next stage in 5 (the new setting).
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (status, case) = call(&app, &ana_token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact}))).await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_string();
    assert_eq!(case["due_at_ms"].as_i64().unwrap() - case["opened_at_ms"].as_i64().unwrap(), 3 * DAY_MS);
    app.clock.advance(DAY_MS);
    // (Access tokens expire by the server's clock: after time passes, everyone logs in again.)
    let maria = app.login("maria").await;
    let before = app.clock.now_ms();
    let (status, moved) =
        call(&app, &maria, "POST", &format!("/api/v1/cases/{id}/stage"), Some(json!({"stage": "initial_assessment"}))).await;
    assert_eq!(status, 200, "{moved}");
    let after = app.clock.now_ms();
    assert_eq!(moved["due_what"], "initial_assessment");
    let due = moved["due_at_ms"].as_i64().unwrap();
    assert!((before + 5 * DAY_MS..=after + 5 * DAY_MS).contains(&due), "due {due} is 5 days after the change ({before}..{after})");

    // The due lists follow the new deadline: not due after 3 days (the default would have been), due
    // within 24 h after 4.5, overdue after 5.
    let listed = |v: &Value| v["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    app.clock.advance(3 * DAY_MS + 1);
    let maria = app.login("maria").await;
    assert!(listed(&call(&app, &maria, "GET", "/api/v1/cases?due=overdue", None).await.1).is_empty());
    assert!(listed(&call(&app, &maria, "GET", "/api/v1/cases?due=24h", None).await.1).is_empty());
    app.clock.advance(DAY_MS + DAY_MS / 2);
    let maria = app.login("maria").await;
    assert_eq!(listed(&call(&app, &maria, "GET", "/api/v1/cases?due=24h", None).await.1), [id.as_str()]);
    app.clock.advance(DAY_MS / 2);
    let maria = app.login("maria").await;
    assert_eq!(listed(&call(&app, &maria, "GET", "/api/v1/cases?due=overdue", None).await.1), [id.as_str()]);

    // The case file setting applies to cases opened from then on.
    let (admin, ana_token) = (app.login("root").await, app.login("ana").await);
    assert_eq!(call(&app, &admin, "PUT", path, Some(json!({"days": {"open": 2}}))).await.0, 200);
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (_, case) = call(&app, &ana_token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact}))).await;
    assert_eq!(case["due_at_ms"].as_i64().unwrap() - case["opened_at_ms"].as_i64().unwrap(), 2 * DAY_MS);
}

/// Risk `imminent` on a contact already in conversation (not only a waiting one): the helpline's
/// supervisors are alerted at once, the board marks the conversation, and if it goes back to a queue
/// it goes first.
async fn imminent_risk_during_a_live_conversation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    let mut maria = supervisor(&app, "maria").await;
    frame(&mut maria, "dashboard", |_| true).await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    let mut ana = app.available_agent("ana").await;
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    let ana_id = user_id(&app, "ana").await;
    let marked = |b: &Value| {
        b["counsellors"].as_array().unwrap().iter().any(|c| c["urgent"].as_array().unwrap().iter().any(|u| u == contact.as_str()))
    };
    let board = frame(&mut maria, "dashboard", |b| b["counsellors"].as_array().is_some_and(|c| !c.is_empty())).await;
    assert!(!marked(&board), "nothing marked before");

    // The counsellor sets the risk in the draft while the chat goes on.
    let token = app.login("ana").await;
    let form = json!({"draft": true, "form": {"risk": "imminent", "summary": "he is coming back tonight"}});
    let (status, saved) = call(&app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(form)).await;
    assert_eq!(status, 200, "{saved}");
    let alert = frame(&mut maria, "alert", |a| a["kind"] == "risk_imminent").await;
    assert_eq!((alert["contact_id"].as_str(), alert["counsellor_id"].as_str()), (Some(contact.as_str()), Some(ana_id.as_str())));
    assert_eq!(alert["helpline"], "family_violence");
    let stored = app.store.contacts().contact(&contact).await.unwrap().unwrap();
    assert_eq!((stored.state.as_str(), stored.priority), ("active", 100), "still in conversation, priority raised");
    frame(&mut maria, "dashboard", marked).await;

    // Saving the same risk again does not alert again.
    let form = json!({"draft": true, "form": {"risk": "imminent", "summary": "he is coming back tonight; she is packing"}});
    assert_eq!(call(&app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(form)).await.0, 200);
    assert!(!arrives(&mut maria, "alert", 300).await, "one alert per change to imminent");

    // Transferred back to the queue, it goes ahead of everyone (front, not only transfer priority).
    maria.send(json!({"type": "transfer", "contact_id": contact, "helpline": "family_violence"})).await;
    frame(&mut maria, "done", |d| d["request"] == "transfer").await;
    let board = frame(&mut maria, "dashboard", |b| {
        b["helplines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["waiting"].as_array().unwrap().iter().any(|w| w["contact_id"] == contact.as_str()))
    })
    .await;
    let fv = board["helplines"].as_array().unwrap().iter().find(|h| h["name"] == "family_violence").unwrap();
    assert_eq!(fv["waiting"][0]["priority"], 100, "{fv}");
}

/// `POST /api/v1/cases` without a contact: case managers (who then manage the case) and the
/// helpline's supervisors, with a reason; the same deadlines as a case from a contact; refusals named
/// and audited.
async fn open_without_a_contact(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let nina = case_manager(&app, "nina", &["Orhei"]).await;
    let (vera_token, maria, petru, ana_token) =
        (app.login("vera").await, app.login("maria").await, app.login("petru").await, app.login("ana").await);
    let body = json!({"helpline": "children", "district": "Orhei", "person_label": "Child O.", "reason": "The school reports a boy left alone for days."});

    // A case manager opens one: she manages it (not Orhei's case manager), due in 3 days.
    let (status, case) = call(&app, &vera_token, "POST", "/api/v1/cases", Some(body.clone())).await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_str().unwrap().to_string();
    assert!(case["number"].as_str().unwrap().starts_with("CH-"), "{case}");
    assert_eq!(
        (case["case_manager_id"].as_str(), case["person_label"].as_str(), case["district"].as_str()),
        (Some(vera.as_str()), Some("Child O."), Some("Orhei"))
    );
    assert_eq!((case["stage"].as_str(), case["due_what"].as_str()), (Some("open"), Some("case_file")));
    assert_eq!(case["due_at_ms"].as_i64().unwrap() - case["opened_at_ms"].as_i64().unwrap(), 3 * DAY_MS);
    let (status, file) = call(&app, &vera_token, "GET", &format!("/api/v1/cases/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(file["contacts"], json!([]));
    let reason = file["entries"].as_array().unwrap().iter().find(|e| e["kind"] == "reason").expect("the reason is an entry");
    assert_eq!(reason["body"]["text"], "The school reports a boy left alone for days.");
    // The reason is sealed at rest like every entry.
    let raw = crate::abuse::sql_text(&app, &format!("SELECT body FROM case_entries WHERE case_id = '{id}' AND kind = 'reason'")).await;
    assert!(raw.starts_with("hl1.") && !raw.contains("left alone"), "sealed: {raw}");
    let nina_token = app.login("nina").await;
    assert_eq!(call(&app, &nina_token, "GET", &format!("/api/v1/cases/{id}"), None).await.0, 404, "not Orhei's case manager: {nina}");

    // A supervisor of the helpline opens one: assigned by district (Cahul: Vera).
    let fv = json!({"helpline": "family_violence", "district": "Cahul", "reason": "A neighbour called the police twice."});
    let (status, by_maria) = call(&app, &maria, "POST", "/api/v1/cases", Some(fv.clone())).await;
    assert_eq!(status, 201, "{by_maria}");
    assert_eq!(by_maria["case_manager_id"], vera.as_str());
    assert!(by_maria["person_label"].as_str().unwrap().starts_with("Person FV-"));

    // Refusals: another helpline's supervisor and a counsellor (403, audited), no reason, both or
    // neither of contact and helpline, an unknown helpline, an unknown field, a reason too long.
    for token in [&petru, &ana_token] {
        let (status, err) = call(&app, token, "POST", "/api/v1/cases", Some(fv.clone())).await;
        assert_eq!((status, err["code"].as_str()), (403, Some("forbidden")), "{err}");
    }
    let denied = app.store.audit_log().audit_for("family_violence").await.unwrap();
    assert!(denied.iter().any(|(who, a)| who == &ana && a == "case_open_denied"), "{denied:?}");
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let bad = [
        json!({"helpline": "children"}),
        json!({"helpline": "children", "reason": "   "}),
        json!({"helpline": "children", "contact_id": contact, "reason": "x"}),
        json!({"reason": "x"}),
        json!({"helpline": "children", "reason": "x", "colour": "red"}),
        json!({"helpline": "children", "reason": "x".repeat(4001)}),
        json!({"helpline": "children", "reason": "x", "person_label": "y".repeat(201)}),
    ];
    for b in bad {
        let (status, err) = call(&app, &vera_token, "POST", "/api/v1/cases", Some(b.clone())).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("bad_field")), "{b}: {err}");
    }
    let (status, err) = call(&app, &vera_token, "POST", "/api/v1/cases", Some(json!({"helpline": "nowhere", "reason": "x"}))).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("unknown_helpline")));
    // A case manager still does not open a case from a helpline contact; the counsellor does.
    assert_eq!(call(&app, &vera_token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact}))).await.0, 403);
    let (status, from_contact) =
        call(&app, &ana_token, "POST", "/api/v1/cases", Some(json!({"contact_id": contact, "reason": "safety plan"}))).await;
    assert_eq!(status, 201, "{from_contact}");
    let (_, maria_list) = call(&app, &maria, "GET", "/api/v1/cases", None).await;
    assert_eq!(maria_list["cases"].as_array().unwrap().len(), 2, "the family violence cases: {maria_list}");
    // Search by number: the case for those who see it (any case, spaces around ignored), none for the others.
    let number = case["number"].as_str().unwrap().to_string();
    let search = format!("/api/v1/cases?number=%20{}", number.to_lowercase());
    let (status, found) = call(&app, &vera_token, "GET", &search, None).await;
    assert_eq!((status, found["cases"][0]["id"].as_str()), (200, Some(id.as_str())), "{found}");
    let (status, none) = call(&app, &app.login("nina").await, "GET", &search, None).await;
    assert_eq!((status, none["cases"].as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(call(&app, &vera_token, "GET", "/api/v1/cases?number=", None).await.0, 400);
    let audit = app.store.audit_log().audit_for(&id).await.unwrap();
    assert!(audit.contains(&(vera.clone(), "case_open".into())) && audit.contains(&(vera.clone(), "case_read".into())), "{audit:?}");
    assert!(audit.contains(&(vera.clone(), "case_list".into())), "the search is audited: {audit:?}");
}

/// `POST /api/v1/cases/{id}/entries`: assessments, notes and referrals by whoever sees the case,
/// stamped with its stage and listed in order; every refusal with its code, and audited.
async fn case_entries_and_their_refusals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let vera_token = app.login("vera").await;
    let (_, case) =
        call(&app, &vera_token, "POST", "/api/v1/cases", Some(json!({"helpline": "family_violence", "reason": "self-referral"}))).await;
    let id = case["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{id}/entries");

    let good = [
        json!({"kind": "assessment", "body": {"findings": "Safe at her sister's for now."}}),
        json!({"kind": "note", "body": {"text": "Called the school."}}),
        json!({"kind": "referral", "body": {"service": "legal_aid"}}),
    ];
    let mut ids = Vec::new();
    for b in &good {
        let (status, e) = call(&app, &vera_token, "POST", &path, Some(b.clone())).await;
        assert_eq!(status, 201, "{b}: {e}");
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    let (_, file) = call(&app, &vera_token, "GET", &format!("/api/v1/cases/{id}"), None).await;
    let entries: Vec<(&str, &str)> =
        file["entries"].as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["id"].as_str().unwrap())).collect();
    for (kind, eid) in ["assessment", "note", "referral"].iter().zip(&ids) {
        assert!(entries.contains(&(kind, eid.as_str())), "{entries:?}");
    }
    let assessment = file["entries"].as_array().unwrap().iter().find(|e| e["kind"] == "assessment").unwrap();
    assert_eq!((assessment["body"]["stage"].as_str(), assessment["author_id"].as_str()), (Some("open"), Some(vera.as_str())));

    // Bad entries: named, nothing written.
    let bad = [
        (json!({"kind": "poem", "body": {"text": "x"}}), 400, "bad_field"),
        (json!({"kind": "note", "body": {"findings": "x"}}), 400, "bad_field"),
        (json!({"kind": "note", "body": {"text": "  "}}), 400, "bad_field"),
        (json!({"kind": "assessment", "body": {"findings": 7}}), 400, "bad_field"),
        (json!({"kind": "referral", "body": {"service": "astrology"}}), 400, "bad_field"),
        (json!({"kind": "note"}), 400, "bad_field"),
        (json!({"kind": "note", "body": "text"}), 400, "bad_field"),
        (json!({"kind": "note", "body": {"text": "x".repeat(40 * 1024)}}), 413, "too_large"),
    ];
    for (b, want, code) in bad {
        let (status, err) = call(&app, &vera_token, "POST", &path, Some(b.clone())).await;
        assert_eq!((status, err["code"].as_str()), (want, Some(code)), "{b}: {err}");
    }
    let (_, after) = call(&app, &vera_token, "GET", &format!("/api/v1/cases/{id}"), None).await;
    assert_eq!(after["entries"].as_array().unwrap().len(), file["entries"].as_array().unwrap().len(), "nothing written");

    // Those who do not see the case: 404 as if it did not exist (audited); an unknown case: 404.
    for username in ["ion", "petru", "ana"] {
        let token = app.login(username).await;
        let (status, err) = call(&app, &token, "POST", &path, Some(good[1].clone())).await;
        assert_eq!((status, err["code"].as_str()), (404, Some("not_found")), "{username}: {err}");
    }
    let (status, _) = call(&app, &vera_token, "POST", "/api/v1/cases/no-such-case/entries", Some(good[1].clone())).await;
    assert_eq!(status, 404);
    let audit = app.store.audit_log().audit_for(&id).await.unwrap();
    assert_eq!(audit.iter().filter(|(who, a)| who == &vera && a == "case_entry").count(), 3, "{audit:?}");
    assert!(audit.iter().any(|(who, a)| who == &ana && a == "case_entry_denied"), "{audit:?}");
}

/// The structured content of the stages, as data: the built-in forms; an initial assessment, a plan
/// with two actions and a monitoring visit filled in, every fault named; an admin changes the visit's
/// form and the next visit is checked against the new definition, without a rebuild.
async fn stage_forms_as_data(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    case_manager(&app, "vera", &["Cahul"]).await;
    let (vera, maria, admin) = (app.login("vera").await, app.login("maria").await, app.login("root").await);
    let (status, forms) = call(&app, &vera, "GET", "/api/v1/helplines/family_violence/stage-forms", None).await;
    assert_eq!(status, 200, "{forms}");
    let codes: Vec<&str> = forms["forms"].as_array().unwrap().iter().map(|f| f["form"].as_str().unwrap()).collect();
    assert_eq!(codes, ["initial_assessment", "comprehensive_assessment", "intervention_plan", "monitoring_visit", "closure"]);
    assert_eq!(forms["forms"][3]["fields"][0]["label"]["ro"], "Data vizitei");
    assert_eq!(call(&app, &vera, "GET", "/api/v1/helplines/nowhere/stage-forms", None).await.0, 404);

    // Ana's case from her contact: she sees it but does not fill in its forms; Vera manages it.
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (_, case) =
        call(&app, &app.login("ana").await, "POST", "/api/v1/cases", Some(json!({"contact_id": contact, "district": "Cahul"}))).await;
    let id = case["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{id}/forms");
    let assessment = json!({"form": "initial_assessment", "values": {"situation": "Bruises; the husband threatens her.", "risk": "high"}});
    for (token, want) in [(app.login("ana").await, 403), (app.login("ion").await, 404)] {
        assert_eq!(call(&app, &token, "POST", &path, Some(assessment.clone())).await.0, want);
    }

    // Every fault named at once; then filled in.
    let (status, err) =
        call(&app, &vera, "POST", &path, Some(json!({"form": "initial_assessment", "values": {"risk": "extreme", "mood": "calm"}}))).await;
    assert_eq!((status, err["code"].as_str()), (422, Some("invalid_form")), "{err}");
    assert_eq!(err["fields"], json!({"mood": "unknown field", "risk": "one of low, medium, high", "situation": "required"}));
    assert_eq!(call(&app, &vera, "POST", &path, Some(json!({"form": "horoscope", "values": {}}))).await.0, 400);
    assert_eq!(call(&app, &vera, "POST", &path, Some(assessment)).await.0, 201);
    let plan = json!({"form": "intervention_plan", "values": {"actions": [
        {"goal": "A safe home", "action": "Protection order", "owner": "Vera", "due": "2027-01-15"},
        {"goal": "Income", "action": "Register with the employment agency", "owner": "Elena", "due": "2027-02-01"}]}});
    assert_eq!(call(&app, &maria, "POST", &path, Some(plan)).await.0, 201);
    let visit = json!({"form": "monitoring_visit", "values": {"date": "2027-01-20", "place": "At home, Cahul", "notes": "Calm; the children at school."}});
    assert_eq!(call(&app, &vera, "POST", &path, Some(visit.clone())).await.0, 201);
    let (_, file) = call(&app, &vera, "GET", &format!("/api/v1/cases/{id}"), None).await;
    let filled: Vec<&Value> = file["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "form").collect();
    assert_eq!(filled.len(), 3);
    assert_eq!(filled[1]["body"]["values"]["actions"][1]["owner"], "Elena");
    assert_eq!((filled[2]["body"]["form"].as_str(), filled[2]["body"]["stage"].as_str()), (Some("monitoring_visit"), Some("open")));

    // An admin changes the visit's form for this helpline: the next visit must say whether the children were seen.
    let mut changed = forms["forms"][3].clone();
    changed["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "children_seen", "kind": "choice", "required": true, "options": ["yes", "no"],
        "label": {"en": "Children seen", "ro": "Copiii văzuți", "ru": "Дети осмотрены", "uk": "Дітей оглянуто"}}));
    let form_path = "/api/v1/helplines/family_violence/stage-forms/monitoring_visit";
    assert_eq!(call(&app, &maria, "PUT", form_path, Some(changed.clone())).await.0, 403);
    let mut broken = changed.clone();
    broken["fields"][0]["kind"] = json!("colour");
    let (status, err) = call(&app, &admin, "PUT", form_path, Some(broken)).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_field")), "{err}");
    assert_eq!(
        call(&app, &admin, "PUT", "/api/v1/helplines/family_violence/stage-forms/closure", Some(changed.clone())).await.0,
        400,
        "the code must match"
    );
    assert_eq!(call(&app, &admin, "PUT", form_path, Some(changed)).await.0, 204);
    let (_, now) = call(&app, &vera, "GET", "/api/v1/helplines/family_violence/stage-forms", None).await;
    assert_eq!(now["forms"][3]["fields"][3]["name"], "children_seen");
    let (_, children) = call(&app, &vera, "GET", "/api/v1/helplines/children/stage-forms", None).await;
    assert_eq!(children["forms"][3]["fields"].as_array().unwrap().len(), 3, "other helplines keep theirs");
    let (status, err) = call(&app, &vera, "POST", &path, Some(visit)).await;
    assert_eq!((status, err["fields"]["children_seen"].as_str()), (422, Some("required")), "{err}");
    let visit =
        json!({"form": "monitoring_visit", "values": {"date": "2027-02-20", "place": "School", "notes": "Fine.", "children_seen": "yes"}});
    assert_eq!(call(&app, &vera, "POST", &path, Some(visit)).await.0, 201);
    let audit = app.store.audit_log().audit_for("family_violence").await.unwrap();
    assert!(audit.iter().any(|(_, a)| a == "stage_form_set") && audit.iter().any(|(_, a)| a == "stage_form_set_denied"), "{audit:?}");
}

/// Tasks and follow-ups with due dates: added by the case's managers (for a colleague who sees the
/// case, not for anyone), listed by whoever sees the case, done by their owner; "my tasks" due within
/// 24 hours and overdue as the clock moves; every access audited on the case; titles sealed.
async fn tasks_with_due_dates(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (_, case) =
        call(&app, &app.login("ana").await, "POST", "/api/v1/cases", Some(json!({"contact_id": contact, "district": "Cahul"}))).await;
    let id = case["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{id}/tasks");
    let (vera_token, maria) = (app.login("vera").await, app.login("maria").await);
    let now = app.clock.now_ms();

    // Refusals first: named, nothing written.
    for bad in [
        json!({"title": "  ", "due_at_ms": now + DAY_MS}),
        json!({"title": "x", "due_at_ms": now - 1}),
        json!({"title": "x", "due_at_ms": now + 400 * DAY_MS}),
        json!({"title": "x", "due_at_ms": now + DAY_MS, "owner_id": user_id(&app, "ion").await}),
        json!({"title": "x"}),
    ] {
        let (status, err) = call(&app, &vera_token, "POST", &path, Some(bad.clone())).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("bad_field")), "{bad}: {err}");
    }
    assert_eq!(call(&app, &app.login("ana").await, "POST", &path, Some(json!({"title": "x", "due_at_ms": now + DAY_MS}))).await.0, 403);
    assert_eq!(call(&app, &app.login("ion").await, "POST", &path, Some(json!({"title": "x", "due_at_ms": now + DAY_MS}))).await.0, 404);

    // Vera's follow-up in two days (hers: no owner); Maria gives Ana one (she opened the case) in five.
    let (status, call_school) =
        call(&app, &vera_token, "POST", &path, Some(json!({"title": "Call the school about attendance", "due_at_ms": now + 2 * DAY_MS})))
            .await;
    assert_eq!(status, 201, "{call_school}");
    assert_eq!(
        (call_school["status"].as_str(), call_school["overdue"].as_bool(), call_school["owner_id"].clone()),
        (Some("open"), Some(false), Value::Null)
    );
    let (status, for_ana) = call(
        &app,
        &maria,
        "POST",
        &path,
        Some(json!({"title": "Send Vera the chat summary", "due_at_ms": now + 5 * DAY_MS, "owner_id": ana})),
    )
    .await;
    assert_eq!(status, 201, "{for_ana}");
    let (_, list) = call(&app, &app.login("ana").await, "GET", &path, None).await;
    let titles: Vec<&str> = list["tasks"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Call the school about attendance", "Send Vera the chat summary"], "soonest first");
    assert_eq!(call(&app, &app.login("ion").await, "GET", &path, None).await.0, 404);
    let raw =
        crate::abuse::sql_text(&app, &format!("SELECT title FROM case_tasks WHERE id = '{}'", call_school["id"].as_str().unwrap())).await;
    assert!(raw.starts_with("hl1.") && !raw.contains("school"), "sealed: {raw}");

    // Nothing due yet; a day and a half later Vera's is due within 24 h; after three days it is overdue.
    let mine = |v: &Value| v["tasks"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(mine(&call(&app, &vera_token, "GET", "/api/v1/tasks", None).await.1).is_empty());
    app.clock.advance(DAY_MS + DAY_MS / 2);
    let vera_token = app.login("vera").await;
    assert_eq!(mine(&call(&app, &vera_token, "GET", "/api/v1/tasks?due=24h", None).await.1), ["Call the school about attendance"]);
    assert!(mine(&call(&app, &vera_token, "GET", "/api/v1/tasks?due=overdue", None).await.1).is_empty());
    assert!(mine(&call(&app, &app.login("maria").await, "GET", "/api/v1/tasks", None).await.1).is_empty(), "not Maria's");
    app.clock.advance(DAY_MS + DAY_MS / 2);
    let vera_token = app.login("vera").await;
    let (_, overdue) = call(&app, &vera_token, "GET", "/api/v1/tasks?due=overdue", None).await;
    assert_eq!(
        (overdue["tasks"][0]["title"].as_str(), overdue["tasks"][0]["overdue"].as_bool()),
        (Some("Call the school about attendance"), Some(true))
    );
    assert_eq!(call(&app, &vera_token, "GET", "/api/v1/tasks?due=soon", None).await.0, 400);

    // Done: by the owner (Ana, who does not manage the case) or the case's managers; once.
    let ana_token = app.login("ana").await;
    let school_done = format!("/api/v1/tasks/{}/done", call_school["id"].as_str().unwrap());
    assert_eq!(call(&app, &ana_token, "POST", &school_done, None).await.0, 403, "not hers");
    assert_eq!(call(&app, &app.login("ion").await, "POST", &school_done, None).await.0, 404);
    let (status, done) = call(&app, &vera_token, "POST", &school_done, None).await;
    assert_eq!((status, done["status"].as_str(), done["done_by"].as_str()), (200, Some("done"), Some(vera.as_str())));
    assert_eq!(call(&app, &vera_token, "POST", &school_done, None).await.0, 409);
    let (status, _) = call(&app, &ana_token, "POST", &format!("/api/v1/tasks/{}/done", for_ana["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 200, "the owner marks hers done");
    assert!(mine(&call(&app, &vera_token, "GET", "/api/v1/tasks?due=overdue", None).await.1).is_empty());
    assert_eq!(call(&app, &vera_token, "POST", "/api/v1/tasks/nope/done", None).await.0, 404);
    let audit = app.store.audit_log().audit_for(&id).await.unwrap();
    for action in ["task_add", "task_list", "task_done"] {
        assert!(audit.iter().any(|(_, a)| a == action), "{action}: {audit:?}");
    }
    assert!(audit.iter().any(|(who, a)| who == &ana && a == "task_done_denied"), "{audit:?}");
}

/// A case handed to another case manager, who refuses, then (offered again) accepts it; the
/// supervisor's approval of the plan and of the closure: a case manager moves on only once approved,
/// a returned request needs a comment; supervisors need no approval. Every step audited on the case.
async fn transfer_and_approvals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let nina = case_manager(&app, "nina", &["Bălți"]).await;
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (_, case) =
        call(&app, &app.login("ana").await, "POST", "/api/v1/cases", Some(json!({"contact_id": contact, "district": "Cahul"}))).await;
    let id = case["id"].as_str().unwrap().to_string();
    let (vera_token, nina_token, maria, petru) =
        (app.login("vera").await, app.login("nina").await, app.login("maria").await, app.login("petru").await);

    // Offering the case: the opener may not (403), another helpline's supervisor does not see it (404);
    // only to another enabled case manager.
    let path = format!("/api/v1/cases/{id}/transfers");
    assert_eq!(call(&app, &app.login("ana").await, "POST", &path, Some(json!({"to_user_id": nina}))).await.0, 403);
    assert_eq!(call(&app, &petru, "POST", &path, Some(json!({"to_user_id": nina}))).await.0, 404);
    for to in [vera.clone(), ana.clone(), "nobody".to_string()] {
        assert_eq!(call(&app, &vera_token, "POST", &path, Some(json!({"to_user_id": to}))).await.0, 400, "to {to}");
    }
    let (status, offer) =
        call(&app, &vera_token, "POST", &path, Some(json!({"to_user_id": nina, "note": "Moving to Bălți next week."}))).await;
    assert_eq!(
        (status, offer["status"].as_str(), offer["case_number"].as_str()),
        (201, Some("pending"), case["number"].as_str()),
        "{offer}"
    );
    assert_eq!(call(&app, &vera_token, "POST", &path, Some(json!({"to_user_id": nina}))).await.0, 409, "one pending at a time");
    // Nina sees the offer (not yet the case); Vera cannot decide it for her.
    let (_, offered) = call(&app, &nina_token, "GET", "/api/v1/transfers", None).await;
    assert_eq!(
        (offered["transfers"][0]["id"].as_str(), offered["transfers"][0]["note"].as_str()),
        (offer["id"].as_str(), Some("Moving to Bălți next week."))
    );
    assert_eq!(call(&app, &nina_token, "GET", &format!("/api/v1/cases/{id}"), None).await.0, 404, "not hers until she accepts");
    let decision = format!("/api/v1/transfers/{}/decision", offer["id"].as_str().unwrap());
    assert_eq!(call(&app, &vera_token, "POST", &decision, Some(json!({"decision": "accepted"}))).await.0, 404);
    assert_eq!(call(&app, &nina_token, "POST", &decision, Some(json!({"decision": "maybe"}))).await.0, 400);
    let (status, refused) =
        call(&app, &nina_token, "POST", &decision, Some(json!({"decision": "refused", "comment": "Full caseload."}))).await;
    assert_eq!((status, refused["status"].as_str(), refused["comment"].as_str()), (200, Some("refused"), Some("Full caseload.")));
    assert_eq!(call(&app, &nina_token, "POST", &decision, Some(json!({"decision": "accepted"}))).await.0, 409, "decided already");
    // Offered again (by the supervisor) and accepted: the case is Nina's, no longer Vera's.
    let (_, again) = call(&app, &maria, "POST", &path, Some(json!({"to_user_id": nina}))).await;
    let decision = format!("/api/v1/transfers/{}/decision", again["id"].as_str().unwrap());
    let (status, accepted) = call(&app, &nina_token, "POST", &decision, Some(json!({"decision": "accepted"}))).await;
    assert_eq!((status, accepted["status"].as_str()), (200, Some("accepted")), "{accepted}");
    let (status, now_hers) = call(&app, &nina_token, "GET", &format!("/api/v1/cases/{id}"), None).await;
    assert_eq!((status, now_hers["case"]["case_manager_id"].as_str()), (200, Some(nina.as_str())));
    assert_eq!(call(&app, &vera_token, "GET", &format!("/api/v1/cases/{id}"), None).await.0, 404);
    assert_eq!(call(&app, &nina_token, "GET", "/api/v1/transfers", None).await.1["transfers"], json!([]));

    // Approvals: to the plan's end Nina moves on her own; leaving the plan needs the plan approved.
    let stage = format!("/api/v1/cases/{id}/stage");
    for s in ["initial_assessment", "comprehensive_assessment", "intervention_plan"] {
        assert_eq!(call(&app, &nina_token, "POST", &stage, Some(json!({"stage": s}))).await.0, 200, "{s}");
    }
    let (status, err) = call(&app, &nina_token, "POST", &stage, Some(json!({"stage": "monitoring"}))).await;
    assert_eq!((status, err["code"].as_str(), err["approval_needed"].as_str()), (409, Some("conflict"), Some("plan")), "{err}");
    let approvals = format!("/api/v1/cases/{id}/approvals");
    assert_eq!(call(&app, &nina_token, "POST", &approvals, Some(json!({"kind": "budget"}))).await.0, 400);
    assert_eq!(call(&app, &app.login("ana").await, "POST", &approvals, Some(json!({"kind": "plan"}))).await.0, 403);
    let (status, plan) =
        call(&app, &nina_token, "POST", &approvals, Some(json!({"kind": "plan", "note": "Two actions agreed with her."}))).await;
    assert_eq!((status, plan["status"].as_str()), (201, Some("pending")), "{plan}");
    assert_eq!(call(&app, &nina_token, "POST", &approvals, Some(json!({"kind": "plan"}))).await.0, 409);
    let plan_decision = format!("/api/v1/approvals/{}/decision", plan["id"].as_str().unwrap());
    assert_eq!(call(&app, &nina_token, "POST", &plan_decision, Some(json!({"decision": "approved"}))).await.0, 403, "not her own");
    assert_eq!(call(&app, &petru, "POST", &plan_decision, Some(json!({"decision": "approved"}))).await.0, 404);
    assert_eq!(call(&app, &maria, "POST", &plan_decision, Some(json!({"decision": "returned"}))).await.0, 400, "a comment when returned");
    let (status, returned) =
        call(&app, &maria, "POST", &plan_decision, Some(json!({"decision": "returned", "comment": "Add the school."}))).await;
    assert_eq!((status, returned["status"].as_str(), returned["comment"].as_str()), (200, Some("returned"), Some("Add the school.")));
    assert_eq!(
        call(&app, &nina_token, "POST", &stage, Some(json!({"stage": "monitoring"}))).await.1["approval_needed"],
        "plan",
        "returned is not approved"
    );
    let (_, plan) = call(&app, &nina_token, "POST", &approvals, Some(json!({"kind": "plan"}))).await;
    let plan_decision = format!("/api/v1/approvals/{}/decision", plan["id"].as_str().unwrap());
    assert_eq!(call(&app, &maria, "POST", &plan_decision, Some(json!({"decision": "approved"}))).await.0, 200);
    assert_eq!(call(&app, &nina_token, "POST", &stage, Some(json!({"stage": "monitoring"}))).await.0, 200);

    // Closing needs the closure approved; a supervisor closes without one.
    assert_eq!(call(&app, &nina_token, "POST", &stage, Some(json!({"stage": "closed"}))).await.1["approval_needed"], "closure");
    let (_, closure) = call(&app, &nina_token, "POST", &approvals, Some(json!({"kind": "closure"}))).await;
    assert_eq!(
        call(
            &app,
            &maria,
            "POST",
            &format!("/api/v1/approvals/{}/decision", closure["id"].as_str().unwrap()),
            Some(json!({"decision": "approved"}))
        )
        .await
        .0,
        200
    );
    let (status, closed) = call(&app, &nina_token, "POST", &stage, Some(json!({"stage": "closed"}))).await;
    assert_eq!((status, closed["stage"].as_str()), (200, Some("closed")), "{closed}");
    let (_, listed) = call(&app, &nina_token, "GET", &approvals, None).await;
    let statuses: Vec<(&str, &str)> =
        listed["approvals"].as_array().unwrap().iter().map(|a| (a["kind"].as_str().unwrap(), a["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, [("plan", "returned"), ("plan", "approved"), ("closure", "approved")]);
    assert_eq!(listed["transfers"].as_array().unwrap().len(), 2);
    let raw =
        crate::abuse::sql_text(&app, &format!("SELECT comment FROM case_approvals WHERE id = '{}'", returned["id"].as_str().unwrap()))
            .await;
    assert!(raw.starts_with("hl1."), "sealed: {raw}");
    let audit = app.store.audit_log().audit_for(&id).await.unwrap();
    for action in [
        "transfer_request",
        "transfer_list",
        "transfer_refuse",
        "transfer_accept",
        "approval_request",
        "approval_decide",
        "approval_list",
        "case_stage_denied",
    ] {
        assert!(audit.iter().any(|(_, a)| a == action), "{action}: {audit:?}");
    }
    assert!(audit.iter().any(|(who, a)| who == &vera && a == "transfer_accept_denied"), "{audit:?}");
}

/// The casework report: cases by helpline, stage, district and case manager with the overdue ones,
/// as JSON and CSV, for supervisors of the helpline and admins only.
async fn casework_report(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let maria = app.login("maria").await;
    for district in ["Cahul", "Cahul", "Orhei"] {
        let (status, _) =
            call(&app, &maria, "POST", "/api/v1/cases", Some(json!({"helpline": "family_violence", "district": district, "reason": "r"})))
                .await;
        assert_eq!(status, 201);
    }
    let (_, child) =
        call(&app, &app.login("petru").await, "POST", "/api/v1/cases", Some(json!({"helpline": "children", "reason": "r"}))).await;
    assert_eq!(child["stage"], "open");
    app.clock.advance(4 * DAY_MS);
    let maria = app.login("maria").await;
    let (status, report) = call(&app, &maria, "GET", "/api/v1/reports/cases", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["helpline"], "family_violence", "her one helpline");
    // (stage, district, case manager, cases, overdue)
    type Row = (String, Option<String>, Option<String>, i64, i64);
    let rows: Vec<Row> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["stage"].as_str().unwrap().to_string(),
                r["district"].as_str().map(str::to_string),
                r["case_manager_id"].as_str().map(str::to_string),
                r["cases"].as_i64().unwrap(),
                r["overdue"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("open".to_string(), Some("Cahul".to_string()), Some(vera.clone()), 2, 2),
            ("open".to_string(), Some("Orhei".to_string()), None, 1, 1)
        ]
    );
    let res = app.http.get(app.url("/api/v1/reports/cases?format=csv")).bearer_auth(&maria).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("helpline,stage,district,case_manager_id,cases,overdue\r\nfamily_violence,open,Cahul,"), "{csv}");
    assert_eq!(call(&app, &maria, "GET", "/api/v1/reports/cases?helpline=children", None).await.0, 403);
    assert_eq!(call(&app, &maria, "GET", "/api/v1/reports/cases?format=pdf", None).await.0, 400);
    for username in ["ana", "vera"] {
        assert_eq!(call(&app, &app.login(username).await, "GET", "/api/v1/reports/cases", None).await.0, 403, "{username}");
    }
    let (_, all) = call(&app, &app.login("root").await, "GET", "/api/v1/reports/cases", None).await;
    let total: i64 = all["rows"].as_array().unwrap().iter().map(|r| r["cases"].as_i64().unwrap()).sum();
    assert_eq!((all["helpline"].clone(), total), (Value::Null, 4));
    let audit = app.store.audit_log().audit_for("family_violence").await.unwrap();
    assert!(audit.iter().any(|(_, a)| a == "case_report"), "{audit:?}");
}

//! `GET /api/v1/staffing`: Erlang C from given figures and from the last weeks of contacts, and bad input.

use helpline::store::contacts::{Change, NewContactRecord};
use helpline::store::users::Role;
use serde_json::Value;

use crate::helpers::{add_user, Backend, TestApp};

crate::on_both_backends!(staffing_from_given_figures_and_from_history, staffing_rejects_bad_input);

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn get(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.http.get(app.url(&format!("/api/v1/staffing?{query}"))).bearer_auth(token).send().await.expect("request")
}

async fn json(app: &TestApp, token: &str, query: &str) -> Value {
    let res = get(app, token, query).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.expect("json")
}

fn near(v: &Value, want: f64, tol: f64) {
    let got = v.as_f64().unwrap_or(f64::NAN);
    assert!((got - want).abs() <= tol, "got {v}, want {want} ± {tol}");
}

async fn staffing_from_given_figures_and_from_history(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    add_user(&app.store, "maria", Role::Supervisor, &[], &[], &[], 1).await;
    // A supervisor of every helpline: an explicit grant (an empty list is none).
    app.store.accounts().set_user_all_helplines("maria", true).await.unwrap();
    let maria = app.login("maria").await;

    // Check figures of /work/shared/domain/helplines.md: λ = 30/h, AHT 12 min → 10 counsellors for 90 % in 15 s.
    let r = json(&app, &maria, "rate_per_hour=30&aht_s=720&target=0.9&answer_s=15").await;
    let e = &r["estimate"];
    assert_eq!((e["servers"].as_u64(), e["counsellors"].as_u64()), (Some(10), Some(10)), "{r}");
    near(&e["erlangs"], 6.0, 1e-9);
    near(&e["service_level"], 0.9068, 0.00005);
    // Three chats each: 10 slots → 4 counsellors (12 slots). Target given in per cent works too.
    let r = json(&app, &maria, "rate_per_hour=30&aht_s=720&target=90&concurrency=3").await;
    assert_eq!(r["estimate"]["counsellors"], 4, "{r}");
    // λ = 720/h, AHT 240 s: 55 servers give 84.588 %, so they reach a target of 84.58 %.
    let r = json(&app, &maria, "rate_per_hour=720&aht_s=240&target=0.8458").await;
    assert_eq!(r["estimate"]["servers"], 55, "{r}");

    // History: 8 contacts three days ago in one hour, each handled 600 s (and one short abandon that
    // does not count as demand). Over 4 weeks that hour of the week gets λ = 2/h, AHT 600 s.
    let now = helpline::clock::Clock::new().now_ms();
    let hour_start = (now - 3 * DAY).div_euclid(HOUR) * HOUR;
    for i in 0..9 {
        let id = format!("00000000-0000-7000-8000-{i:012}");
        let q = hour_start + 10 * 60_000 + i * 60_000;
        let c = NewContactRecord {
            id: id.clone(),
            channel: "chat".into(),
            helpline: "children".into(),
            language: "ro".into(),
            priority: 0,
            resume_token_hash: format!("hash-{id}"),
            queued_at: q,
        };
        app.store.contacts().create_contact(&c).await.unwrap();
        let changes = if i == 8 {
            vec![Change::Ended { contact: id, at: q + 2_000, reason: "caller_ended", abandoned: true }]
        } else {
            vec![
                Change::Assigned { contact: id.clone(), counsellor: ana.clone(), at: q + 5_000 },
                Change::Ended { contact: id, at: q + 605_000, reason: "counsellor_ended", abandoned: false },
            ]
        };
        app.store.contacts().apply_changes(&changes).await.unwrap();
    }
    let r = json(&app, &maria, "helpline=children&weeks=4&target=0.9&answer_s=15").await;
    let hours = r["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 168);
    let days = hour_start.div_euclid(DAY);
    let slot = ((days + 3).rem_euclid(7) * 24 + hour_start.rem_euclid(DAY) / HOUR) as usize; // 1970-01-01: a Thursday
    let h = &hours[slot];
    assert_eq!(h["slot"], slot as u64);
    assert_eq!(h["contacts"], 8, "{h}");
    assert_eq!(h["aht_from"], "slot");
    near(&h["rate_per_hour"], 2.0, 1e-12);
    near(&h["aht_s"], 600.0, 1e-9);
    let want = helpline::supervision::staffing::estimate(2.0, 600.0, 15.0, 0.9, 1);
    assert_eq!(h["servers"].as_u64(), want.servers.map(u64::from), "{h}");
    assert_eq!(h["counsellors"].as_u64(), want.counsellors.map(u64::from));
    near(&r["period_aht_s"], 600.0, 1e-9);
    // A quiet hour: no demand, the period's AHT, and still one counsellor on duty.
    let quiet = &hours[(slot + 84) % 168];
    assert_eq!((quiet["contacts"].as_i64(), quiet["counsellors"].as_u64()), (Some(0), Some(1)), "{quiet}");
    assert_eq!(quiet["aht_from"], "period");
    assert_eq!(r["peak_counsellors"].as_u64(), want.counsellors.map(u64::from));
    // Another helpline has no history at all.
    let r = json(&app, &maria, "helpline=disability").await;
    assert_eq!(r["hours"][slot]["contacts"], 0);
    assert_eq!(r["hours"][slot]["aht_from"], "none");
}

async fn staffing_rejects_bad_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    add_user(&app.store, "maria", Role::Supervisor, &[], &[], &[], 1).await;
    // A supervisor of every helpline: an explicit grant (an empty list is none).
    app.store.accounts().set_user_all_helplines("maria", true).await.unwrap();
    add_user(&app.store, "ion", Role::Counsellor, &["children"], &[], &["ro"], 1).await;
    let maria = app.login("maria").await;
    let cases: &[(&str, &str)] = &[
        ("helpline=pizza", "helpline"),
        ("weeks=0", "weeks"),
        ("weeks=60", "weeks"),
        ("weeks=1.5", "weeks"),
        ("target=0", "target"),
        ("target=100", "target"),
        ("target=high", "target"),
        ("answer_s=-1", "answer_s"),
        ("concurrency=0", "concurrency"),
        ("rate_per_hour=30", "aht_s"),
        ("rate_per_hour=30&aht_s=0", "aht_s"),
        ("utc_offset=nowhere", "utc_offset"),
        ("colour=red", "unknown parameter"),
    ];
    for (query, names) in cases {
        let res = get(&app, &maria, query).await;
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "bad_field", "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{query}: {body}");
    }
    let ion = app.login("ion").await;
    assert_eq!(get(&app, &ion, "").await.status(), 403);
    assert_eq!(app.http.get(app.url("/api/v1/staffing")).send().await.unwrap().status(), 401);
}

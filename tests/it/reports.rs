//! `GET /api/v1/reports/summary`: figures checked against hand-computed ones, equal to `figures::figures`
//! for the same window, CSV, and bad input. Contacts are written through the Store (as the router does).

use helpline::protocol::figures::{compute, Figures, Rules};
use helpline::store::contacts::{Change, NewContactRecord};
use helpline::store::figures;
use helpline::store::users::Role;
use helpline::store::Store;
use serde_json::Value;

use crate::helpers::{add_user, Backend, TestApp};

crate::on_both_backends!(
    summary_matches_hand_computed_figures,
    rolled_up_hours_give_the_same_reports_as_live_queries,
    summary_rejects_bad_input,
    sql_and_rust_classify_contacts_alike,
    a_scripted_day_through_the_engine_gives_the_hand_computed_figures_live_and_in_reports,
    local_days_from_the_daily_layer_give_the_same_reports_at_every_offset,
    a_roll_up_waits_for_a_late_change_in_flight,
    wrap_up_away_time_messages_and_callbacks_are_reported
);

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-11-02T00:00:00Z, a Monday.
const T0: i64 = 1_793_577_600_000;

struct Script<'a> {
    store: &'a Store,
    counsellor: String,
    n: u32,
}

impl Script<'_> {
    async fn queue(&mut self, helpline: &str, language: &str, channel: &str, queued_at: i64) -> String {
        self.n += 1;
        let id = format!("00000000-0000-7000-8000-{:012}", self.n);
        let c = NewContactRecord {
            id: id.clone(),
            channel: channel.into(),
            helpline: helpline.into(),
            language: language.into(),
            priority: 0,
            resume_token_hash: format!("hash-{id}"),
            queued_at,
        };
        self.store.contacts().create_contact(&c).await.expect("create contact");
        id
    }

    async fn answer(&self, id: &str, at: i64) {
        let change = Change::Assigned { contact: id.into(), counsellor: self.counsellor.clone(), at };
        self.store.contacts().apply_changes(&[change]).await.expect("assign");
    }

    async fn end(&self, id: &str, at: i64, abandoned: bool) {
        let reason = if abandoned { "caller_ended" } else { "counsellor_ended" };
        self.store.contacts().apply_changes(&[Change::Ended { contact: id.into(), at, reason, abandoned }]).await.expect("end");
    }

    /// A contact answered after `wait` and ended `handle` later (None: still in conversation).
    async fn answered(&mut self, helpline: &str, language: &str, channel: &str, q: i64, wait: i64, handle: Option<i64>) {
        let id = self.queue(helpline, language, channel, q).await;
        self.answer(&id, q + wait).await;
        if let Some(h) = handle {
            self.end(&id, q + wait + h, false).await;
        }
    }

    async fn abandoned(&mut self, helpline: &str, language: &str, q: i64, after: i64) {
        let id = self.queue(helpline, language, "chat", q).await;
        self.end(&id, q + after, true).await;
    }
}

async fn get(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.http.get(app.url(&format!("/api/v1/reports/summary?{query}"))).bearer_auth(token).send().await.expect("request")
}

async fn json(app: &TestApp, token: &str, query: &str) -> Value {
    let res = get(app, token, query).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.expect("json")
}

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 1e-9)
}

/// Checks the counts and ratios of a figures object.
#[track_caller]
fn check(f: &Value, counts: [i64; 5], sl: Option<f64>, asa_ms: Option<f64>, abandonment: Option<f64>, aht_ms: Option<f64>) {
    let got = ["offered", "answered", "answered_in_target", "abandoned", "abandoned_short"].map(|k| f[k].as_i64().unwrap());
    assert_eq!(got, counts, "counts in {f}");
    for (key, want) in [("service_level", sl), ("asa_ms", asa_ms), ("abandonment_rate", abandonment), ("aht_ms", aht_ms)] {
        match want {
            Some(x) => assert!(close(&f[key], x), "{key}: want {x}, got {} in {f}", f[key]),
            None => assert!(f[key].is_null(), "{key}: want null in {f}"),
        }
    }
}

async fn scenario(app: &TestApp) -> (String, String) {
    let store = &app.store;
    let ana = add_user(store, "ana", Role::Counsellor, &["children"], &[], &["ro", "ru", "uk", "en"], 3).await;
    add_user(store, "maria", Role::Supervisor, &[], &[], &[], 1).await;
    // A supervisor of every helpline: an explicit grant (an empty list is none).
    store.accounts().set_user_all_helplines("maria", true).await.unwrap();
    add_user(store, "ion", Role::Counsellor, &["disability"], &[], &["ro"], 1).await;
    // ana: available 09:00-12:00 on day 1, from 09:00 on day 2 on (never changes again).
    store.accounts().set_user_status(&ana, "available", None, T0 + 9 * HOUR).await.unwrap();
    store.accounts().set_user_status(&ana, "offline", None, T0 + 12 * HOUR).await.unwrap();
    store.accounts().set_user_status(&ana, "available", None, T0 + DAY + 9 * HOUR).await.unwrap();
    let mut s = Script { store, counsellor: ana.clone(), n: 0 };
    let at = |h: i64, m: i64| T0 + h * HOUR + m * MIN;
    // Day 1, children.
    s.answered("children", "ro", "chat", at(10, 0), 4 * SEC, Some(600 * SEC)).await; // 1: in target
    s.answered("children", "ru", "chat", at(10, 5), 20 * SEC, Some(300 * SEC)).await; // 2: late
    s.abandoned("children", "ro", at(10, 10), 3 * SEC).await; // 3: short abandon
    s.abandoned("children", "ro", at(10, 20), 30 * SEC).await; // 4: abandoned
    s.answered("children", "en", "phone", at(11, 0), 15 * SEC, Some(900 * SEC)).await; // 5: exactly 15 s: in target
                                                                                       // Day 1, disability (answered by ana too).
    s.answered("disability", "ro", "chat", at(10, 30), 8 * SEC, Some(200 * SEC)).await; // 8
                                                                                        // Day 2, children.
    s.answered("children", "ro", "chat", at(24 + 9, 0), 10 * SEC, None).await; // 6: still in conversation
    s.queue("children", "uk", "chat", at(24 + 9, 30)).await; // 7: still waiting, long past the target
                                                             // Outside the window: the day before, and the day after.
    s.answered("children", "ro", "chat", T0 - HOUR, SEC, Some(60 * SEC)).await;
    s.answered("children", "ro", "chat", T0 + 2 * DAY, SEC, Some(60 * SEC)).await;
    let maria = app.login("maria").await;
    let ion = app.login("ion").await;
    (maria, ion)
}

async fn summary_matches_hand_computed_figures(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (maria, _) = scenario(&app).await;
    let window = format!("from={}&to={}", T0, T0 + 2 * DAY);

    let r = json(&app, &maria, &format!("helpline=children&{window}&by=day")).await;
    assert_eq!(r["helpline"], "children");
    assert_eq!(r["from_time"], "2026-11-02T00:00:00Z");
    assert_eq!(r["targets"]["children"], 15_000);
    // Total: offered 7; answered 1, 2, 5, 6; in target 1 (4 s), 5 (15 s), 6 (10 s); abandoned 3 (short), 4.
    // SL = 3 / (7 − 1 short) ; ASA = (4 + 20 + 15 + 10) / 4 s ; abandonment = (2 − 1) / (4 + 2 − 1) ;
    // AHT = (600 + 300 + 900) / 3 s (6 is still in conversation).
    let total = &r["total"]["figures"];
    check(total, [7, 4, 3, 2, 1], Some(0.5), Some(12_250.0), Some(0.2), Some(600_000.0));
    assert_eq!((total["waiting"].as_i64(), total["waiting_in_target"].as_i64()), (Some(1), Some(0)));
    assert_eq!((total["in_conversation"].as_i64(), total["handled"].as_i64()), (Some(1), Some(3)));
    // Occupancy (ana, the children's first-line counsellor; all her conversations count, the disability
    // one too): day 1 busy 616 s (chats 1 and 2 overlap: 10:00:04-10:10:20) + 200 s + 900 s of 3 h
    // available; day 2 busy from 09:00:10 to the window's end, of 15 h available.
    let day1 = (616.0 + 200.0 + 900.0) / 10_800.0;
    let day2 = 53_990.0 / 54_000.0;
    assert!(close(&total["occupancy"], (1_716.0 + 53_990.0) / 64_800.0), "{total}");

    let buckets = r["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[1]["start_time"], "2026-11-03T00:00:00Z");
    check(&buckets[0]["figures"], [5, 3, 2, 2, 1], Some(0.5), Some(13_000.0), Some(0.25), Some(600_000.0));
    check(&buckets[1]["figures"], [2, 1, 1, 0, 0], Some(0.5), Some(10_000.0), Some(0.0), None);
    assert!(close(&buckets[0]["figures"]["occupancy"], day1));
    assert!(close(&buckets[1]["figures"]["occupancy"], day2));

    // By language and channel.
    let lang = &r["total"]["by_language"];
    check(&lang["ro"], [4, 2, 2, 2, 1], Some(2.0 / 3.0), Some(7_000.0), Some(1.0 / 3.0), Some(600_000.0));
    check(&lang["ru"], [1, 1, 0, 0, 0], Some(0.0), Some(20_000.0), Some(0.0), Some(300_000.0));
    check(&lang["en"], [1, 1, 1, 0, 0], Some(1.0), Some(15_000.0), Some(0.0), Some(900_000.0));
    check(&lang["uk"], [1, 0, 0, 0, 0], Some(0.0), None, None, None);
    check(&r["total"]["by_channel"]["phone"], [1, 1, 1, 0, 0], Some(1.0), Some(15_000.0), Some(0.0), Some(900_000.0));
    check(&r["total"]["by_channel"]["chat"], [6, 3, 2, 2, 1], Some(0.4), Some(34_000.0 / 3.0), Some(0.25), Some(450_000.0));

    // The same numbers as figures::figures for the same window (and the same "as of").
    let as_of = r["as_of"].as_i64().unwrap();
    for (helpline, query) in [(Some("children"), "helpline=children&"), (None, "")] {
        let r = json(&app, &maria, &format!("{query}{window}&by=hour")).await;
        let f: Figures = figures::figures_at(&app.store, helpline, T0, T0 + 2 * DAY, as_of).await.unwrap();
        let want = serde_json::to_value(&f).unwrap();
        let mut got = r["total"]["figures"].clone();
        // `as_of` differs between the two requests only for contacts still waiting within target: none here.
        assert_eq!(got.as_object_mut().unwrap().len(), want.as_object().unwrap().len());
        assert_eq!(got, want, "report total vs figures::figures for {helpline:?}");
        assert_eq!(r["buckets"].as_array().unwrap().len(), 48);
        // Hour 10:00-11:00 of day 1 holds contacts 1-4 (and 8 without a helpline filter).
        let ten = &r["buckets"][10]["figures"];
        assert_eq!(ten["offered"], if helpline.is_some() { 4 } else { 5 });
    }
    // Without a filter: the disability contact joins (answered in 8 s, handled 200 s).
    let all = json(&app, &maria, &window).await;
    check(&all["total"]["figures"], [8, 5, 4, 2, 1], Some(4.0 / 7.0), Some(57_000.0 / 5.0), Some(1.0 / 6.0), Some(500_000.0));

    // RFC 3339 with an offset gives the same window.
    let r2 = json(&app, &maria, "helpline=children&from=2026-11-02T02:00:00%2B02:00&to=2026-11-04T00:00:00Z").await;
    assert_eq!(r2["total"]["figures"]["offered"], 7);

    // CSV: a header, a line per bucket and per channel and language, then the total.
    let res = get(&app, &maria, &format!("helpline=children&{window}&by=day&format=csv")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let body = res.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], helpline::supervision::reports::CSV_HEADER);
    assert_eq!(lines[1], "bucket,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,all,,5,3,2,2,1,0,0.5,13000,0.25,600000,0.158889,0,0");
    let total_line = lines.iter().find(|l| l.starts_with("total,") && l.contains(",all,")).expect("total line");
    assert!(
        total_line.starts_with("total,2026-11-02T00:00:00Z,2026-11-04T00:00:00Z,all,,7,4,3,2,1,1,0.5,12250,0.2,600000,"),
        "{total_line}"
    );
    assert!(lines.iter().any(|l| l.starts_with("total,") && l.contains(",language,uk,1,0,0,0,0,1,0,")), "{body}");
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns), "{body}");
}

/// The reports for `windows`, without `as_of` (the request's time: nothing in these windows depends on it).
async fn reports(app: &TestApp, token: &str, windows: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for w in windows {
        let res = get(app, token, w).await;
        assert_eq!(res.status(), 200, "{w}");
        let body = res.text().await.unwrap();
        out.push(match serde_json::from_str::<Value>(&body) {
            Ok(mut v) => {
                v.as_object_mut().unwrap().remove("as_of");
                v.to_string()
            }
            Err(_) => body,
        });
    }
    out
}

/// Runs one SQL statement on the test's database.
async fn execute(app: &TestApp, sql: &str) {
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        helpline::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }
}

/// The days in `[from, to)` the daily roll-up layer holds.
async fn rolled_days(app: &TestApp, from: i64, to: i64) -> Vec<i64> {
    numbers(app, &format!("SELECT day FROM report_rollup_days WHERE day >= {from} AND day < {to} ORDER BY day")).await
}

/// The numbers one SQL query gives on the test's database (one per row).
async fn numbers(app: &TestApp, sql: &str) -> Vec<i64> {
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
        }
        helpline::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
        }
    }
}

/// The id `Script` gave its n-th contact.
fn nth(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

/// Every report (by hour and day, one helpline or all, offsets in whole and half hours, edges inside hours)
/// is the same whether its hours were rolled up or computed live; an hour with an open conversation stays
/// live; a form submitted after the roll-up is counted (its hour is recounted); a changed answer target
/// drops the roll-ups. Categories, transfers and escalations are counted.
async fn rolled_up_hours_give_the_same_reports_as_live_queries(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (maria, _) = scenario(&app).await;
    let store = &app.store;
    let ana = store.accounts().users().await.unwrap().into_iter().find(|u| u.username == "ana").unwrap().id;
    let form = |n: u32, categories: &[&str]| helpline::store::forms::FormRecord {
        contact_id: nth(n),
        helpline: if n == 6 { "disability" } else { "children" }.into(),
        counsellor_id: ana.clone(),
        data: serde_json::json!({ "categories": categories, "risk": "low" }).to_string(),
        risk: Some("low".into()),
        status: "submitted".into(),
        updated_at: T0 + DAY,
        submitted_at: Some(T0 + DAY),
    };
    // Contact 1: two categories, transferred once; contact 2: one category and an escalation; contact 5: a draft only.
    store.forms().save_form(&form(1, &["violence_physical", "mental_health"])).await.unwrap();
    store.forms().save_form(&form(2, &["mental_health"])).await.unwrap();
    store
        .forms()
        .save_form(&helpline::store::forms::FormRecord { status: "draft".into(), submitted_at: None, ..form(5, &["neglect"]) })
        .await
        .unwrap();
    let transfer = Change::Transferred {
        contact: nth(1),
        from: ana.clone(),
        to: Some(ana.clone()),
        helpline: "children".into(),
        at: T0 + 10 * HOUR + MIN,
    };
    store.contacts().apply_changes(&[transfer]).await.unwrap();
    let escalation = helpline::store::forms::EscalationRecord {
        id: "00000000-0000-7000-9000-000000000001".into(),
        contact_id: nth(2),
        helpline: "children".into(),
        kind: "child_protection".into(),
        risk: "high".into(),
        reason: "test".into(),
        district: None,
        counsellor_id: ana.clone(),
        created_at: T0 + 10 * HOUR + 6 * MIN,
        acknowledged_by: None,
        acknowledged_at: None,
        broadcast_at: None,
    };
    store.forms().create_escalation(&escalation).await.unwrap();

    let windows = [
        format!("from={}&to={}&by=day", T0, T0 + 2 * DAY),
        format!("from={}&to={}&by=hour", T0, T0 + 2 * DAY),
        format!("helpline=children&from={}&to={}&by=hour", T0 - DAY, T0 + 3 * DAY),
        format!("helpline=disability&from={}&to={}&by=day", T0, T0 + 2 * DAY),
        format!("from={}&to={}&by=day&utc_offset=%2B02:00", T0 - 2 * HOUR, T0 + 2 * DAY - 2 * HOUR),
        format!("from={}&to={}&by=day&utc_offset=%2B05:30", T0, T0 + 2 * DAY),
        format!("helpline=children&from={}&to={}&by=hour", T0 + 10 * HOUR + 7 * MIN, T0 + DAY + 9 * HOUR + 45 * MIN),
        format!("from={}&to={}&by=day&format=csv", T0, T0 + 2 * DAY),
        // Days from the daily layer between hours and live parts: a day before the first rolled-up one,
        // the first day cut at 06:00, an open day, settled empty days after it. (Ana's conversation from
        // day 2 stays open for weeks, beyond occupancy's 24-hour look-back: after day 3 her occupancy
        // depends on where a window starts, live or not, so only ion's helpline goes further.)
        format!("helpline=children&from={}&to={}&by=day", T0 - DAY, T0 + 3 * DAY),
        format!("from={}&to={}&by=day&format=csv", T0 + 6 * HOUR, T0 + 3 * DAY),
        format!("helpline=disability&from={}&to={}&by=day&format=csv", T0 - 2 * DAY, T0 + 6 * DAY),
    ];
    let live = reports(&app, &maria, &windows).await;
    let day1: Value = serde_json::from_str(&live[0]).unwrap();
    let total = &day1["total"];
    assert_eq!((total["transfers"].as_i64(), total["escalations"].as_i64()), (Some(1), Some(1)), "{total}");
    let categories = &total["by_category"];
    assert_eq!(categories["mental_health"]["offered"], 2, "{categories}");
    assert_eq!(categories["violence_physical"]["answered"], 1, "{categories}");
    assert!(categories.get("neglect").is_none(), "a draft's categories do not count: {categories}");
    assert!(live[7].lines().any(|l| l.starts_with("total,") && l.contains(",category,mental_health,2,2,1,")), "{}", live[7]);

    // Roll up everything settled: day 2 from 09:00 on has an open conversation and stays live (and the
    // day after it, whose occupancy sees that conversation); day 1 and the days after are summed per day.
    let now = app.clock.now_ms();
    let p = helpline::store::rollup::roll_up(store, now, 1_000_000).await.unwrap();
    assert!(p.rolled >= 30 && p.open > 0 && p.remaining == 0 && p.days >= 4, "{p:?}");
    let again = helpline::store::rollup::roll_up(store, now, 1_000_000).await.unwrap();
    assert_eq!((again.rolled, again.days), (0, 0), "rolled-up hours and days are not rolled up again: {again:?}");
    assert_eq!(
        rolled_days(&app, T0 - DAY, T0 + 6 * DAY).await,
        [0, 3, 4, 5].map(|d| T0 + d * DAY),
        "day 1, then the days after the open one"
    );
    assert_eq!(reports(&app, &maria, &windows).await, live, "reports over rolled-up hours and days");
    // They are read from the roll-ups: a (deliberately wrong) change there shows in the report, in the
    // hourly layer for a report by hour, in the daily one for a report by day.
    let bump = |layer: &str, at: i64, by: i64| {
        format!("UPDATE report_{layer}_tallies SET offered = offered + {by} WHERE {layer} = {at} AND language = 'ru'")
    };
    execute(&app, &bump("hour", T0 + 10 * HOUR, 100)).await;
    let r = json(&app, &maria, &windows[1]).await;
    assert_eq!(r["buckets"][10]["figures"]["offered"], 105, "{}", r["buckets"][10]);
    let r = json(&app, &maria, &windows[0]).await;
    assert_eq!(r["buckets"][0]["figures"]["offered"], 6, "a report by day reads the day: {}", r["buckets"][0]);
    execute(&app, &bump("hour", T0 + 10 * HOUR, -100)).await;
    execute(&app, &bump("day", T0, 100)).await;
    let r = json(&app, &maria, &windows[0]).await;
    assert_eq!(r["buckets"][0]["figures"]["offered"], 106, "{}", r["buckets"][0]);
    execute(&app, &bump("day", T0, -100)).await;

    // A form submitted late for contact 5 (day 1, 11:00) drops that hour's roll-up; live and rolled agree again.
    store.forms().save_form(&form(5, &["neglect"])).await.unwrap();
    let with_neglect = reports(&app, &maria, &windows).await;
    assert_ne!(with_neglect, live);
    assert!(with_neglect[0].contains("neglect"));
    assert_eq!(
        rolled_days(&app, T0 - DAY, T0 + 6 * DAY).await,
        [3, 4, 5].map(|d| T0 + d * DAY),
        "the late form's day is dropped with its hour"
    );
    let p = helpline::store::rollup::roll_up(store, now, 1_000_000).await.unwrap();
    assert_eq!((p.rolled, p.days), (1, 1), "only the hour and day of the late form are recounted: {p:?}");
    assert_eq!(reports(&app, &maria, &windows).await, with_neglect);
    // So does a late escalation (contact 4, day 1, 10:20).
    store
        .forms()
        .create_escalation(&helpline::store::forms::EscalationRecord {
            id: "00000000-0000-7000-9000-000000000002".into(),
            contact_id: nth(4),
            created_at: T0 + DAY + HOUR,
            ..escalation.clone()
        })
        .await
        .unwrap();
    let escalated = reports(&app, &maria, &windows).await;
    assert_ne!(escalated, with_neglect);
    assert_eq!(rolled_days(&app, T0 - DAY, T0 + 6 * DAY).await, [3, 4, 5].map(|d| T0 + d * DAY));
    let p = helpline::store::rollup::roll_up(store, now, 1_000_000).await.unwrap();
    assert_eq!((p.rolled, p.days), (1, 1), "{p:?}");
    assert_eq!(reports(&app, &maria, &windows).await, escalated);

    // A new answer target drops every roll-up (then nothing is rolled up until the next run).
    let mut children = store.directory().helpline("children").await.unwrap().unwrap();
    children.sla_target_ms = 5_000;
    store.directory().upsert_helpline(&children).await.unwrap();
    let stricter = reports(&app, &maria, &windows).await;
    helpline::store::rollup::roll_up(store, now, 1_000_000).await.unwrap();
    assert_eq!(reports(&app, &maria, &windows).await, stricter);
    let r: Value = serde_json::from_str(&stricter[0]).unwrap();
    assert_eq!(r["total"]["figures"]["answered_in_target"], 2, "4 s and 8 s (disability) within 5 s and 15 s");
}

/// Six days of contacts around the clock (every hour a UTC offset may cut a day at: 22:00, 18:30, 05:00,
/// 10:00, 12:00…), all ended, some with forms (categories), a counsellor available throughout.
async fn six_days(app: &TestApp) -> String {
    let store = &app.store;
    let ana = add_user(store, "ana", Role::Counsellor, &["children"], &[], &["ro", "ru", "uk"], 3).await;
    add_user(store, "maria", Role::Supervisor, &[], &[], &[], 1).await;
    // A supervisor of every helpline: an explicit grant (an empty list is none).
    store.accounts().set_user_all_helplines("maria", true).await.unwrap();
    store.accounts().set_user_status(&ana, "available", None, T0 - DAY).await.unwrap();
    let mut s = Script { store, counsellor: ana.clone(), n: 0 };
    let mut i = 0i64;
    for day in 0..6 {
        for hour in [0, 1, 4, 5, 9, 10, 11, 12, 13, 17, 18, 19, 21, 22, 23] {
            for minute in [5, 29, 31, 44, 58] {
                i += 1;
                let q = T0 + day * DAY + hour * HOUR + minute * MIN;
                let helpline = if i % 3 == 0 { "disability" } else { "children" };
                let language = ["ro", "ru", "uk"][(i % 3) as usize];
                if i % 7 == 0 {
                    s.abandoned(helpline, language, q, (i % 4) * 3 * SEC).await;
                } else {
                    let channel = if i % 5 == 0 { "phone" } else { "chat" };
                    s.answered(helpline, language, channel, q, (i * 7) % 25 * SEC, Some((60 + i % 600) * SEC)).await;
                    if i % 4 == 0 {
                        let categories: &[&str] = if i % 8 == 0 { &["mental_health", "neglect"] } else { &["bullying"] };
                        store
                            .forms()
                            .save_form(&helpline::store::forms::FormRecord {
                                contact_id: nth(s.n),
                                helpline: helpline.into(),
                                counsellor_id: ana.clone(),
                                data: serde_json::json!({ "categories": categories, "risk": "low" }).to_string(),
                                risk: Some("low".into()),
                                status: "submitted".into(),
                                updated_at: q + HOUR,
                                submitted_at: Some(q + HOUR),
                            })
                            .await
                            .unwrap();
                    }
                }
            }
        }
    }
    app.login("maria").await
}

/// A report by day at any UTC offset reads local days from the daily layer (the UTC day holding most of
/// each, plus and minus the edge hours; the hours an offset in half or quarter hours cuts come from their
/// quarters) and gives the same bytes as the live queries; the day and quarter rows are really read (a
/// deliberate change in one shows in the reports at the offsets that read it, and only there).
async fn local_days_from_the_daily_layer_give_the_same_reports_at_every_offset(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let maria = six_days(&app).await;
    let offsets = ["Z", "%2B02:00", "-05:00", "%2B05:30", "%2B05:45", "%2B14:00", "-12:00", "-09:30"];
    let mut windows = Vec::new();
    for o in offsets {
        windows.push(format!("from={}&to={}&by=day&utc_offset={o}", T0 - DAY, T0 + 7 * DAY));
        windows.push(format!("helpline=children&from={}&to={}&by=day&utc_offset={o}&format=csv", T0 - DAY, T0 + 7 * DAY));
        // Edges inside hours.
        windows.push(format!("from={}&to={}&by=day&utc_offset={o}", T0 + 5 * HOUR + 17 * MIN, T0 + 5 * DAY + 3 * HOUR + 11 * MIN));
        windows.push(format!("helpline=disability&from={}&to={}&by=hour&utc_offset={o}", T0 + 2 * DAY, T0 + 3 * DAY + 7 * MIN));
        // Edges on quarters inside hours (read from the quarter layer).
        windows.push(format!(
            "from={}&to={}&by=day&utc_offset={o}&format=csv",
            T0 + 5 * HOUR + 15 * MIN,
            T0 + 5 * DAY + 3 * HOUR + 45 * MIN
        ));
        windows.push(format!("helpline=children&from={}&to={}&by=hour&utc_offset={o}", T0 + 2 * DAY + 30 * MIN, T0 + 3 * DAY + 45 * MIN));
    }
    let live = reports(&app, &maria, &windows).await;
    let first: Value = serde_json::from_str(&live[0]).unwrap();
    assert_eq!(first["total"]["figures"]["offered"], 6 * 15 * 5, "{}", first["total"]);
    assert!(first["total"]["by_category"]["neglect"]["offered"].as_i64().unwrap() > 0);

    let p = helpline::store::rollup::roll_up(&app.store, app.clock.now_ms(), 1_000_000).await.unwrap();
    assert!(p.open == 0 && p.remaining == 0 && p.days >= 8, "{p:?}");
    assert_eq!(rolled_days(&app, T0, T0 + 6 * DAY).await, (0..6).map(|d| T0 + d * DAY).collect::<Vec<_>>());
    let rolled = reports(&app, &maria, &windows).await;
    for (i, (l, r)) in live.iter().zip(&rolled).enumerate() {
        assert_eq!(l, r, "live and rolled up differ for {}", windows[i]);
    }
    // The day rows are read: 1,000 more contacts in UTC day 3's rows show in every offset's report.
    let bump = |by: i64| {
        format!(
            "UPDATE report_day_tallies SET offered = offered + {by} WHERE day = {} AND helpline = 'children' AND language = 'ru' AND channel = 'chat'",
            T0 + 3 * DAY
        )
    };
    execute(&app, &bump(1_000)).await;
    for o in offsets {
        let w = format!("from={}&to={}&by=day&utc_offset={o}", T0 - DAY, T0 + 7 * DAY);
        let r = json(&app, &maria, &w).await;
        assert_eq!(r["total"]["figures"]["offered"], 6 * 15 * 5 + 1_000, "{w}: the day layer is read");
    }
    execute(&app, &bump(-1_000)).await;
    assert_eq!(reports(&app, &maria, &windows).await, live);

    // The quarter rows are read where an offset cuts an hour: local days start at 18:30 UTC at +05:30,
    // 18:15 at +05:45 (the 18:30 quarter of UTC day 3 is read at both) and 09:30 at -09:30 (its 09:45).
    let (q1830, q0945) = (T0 + 3 * DAY + 18 * HOUR + 30 * MIN, T0 + 3 * DAY + 9 * HOUR + 45 * MIN);
    let lines = |q: i64| format!("SELECT COUNT(*) FROM report_quarter_tallies WHERE quarter = {q}");
    let (n1830, n0945) = (numbers(&app, &lines(q1830)).await[0], numbers(&app, &lines(q0945)).await[0]);
    assert!(n1830 > 0 && n0945 > 0, "six_days has contacts in both quarters");
    let bump = |q: i64, by: i64| format!("UPDATE report_quarter_tallies SET offered = offered + {by} WHERE quarter = {q}");
    execute(&app, &bump(q1830, 1_000)).await;
    execute(&app, &bump(q0945, 1_000)).await;
    for (o, more) in [("Z", 0), ("%2B02:00", 0), ("%2B05:30", n1830), ("%2B05:45", n1830), ("-09:30", n0945)] {
        let w = format!("from={}&to={}&by=day&utc_offset={o}", T0 - DAY, T0 + 7 * DAY);
        let r = json(&app, &maria, &w).await;
        assert_eq!(r["total"]["figures"]["offered"], 6 * 15 * 5 + 1_000 * more, "{w}: quarters read where hours are cut");
    }
    execute(&app, &bump(q1830, -1_000)).await;
    execute(&app, &bump(q0945, -1_000)).await;
    assert_eq!(reports(&app, &maria, &windows).await, live);
}

/// A late form sent while a roll-up has read its day but not yet written it waits for the roll-up, then
/// drops what it wrote: the reports from roll-ups count the form (before the fix, the roll-up's read was
/// outside its write transaction and unlocked, the form slipped in between, and the roll-up kept a stale hour).
async fn a_roll_up_waits_for_a_late_change_in_flight(backend: Backend) {
    use std::sync::Arc;
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (maria, _) = scenario(&app).await;
    let store = app.store.clone();
    let ana = store.accounts().users().await.unwrap().into_iter().find(|u| u.username == "ana").unwrap().id;
    let windows =
        [format!("helpline=children&from={}&to={}&by=day", T0, T0 + DAY), format!("helpline=children&from={}&to={}&by=hour", T0, T0 + DAY)];
    // The roll-up stops between its read and its write of day 1 (the day of the scenario's contacts).
    let pause = Arc::new(helpline::store::rollup::Pause {
        day: T0,
        reached: Arc::new(tokio::sync::Notify::new()),
        resume: Arc::new(tokio::sync::Notify::new()),
    });
    let now = app.clock.now_ms();
    let rolling = {
        let (store, pause) = (store.clone(), pause.clone());
        tokio::spawn(async move { helpline::store::rollup::roll_up_pausing(&store, now, 1_000_000, Some(&pause)).await })
    };
    pause.reached.notified().await;
    // A form for contact 1 (day 1, 10:00) is submitted now: it must wait for the roll-up.
    let late = {
        let store = store.clone();
        let form = helpline::store::forms::FormRecord {
            contact_id: nth(1),
            helpline: "children".into(),
            counsellor_id: ana.clone(),
            data: serde_json::json!({ "categories": ["late_category"], "risk": "low" }).to_string(),
            risk: Some("low".into()),
            status: "submitted".into(),
            updated_at: T0 + DAY,
            submitted_at: Some(T0 + DAY),
        };
        tokio::spawn(async move { store.forms().save_form(&form).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let finished_early = late.is_finished();
    pause.resume.notify_one();
    let p = rolling.await.unwrap().unwrap();
    assert!(p.rolled >= 24, "{p:?}");
    late.await.unwrap().unwrap();
    assert!(!finished_early, "the late form must wait for the roll-up that read its hour");
    // The form counts in the report, whichever hours are rolled up: its hour was dropped after the roll-up.
    let after = reports(&app, &maria, &windows).await;
    assert!(after[0].contains("late_category"), "{}", after[0]);
    let p = helpline::store::rollup::roll_up(&store, now, 1_000_000).await.unwrap();
    assert_eq!(p.rolled, 1, "the late form's hour is rolled up again: {p:?}");
    assert_eq!(reports(&app, &maria, &windows).await, after);
}

async fn summary_rejects_bad_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (maria, ion) = scenario(&app).await;
    let cases: &[(&str, &str)] = &[
        ("helpline=pizza", "helpline"),
        ("from=1000&to=1000", "before"),
        ("from=2000&to=1000", "before"),
        ("from=2025-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", "366 days"),
        ("from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:01Z&by=hour", "at most 31 days per report by hour"),
        ("from=yesterday", "from"),
        ("to=2026-13-45", "to"),
        ("by=week", "by"),
        ("format=xml", "format"),
        ("utc_offset=Europe/Chisinau", "utc_offset"),
        ("colour=red", "unknown parameter"),
        ("from=%FF%FE", "from"),
    ];
    for (query, names) in cases {
        let res = get(&app, &maria, query).await;
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.expect("JSON error body");
        assert_eq!(body["code"], "bad_field", "{query}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
    // Counsellors may not read reports; nobody may without a token.
    assert_eq!(get(&app, &ion, "").await.status(), 403);
    let res = app.http.get(app.url("/api/v1/reports/summary")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

/// The grouped SQL (`figures::TALLY_SQL`) and the per-row Rust (`figures::Tally::add`) give the same
/// figures on random contacts of every kind, some still waiting within their target.
async fn sql_and_rust_classify_contacts_alike(backend: Backend) {
    use rand::{Rng, SeedableRng};
    let Some(app) = TestApp::spawn_with(backend, |hs| {
        // A helpline with another target, so the per-helpline target matters.
        if let Some(h) = hs.iter_mut().find(|h| h.name == "disability") {
            h.sla_target_ms = 8_000;
        }
    })
    .await
    else {
        return;
    };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    let mut s = Script { store: &app.store, counsellor: ana, n: 0 };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let as_of = T0 + 2 * HOUR;
    for _ in 0..120 {
        let helpline = ["children", "disability", "family_violence"][rng.gen_range(0..3)];
        let language = ["ro", "ru", "uk"][rng.gen_range(0..3)];
        let q = as_of - rng.gen_range(0..2 * HOUR);
        let wait = rng.gen_range(0..25 * SEC);
        match rng.gen_range(0..5) {
            0 => s.abandoned(helpline, language, q, rng.gen_range(0..12 * SEC)).await,
            1 => {
                // Waiting: some within their target at `as_of`.
                let q = as_of - rng.gen_range(0..30 * SEC);
                s.queue(helpline, language, "chat", q).await;
            }
            2 => s.answered(helpline, language, "chat", q.min(as_of - wait), wait, None).await,
            _ => s.answered(helpline, language, "chat", q, wait, Some(rng.gen_range(0..20 * MIN))).await,
        }
    }
    let rows = figures::fetch_contacts(&app.store, T0, as_of + 1).await.unwrap();
    assert_eq!(rows.len(), 120);
    let targets: std::collections::HashMap<String, i64> =
        app.store.directory().helplines().await.unwrap().into_iter().map(|h| (h.name, h.sla_target_ms)).collect();
    for helpline in [None, Some("children"), Some("disability")] {
        let times: Vec<_> =
            rows.iter().filter(|r| helpline.is_none_or(|h| r.helpline == h)).map(|r| r.times(targets[&r.helpline])).collect();
        let mut want = compute(&times, &Rules::as_of(as_of));
        let mut got = figures::figures_at(&app.store, helpline, T0, as_of + 1, as_of).await.unwrap();
        assert!(want.waiting_in_target > 0 && want.abandoned_short > 0 && want.in_conversation > 0, "{want:?}");
        // Percentiles need the rows; occupancy is not a per-contact figure.
        (want.answer_p50_ms, want.answer_p90_ms, want.answer_p99_ms) = (None, None, None);
        got.occupancy = None;
        assert_eq!(got, want, "{helpline:?}");
    }
}

/// The scripted day of `simulate::tests::scripted_day_matches_hand_computed_figures`, played through the real
/// routing engine in virtual time (one counsellor, capacity 1, who accepts 2 s after an offer rings), stored
/// as the engine task stores it, then read back as the live board reads figures (`figures::figures`) and
/// as reports do (live, then rolled up). By hand, from the script:
/// - 00:00:00 #1, handle 60 s: answered at 2 s (wait 2 s), ends at 62 s;
/// - 00:00:10 #2, handle 30 s: waits for #1, answered at 64 s (wait 54 s), ends at 94 s;
/// - 00:00:20 #3, patience 3 s: abandons at 23 s (short); 00:00:30 #4, patience 20 s: abandons at 50 s;
/// - 12:00:00 #5, handle 100 s: answered at 12:00:02 (wait 2 s), ends at 12:01:42.
///
/// Offered 5, answered 3 (2 within 15 s), abandoned 2 (1 short): SL = 2 / (5 − 1); ASA = (2 + 54 + 2) / 3 s;
/// abandonment = (2 − 1) / (3 + 2 − 1); AHT = (60 + 30 + 100) / 3 s; occupancy = 190 s busy of the
/// 43 302 s the counsellor was available (the run's length).
async fn a_scripted_day_through_the_engine_gives_the_hand_computed_figures_live_and_in_reports(backend: Backend) {
    use helpline::supervision::simulate;
    let Some(app) = TestApp::spawn(backend).await else { return };
    let store = &app.store;
    let ana = add_user(store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 1).await;
    add_user(store, "maria", Role::Supervisor, &[], &[], &[], 1).await;
    // A supervisor of every helpline: an explicit grant (an empty list is none).
    store.accounts().set_user_all_helplines("maria", true).await.unwrap();
    let script = [(0, 60, ""), (10, 30, ""), (20, 60, "3"), (30, 60, "20"), (43_200, 100, "")];
    let mut csv = String::from("queued_at_ms,helpline,language,handle_s,patience_s\n");
    for (at_s, handle_s, patience_s) in script {
        csv.push_str(&format!("{},children,ro,{handle_s},{patience_s}\n", T0 + at_s * SEC));
    }
    let arrivals = simulate::parse_arrivals(&csv).unwrap();
    let roster = simulate::parse_roster("name,helplines,languages,capacity\nana,children,ro,1\n").unwrap();
    let out = simulate::simulate(&arrivals, &roster, &simulate::default_helplines(), 2 * SEC, &mut |_, _| {});
    assert_eq!((out.start_ms, out.end_ms), (T0, T0 + 43_302 * SEC));

    // Stored as the engine task stores a day: contacts, assignments, ends; the counsellor available for the run.
    store.accounts().set_user_status(&ana, "available", None, out.start_ms).await.unwrap();
    let mut s = Script { store, counsellor: ana.clone(), n: 0 };
    for c in &out.contacts {
        let id = s.queue(&c.helpline, "ro", "chat", c.queued_at).await;
        if let Some(at) = c.answered_at {
            s.answer(&id, at).await;
        }
        s.end(&id, c.ended_at.expect("every scripted contact ends"), c.abandoned).await;
    }
    store.accounts().set_user_status(&ana, "offline", None, out.end_ms).await.unwrap();

    let want = |f: &Value| {
        check(f, [5, 3, 2, 2, 1], Some(0.5), Some(58_000.0 / 3.0), Some(0.25), Some(190_000.0 / 3.0));
        assert!(close(&f["occupancy"], 190.0 / 43_302.0), "{f}");
    };
    // The simulator's own figures, and the live figures over the stored day.
    want(&serde_json::to_value(&out.figures).unwrap());
    let live = figures::figures_at(store, Some("children"), T0, T0 + DAY, T0 + 2 * DAY).await.unwrap();
    want(&serde_json::to_value(&live).unwrap());
    // Reports by hour and by day, live and from the roll-ups.
    let maria = app.login("maria").await;
    let by_hour = format!("helpline=children&from={T0}&to={}&by=hour", T0 + DAY);
    let by_day = format!("from={}&to={}&by=day", T0 - DAY, T0 + 2 * DAY);
    for when in ["live", "rolled up"] {
        if when == "rolled up" {
            let p = helpline::store::rollup::roll_up(store, app.clock.now_ms(), 1_000_000).await.unwrap();
            assert!(p.rolled >= 24 && p.days >= 1, "{p:?}");
        }
        let r = json(&app, &maria, &by_hour).await;
        want(&r["total"]["figures"]);
        // 00:00-01:00: #1-#4; SL = 1 (#1) / (4 − 1 short). 12:00-13:00: #5.
        check(&r["buckets"][0]["figures"], [4, 2, 1, 2, 1], Some(1.0 / 3.0), Some(28_000.0), Some(1.0 / 3.0), Some(45_000.0));
        check(&r["buckets"][12]["figures"], [1, 1, 1, 0, 0], Some(1.0), Some(2_000.0), Some(0.0), Some(100_000.0));
        let r = json(&app, &maria, &by_day).await;
        want(&r["buckets"][1]["figures"]);
        want(&r["total"]["figures"]);
        assert_eq!(r["buckets"][0]["figures"]["offered"], 0, "{when}");
    }
}

/// Not run by default: `cargo test --release --test it reports::year_of_contacts -- --ignored --nocapture`
/// (set `REPORT_BENCH_ROWS`, default 1 000 000; `REPORT_BENCH_ONLY=+05:30,by=hour` times only the queries holding one of
/// these strings). Fills a year of contacts and their forms with SQL, times
/// the reports live, rolls the hours up (timed), times them again and checks both gave the same answers.
mod year_of_contacts {
    use std::time::Instant;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn sqlite() {
        bench(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn postgres() {
        bench(Backend::Postgres).await
    }

    async fn bench(backend: Backend) {
        // Where each report's time goes (`report read`: roll-ups, live tallies, live occupancy).
        let _ = tracing_subscriber::fmt().with_env_filter("helpline::supervision::reports=debug").with_writer(std::io::stderr).try_init();
        let Some(app) = TestApp::spawn(backend).await else { return };
        let n: i64 = std::env::var("REPORT_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
        add_user(&app.store, "maria", Role::Supervisor, &[], &[], &[], 1).await;
        // A supervisor of every helpline: an explicit grant (an empty list is none).
        app.store.accounts().set_user_all_helplines("maria", true).await.unwrap();
        let start = T0 - 365 * DAY;
        let step = 365 * DAY / n;
        let t = Instant::now();
        let users: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
        for (i, u) in users.iter().enumerate() {
            let h = ["children", "disability", "family_violence"][i % 3];
            let sql = "INSERT INTO users (id, username, display_name, password_hash, role, helplines, languages, created_at)
                       VALUES ($1, $1, $1, 'x', 'counsellor', $2, 'ro,ru', 0)";
            match backend {
                Backend::Sqlite => {
                    let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
                    sqlx::query(sql).bind(u).bind(h).execute(&pool).await.unwrap();
                    sqlx::query("INSERT INTO status_changes (id, user_id, at, status) VALUES ($1, $1, $2, 'available')")
                        .bind(u)
                        .bind(start)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
                    sqlx::query(sql).bind(u).bind(h).execute(&pool).await.unwrap();
                    sqlx::query("INSERT INTO status_changes (id, user_id, at, status) VALUES ($1, $1, $2, 'available')")
                        .bind(u)
                        .bind(start)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        }
        // i → helpline i % 3, language i % 4, 1 in 20 abandoned (1 in 3 of those short), waits 0-29 s, chats 5-15 min.
        let select = |i: &str, cat: &dyn Fn(&[&str]) -> String| {
            format!(
                "SELECT 'x' || {i}, 'chat',
                   CASE {i} % 3 WHEN 0 THEN 'children' WHEN 1 THEN 'disability' ELSE 'family_violence' END,
                   CASE {i} % 4 WHEN 0 THEN 'ro' WHEN 1 THEN 'ru' WHEN 2 THEN 'uk' ELSE 'en' END,
                   0,
                   CASE WHEN {i} % 20 = 0 THEN 'abandoned' ELSE 'ended' END,
                   'h' || {i},
                   {start} + {i} * {step},
                   CASE WHEN {i} % 20 = 0 THEN NULL ELSE {start} + {i} * {step} + ({i} * 7919) % 30000 END,
                   CASE WHEN {i} % 20 = 0 THEN {start} + {i} * {step} + ({i} % 3) * 4000
                        ELSE {start} + {i} * {step} + ({i} * 7919) % 30000 + 300000 + ({i} * 104729) % 600000 END,
                   CASE WHEN {i} % 20 = 0 THEN NULL ELSE {} END,
                   CASE WHEN {i} % 20 = 0 THEN 'caller_ended' ELSE 'counsellor_ended' END",
                cat(&[])
            )
        };
        let cols = "INSERT INTO contacts (id, channel, helpline, language, priority, state, resume_token_hash,
                    queued_at, answered_at, ended_at, counsellor_id, end_reason)";
        match backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
                let body = select("i", &|_| "'c' || substr('0' || (i % 50), -2, 2)".to_string());
                let sql =
                    format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) {cols} {body} FROM n", n - 1);
                sqlx::query(&sql).execute(&pool).await.unwrap();
                sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
                let body = select("i", &|_| "'c' || lpad((i % 50)::text, 2, '0')".to_string());
                let sql = format!("{cols} {body} FROM generate_series(0::bigint, {}::bigint) AS i", n - 1);
                sqlx::query(&sql).execute(&pool).await.unwrap();
                sqlx::query("VACUUM ANALYZE contacts").execute(&pool).await.unwrap();
            }
        }
        // Every answered contact has a submitted form with one or two categories.
        let forms = "INSERT INTO contact_forms (contact_id, helpline, counsellor_id, data, risk, status, updated_at, submitted_at)
            SELECT id, helpline, counsellor_id,
                   CASE WHEN queued_at % 3 = 0 THEN '{\"categories\":[\"mental_health\",\"family_relationships\"]}'
                        ELSE '{\"categories\":[\"violence_emotional\"]}' END,
                   'low', 'submitted', ended_at, ended_at
            FROM contacts WHERE counsellor_id IS NOT NULL";
        match backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
                sqlx::query(forms).execute(&pool).await.unwrap();
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
                sqlx::query(forms).execute(&pool).await.unwrap();
                sqlx::query("VACUUM ANALYZE contact_forms").execute(&pool).await.unwrap();
            }
        }
        eprintln!("{backend:?}: inserted {n} contacts and their forms in {:.1} s", t.elapsed().as_secs_f64());
        let maria = app.login("maria").await;
        let from = start;
        let to = T0;
        let month = to - 31 * DAY;
        let queries = [
            format!("from={from}&to={to}&by=day"),
            format!("from={from}&to={to}&by=day"),
            format!("helpline=children&from={from}&to={to}&by=day"),
            format!("from={from}&to={to}&by=day&format=csv"),
            format!("helpline=children&from={from}&to={to}&by=day&format=csv"),
            format!("from={from}&to={to}&by=day&utc_offset=%2B02:00"),
            format!("helpline=children&from={from}&to={to}&by=day&utc_offset=%2B02:00&format=csv"),
            format!("from={from}&to={to}&by=day&utc_offset=%2B05:30"),
            format!("helpline=children&from={from}&to={to}&by=day&utc_offset=%2B05:45&format=csv"),
            format!("from={from}&to={to}&by=day&utc_offset=-09:30"),
            format!("helpline=children&from={from}&to={to}&by=day&utc_offset=-05:00"),
            format!("from={month}&to={to}&by=hour"),
            format!("helpline=children&from={month}&to={to}&by=hour&format=csv"),
            format!("from={}&to={to}&by=hour", to - DAY),
        ];
        // REPORT_BENCH_ONLY=+05:30,by=hour times only the queries holding one of these strings.
        let only: Vec<String> =
            std::env::var("REPORT_BENCH_ONLY").map(|s| s.split(',').map(|p| p.replace('+', "%2B")).collect()).unwrap_or_default();
        let queries: Vec<String> = queries.into_iter().filter(|q| only.is_empty() || only.iter().any(|o| q.contains(o.as_str()))).collect();
        let mut answers = Vec::new();
        for when in ["live", "rolled up"] {
            if when == "rolled up" {
                let t = Instant::now();
                let p = helpline::store::rollup::roll_up(&app.store, app.clock.now_ms(), usize::MAX).await.unwrap();
                eprintln!("{backend:?}: rolled up {} hours in {:.1} s ({p:?})", p.rolled, t.elapsed().as_secs_f64());
            }
            let mut got = Vec::new();
            for query in &queries {
                let t = Instant::now();
                let res = get(&app, &maria, query).await;
                assert_eq!(res.status(), 200);
                let body = res.text().await.unwrap();
                eprintln!("{backend:?} {when}: {query}: {:.0} ms, {} bytes", t.elapsed().as_secs_f64() * 1000.0, body.len());
                got.push(
                    body.split(",\"as_of\":").next().unwrap_or_default().to_string()
                        + &body[body.find(",\"short_abandon_ms\"").unwrap_or(0)..],
                );
            }
            answers.push(got);
        }
        assert_eq!(answers[0], answers[1], "the same reports, live and rolled up");
        // Where a rolled-up year report spends its time: reading, then building the JSON.
        let q: std::collections::HashMap<String, String> = [("from", from.to_string()), ("to", to.to_string()), ("by", "day".to_string())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let known = vec!["children".to_string(), "disability".to_string(), "family_violence".to_string()];
        let req = helpline::supervision::reports::parse_request(&q, &known, to).unwrap();
        let t = Instant::now();
        let data = helpline::supervision::reports::fetch(&app.store, &req, app.clock.now_ms()).await.unwrap();
        let fetched = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let summary = helpline::supervision::reports::build(&data, &req);
        let built = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let json = serde_json::to_vec(&summary).unwrap();
        eprintln!(
            "{backend:?} rolled up, year by day: fetch {fetched:.0} ms, build {built:.0} ms, JSON {:.0} ms ({} bytes)",
            t.elapsed().as_secs_f64() * 1000.0,
            json.len()
        );
        let t = Instant::now();
        let f = figures::figures_at(&app.store, None, from, to, to).await.unwrap();
        eprintln!(
            "{backend:?}: figures::figures over the year {:.0} ms; offered {} SL {:?} occupancy {:?}",
            t.elapsed().as_secs_f64() * 1000.0,
            f.offered,
            f.service_level,
            f.occupancy
        );
        let t = Instant::now();
        let tallies = figures::fetch_tallies(&app.store, from, DAY, from, to, to).await.unwrap();
        eprintln!("{backend:?}: grouped tally query: {} groups in {:.0} ms", tallies.len(), t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let p = figures::fetch_presence(&app.store, from, to).await.unwrap();
        eprintln!("{backend:?}: presence: {} conversations in {:.0} ms", p.conversations.len(), t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let o = p.occupancy(
            None,
            &helpline::supervision::reports::bucket_bounds(from, to, helpline::supervision::reports::By::Day, time::UtcOffset::UTC),
            to,
        );
        eprintln!("{backend:?}: occupancy over {} days: {:.0} ms", o.len(), t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let rows = figures::fetch_contacts(&app.store, from, to).await.unwrap();
        eprintln!("{backend:?}: fetching the {} rows themselves: {:.0} ms", rows.len(), t.elapsed().as_secs_f64() * 1000.0);
        if backend == Backend::Postgres {
            // The plans of what a report runs (item: no sequential scan over a year).
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query("SET jit = off").execute(&pool).await.unwrap();
            let hours: Vec<String> = (0..365).flat_map(|d| [22, 23].map(move |h| (from + d * DAY + h * HOUR).to_string())).collect();
            let plans = [
                (
                    "day layer, a year",
                    format!(
                        "SELECT (day - {from}) / {DAY} AS bucket, helpline, channel, language, SUM(offered) FROM report_day_tallies
                     WHERE (day >= {from} AND day < {to}) GROUP BY 1, 2, 3, 4"
                    ),
                ),
                (
                    "hour layer, 730 edge hours",
                    format!(
                        "SELECT (hour - {from}) / {DAY} AS bucket, SUM(busy_ms), SUM(staffed_ms) FROM report_hour_occupancy
                     WHERE hour IN ({}) GROUP BY 1",
                        hours.join(", ")
                    ),
                ),
                (
                    "live tallies, one hour",
                    figures::TALLY_SQL
                        .replace("$1", &from.to_string())
                        .replace("$2", &HOUR.to_string())
                        .replace("$3", &(to - HOUR).to_string())
                        .replace("$4", &to.to_string())
                        .replace("$5", "5000")
                        .replace("$6", &to.to_string()),
                ),
                (
                    "live categories, one hour",
                    figures::CATEGORY_TALLY_SQL_POSTGRES
                        .replace("$1", &from.to_string())
                        .replace("$2", &HOUR.to_string())
                        .replace("$3", &(to - HOUR).to_string())
                        .replace("$4", &to.to_string())
                        .replace("$5", "5000")
                        .replace("$6", &to.to_string()),
                ),
                (
                    "live conversations, one hour",
                    figures::CONVERSATIONS_SQL
                        .replace("$1", &(to - HOUR - DAY).to_string())
                        .replace("$2", &(to - HOUR).to_string())
                        .replace("$3", &to.to_string()),
                ),
            ];
            for (what, sql) in plans {
                let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}")).fetch_all(&pool).await.unwrap();
                let plan: Vec<String> = rows.into_iter().map(|r| r.0).collect();
                eprintln!("Postgres plan, {what}:\n  {}", plan.join("\n  "));
            }
        }
        let t = Instant::now();
        let f = figures::figures(&app.store, Some("children"), to - 15 * MIN, to).await.unwrap();
        eprintln!("{backend:?}: live figures, last 15 min: {:.1} ms ({} offered)", t.elapsed().as_secs_f64() * 1000.0, f.offered);
    }
}

/// Issue 22's part of a report: AHT runs to the end of the wrap-up; the wrap-ups themselves, time away
/// by reason (per counsellor and helpline), and the messages and callbacks left with their own answer clock.
async fn wrap_up_away_time_messages_and_callbacks_are_reported(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let store = &app.store;
    let ana = add_user(store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    add_user(store, "root", Role::Admin, &[], &[], &[], 1).await;
    add_user(store, "vera", Role::Supervisor, &["family_violence"], &[], &[], 1).await;
    let mut s = Script { store, counsellor: ana.clone(), n: 0 };
    let at = |h: i64, m: i64| T0 + h * HOUR + m * MIN;
    let wrap = |contact: &str, ended: i64, until: i64, over: i64, reason: &'static str| {
        vec![
            Change::WrapUp { contact: contact.into(), counsellor: ana.clone(), until, at: ended },
            Change::WrapUpEnded { contact: contact.into(), counsellor: ana.clone(), reason, at: over },
        ]
    };
    // 1: answered after 10 s, 5 min of conversation, 30 s of wrap-up (ready).
    let one = s.queue("children", "ro", "chat", at(10, 0)).await;
    s.answer(&one, at(10, 0) + 10 * SEC).await;
    s.end(&one, at(10, 5) + 10 * SEC, false).await;
    store.contacts().apply_changes(&wrap(&one, at(10, 5) + 10 * SEC, at(10, 6) + 10 * SEC, at(10, 5) + 40 * SEC, "ready")).await.unwrap();
    // 2: answered after 5 s, 10 min of conversation, the 60 s limit.
    let two = s.queue("children", "ro", "chat", at(11, 0)).await;
    s.answer(&two, at(11, 0) + 5 * SEC).await;
    s.end(&two, at(11, 10) + 5 * SEC, false).await;
    store.contacts().apply_changes(&wrap(&two, at(11, 10) + 5 * SEC, at(11, 11) + 5 * SEC, at(11, 11) + 5 * SEC, "limit")).await.unwrap();
    // Ana away: training 30 min, then after two missed offers 10 min.
    let status = |status: &'static str, reason: Option<&'static str>, t: i64| Change::CounsellorStatus {
        counsellor: ana.clone(),
        status,
        reason,
        at: t,
    };
    store.contacts().apply_changes(&[status("available", None, at(9, 0))]).await.unwrap();
    store.contacts().apply_changes(&[Change::Away { counsellor: ana.clone(), reason: "training".into(), at: at(12, 0) }]).await.unwrap();
    store.contacts().apply_changes(&[status("available", None, at(12, 30))]).await.unwrap();
    store.contacts().apply_changes(&[status("away", Some("missed_offers"), at(13, 0))]).await.unwrap();
    store.contacts().apply_changes(&[status("offline", None, at(13, 10))]).await.unwrap();
    // A message left at night, routed at 08:00 and answered 2 min later; a callback routed at 08:30, not answered yet.
    let message = s.queue("children", "ro", "message", at(8, 0)).await;
    s.answer(&message, at(8, 2)).await;
    s.end(&message, at(8, 12), false).await;
    s.queue("children", "ro", "callback", at(8, 30)).await;
    let root = app.login("root").await;
    let window = format!("helpline=children&from={T0}&to={}", T0 + DAY);
    let r = json(&app, &root, &window).await;
    // AHT includes the wrap-up: (5 min 30 s + 11 min + 10 min of the message, no wrap-up) / 3.
    let aht = ((5 * 60 + 30) + (11 * 60) + (10 * 60)) as f64 * 1000.0 / 3.0;
    assert!(close(&r["total"]["figures"]["aht_ms"], aht), "{}", r["total"]["figures"]);
    let w = &r["work"];
    assert_eq!(w["wrap_up"], serde_json::json!({"count": 2, "total_ms": 90_000, "mean_ms": 45_000.0}), "{w}");
    assert_eq!(w["wrap_up_by_helpline"]["children"]["count"], 2, "{w}");
    assert_eq!(w["away_by_reason"], serde_json::json!({"training": 1_800_000, "missed_offers": 600_000}), "{w}");
    assert_eq!(w["away_by_helpline"]["children"], w["away_by_reason"], "{w}");
    let rows = w["away_by_counsellor"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{w}");
    assert!(rows.iter().all(|r| r["counsellor_id"] == ana.as_str() && r["display_name"].is_string()), "{w}");
    assert_eq!(
        w["messages"],
        serde_json::json!({"left": 1, "answered": 1, "abandoned": 0, "waiting": 0, "mean_answer_ms": 120_000.0}),
        "its own answer clock, from 08:00: {w}"
    );
    assert_eq!(
        (w["callbacks"]["left"].as_i64(), w["callbacks"]["waiting"].as_i64(), w["callbacks"]["answered"].as_i64()),
        (Some(1), Some(1), Some(0)),
        "{w}"
    );
    // Another helpline's report: none of children's wrap-ups, nor its counsellor's time away.
    let vera = app.login("vera").await;
    let other = json(&app, &vera, &format!("helpline=family_violence&from={T0}&to={}", T0 + DAY)).await;
    assert_eq!(other["work"]["wrap_up"]["count"], 0, "{}", other["work"]);
    assert_eq!(other["work"]["away_by_reason"], serde_json::json!({}), "{}", other["work"]);
    assert_eq!(other["work"]["messages"]["left"], 0);
    // All helplines (an admin): the same wrap-ups and time away.
    let all = json(&app, &root, &format!("from={T0}&to={}", T0 + DAY)).await;
    assert_eq!(all["work"]["wrap_up"]["count"], 2);
    assert_eq!(all["work"]["away_by_reason"], w["away_by_reason"]);
}

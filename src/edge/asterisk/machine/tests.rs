use super::*;
use serde_json::json;

fn caller(id: &str) -> Channel {
    Channel {
        id: id.into(),
        state: "Up".into(),
        caller_number: "+37369123456".into(),
        language: "ro".into(),
        app_name: "Stasis".into(),
        app_data: "helpline,116111".into(),
        created: 1_000,
    }
}

fn leg(id: &str, state: &str) -> Channel {
    Channel {
        id: id.into(),
        state: state.into(),
        caller_number: String::new(),
        language: String::new(),
        app_name: "Stasis".into(),
        app_data: String::new(),
        created: 5_000,
    }
}

fn requests(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Ari(r) => {
                let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Some(format!("{} {}{}", r.method.as_str(), r.path, if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }))
            }
            Output::Hub(_) => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<serde_json::Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Hub(e) => Some(serde_json::to_value(e).expect("json")),
            Output::Ari(_) => None,
        })
        .collect()
}

fn start(m: &mut Machine, id: &str, now: i64) -> Vec<Output> {
    m.handle(now, Input::Ari(AriEvent::StasisStart { channel: caller(id), args: vec!["116111".into()], at: now }))
}

fn connect(command_id: &str, call_id: &str, extension: &str) -> Input {
    Input::Hub(TelephonyCommand::Connect {
        command_id: command_id.into(),
        call_id: call_id.into(),
        counsellor: "c".into(),
        extension: extension.into(),
    })
}

/// A call up to a bridged conversation; returns the leg's id.
fn bridged(m: &mut Machine, id: &str) -> String {
    start(m, id, 1_000);
    m.handle(1_500, connect("k1", id, "201"));
    let leg = leg_id(id, "k1");
    m.handle(
        4_000,
        Input::Ari(AriEvent::StasisStart { channel: self::leg(&leg, "Up"), args: vec!["counsellor".into(), id.into()], at: 4_000 }),
    );
    leg
}

#[test]
fn a_caller_entering_the_app_is_answered_held_and_offered_with_a_stable_event_id() {
    let mut m = Machine::new(Config::default());
    let out = start(&mut m, "17.1", 1_000);
    assert_eq!(requests(&out), ["POST /channels/17.1/answer", "POST /channels/17.1/moh?mohClass=default"]);
    assert_eq!(
        events(&out),
        [json!({"type": "call_offered", "event_id": "17.1:offered", "call_id": "17.1", "dialled": "116111",
                "caller": "+37369123456", "language": "ro", "at": "1970-01-01T00:00:01Z"})]
    );
    // The same StasisStart again (a replayed event) changes nothing.
    assert!(start(&mut m, "17.1", 1_200).is_empty());
}

#[test]
fn connect_originates_the_leg_and_its_answer_bridges_and_reports_answered() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    let out = m.handle(1_500, connect("k1", "17.1", "201"));
    assert_eq!(requests(&out), ["POST /channels?endpoint=PJSIP/201&app=helpline&appArgs=counsellor,17.1&channelId=17.1-leg-k1&timeout=30"]);
    assert_eq!(events(&out), [json!({"type": "command_ack", "command_id": "k1"})]);
    let out = m.handle(
        4_000,
        Input::Ari(AriEvent::StasisStart { channel: leg("17.1-leg-k1", "Up"), args: vec!["counsellor".into(), "17.1".into()], at: 4_000 }),
    );
    assert_eq!(
        requests(&out),
        [
            "POST /bridges/helpline-17.1?type=mixing",
            "DELETE /channels/17.1/moh",
            "POST /bridges/helpline-17.1/addChannel?channel=17.1,17.1-leg-k1"
        ]
    );
    assert_eq!(events(&out)[0]["event_id"], "17.1:answered");
    // A repeated connect (after a reconnect) is acknowledged again and not carried out twice.
    let out = m.handle(5_000, connect("k1", "17.1", "201"));
    assert!(requests(&out).is_empty());
    assert_eq!(events(&out), [json!({"type": "command_ack", "command_id": "k1"})]);
}

#[test]
fn either_side_hanging_up_a_bridged_call_ends_it_by_that_side() {
    let mut m = Machine::new(Config::default());
    bridged(&mut m, "17.1");
    let out = m.handle(9_000, Input::Ari(AriEvent::Gone { channel_id: "17.1".into(), at: 9_000 }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1-leg-k1", "DELETE /bridges/helpline-17.1"]);
    assert_eq!(events(&out)[0]["by"], "caller");
    assert_eq!(events(&out)[0]["event_id"], "17.1:ended");
    // The leg's own end afterwards changes nothing.
    assert!(m.handle(9_001, Input::Ari(AriEvent::Gone { channel_id: "17.1-leg-k1".into(), at: 9_001 })).is_empty());

    let mut m = Machine::new(Config::default());
    let leg = bridged(&mut m, "18.1");
    let out = m.handle(9_000, Input::Ari(AriEvent::Gone { channel_id: leg, at: 9_000 }));
    assert_eq!(requests(&out), ["DELETE /channels/18.1", "DELETE /bridges/helpline-18.1"]);
    assert_eq!(events(&out)[0]["by"], "counsellor");
    assert!(m.followed_calls().is_empty());
}

#[test]
fn a_caller_gone_while_waiting_abandoned_and_the_ringing_leg_hung_up() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    m.handle(1_500, connect("k1", "17.1", "201"));
    let out = m.handle(3_000, Input::Ari(AriEvent::Gone { channel_id: "17.1".into(), at: 3_000 }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1-leg-k1"]);
    assert_eq!(
        events(&out),
        [json!({"type": "call_abandoned", "event_id": "17.1:abandoned", "call_id": "17.1", "at": "1970-01-01T00:00:03Z"})]
    );
}

#[test]
fn cancel_hangs_up_the_ringing_leg_and_a_late_answer_of_it_is_hung_up() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    m.handle(1_500, connect("k1", "17.1", "201"));
    let out = m.handle(9_500, Input::Hub(TelephonyCommand::Cancel { command_id: "k2".into(), call_id: "17.1".into() }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1-leg-k1"]);
    let out = m.handle(9_600, Input::Ari(AriEvent::StasisStart { channel: leg("17.1-leg-k1", "Up"), args: vec![], at: 9_600 }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1-leg-k1"]);
    assert!(events(&out).is_empty());
    // The next counsellor.
    let out = m.handle(9_700, connect("k3", "17.1", "202"));
    assert!(requests(&out)[0].contains("endpoint=PJSIP/202"), "{out:?}");
}

#[test]
fn hold_and_unhold_take_the_caller_out_of_the_bridge_with_music_and_back() {
    let mut m = Machine::new(Config::default());
    bridged(&mut m, "17.1");
    let out = m.handle(5_000, Input::Hub(TelephonyCommand::Hold { command_id: "h".into(), call_id: "17.1".into() }));
    assert_eq!(requests(&out), ["POST /bridges/helpline-17.1/removeChannel?channel=17.1", "POST /channels/17.1/moh?mohClass=default"]);
    let out = m.handle(6_000, Input::Hub(TelephonyCommand::Unhold { command_id: "u".into(), call_id: "17.1".into() }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1/moh", "POST /bridges/helpline-17.1/addChannel?channel=17.1"]);
    // Unhold of a call not on hold does nothing (but is acknowledged).
    let out = m.handle(6_100, Input::Hub(TelephonyCommand::Unhold { command_id: "u2".into(), call_id: "17.1".into() }));
    assert!(requests(&out).is_empty());
    assert_eq!(events(&out).len(), 1);
}

#[test]
fn hangup_ends_the_call_by_the_counsellor() {
    let mut m = Machine::new(Config::default());
    bridged(&mut m, "17.1");
    let out = m.handle(7_000, Input::Hub(TelephonyCommand::Hangup { command_id: "x".into(), call_id: "17.1".into() }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1", "DELETE /channels/17.1-leg-k1", "DELETE /bridges/helpline-17.1"]);
    let ev = events(&out);
    assert_eq!((ev[0]["type"].as_str(), ev[0]["by"].as_str()), (Some("call_ended"), Some("counsellor")));
    assert_eq!(ev[1], json!({"type": "command_ack", "command_id": "x"}));
    // The caller's channel going away afterwards sends nothing more.
    assert!(m.handle(7_100, Input::Ari(AriEvent::Gone { channel_id: "17.1".into(), at: 7_100 })).is_empty());
}

#[test]
fn reject_plays_the_announcement_then_hangs_up() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    let out = m.handle(1_100, Input::Hub(TelephonyCommand::Reject { call_id: "17.1".into(), reason: "blocked".into() }));
    assert_eq!(requests(&out), ["POST /channels/17.1/play?media=sound:vm-goodbye&playbackId=reject-17.1"]);
    assert!(events(&out).is_empty(), "reject has no command id to acknowledge");
    let out = m.handle(3_000, Input::Ari(AriEvent::PlaybackFinished { playback_id: "reject-17.1".into() }));
    assert_eq!(requests(&out), ["DELETE /channels/17.1"]);
    assert!(m.handle(3_100, Input::Ari(AriEvent::Gone { channel_id: "17.1".into(), at: 3_100 })).is_empty());
}

#[test]
fn events_are_sent_again_until_acknowledged() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    assert!(m.handle(5_999, Input::Tick).is_empty());
    assert_eq!(events(&m.handle(6_000, Input::Tick))[0]["event_id"], "17.1:offered");
    assert_eq!(events(&m.handle(6_100, Input::HubConnected))[0]["event_id"], "17.1:offered");
    m.handle(6_200, Input::Hub(TelephonyCommand::Ack { event_id: "17.1:offered".into() }));
    assert!(m.handle(20_000, Input::Tick).is_empty());
    assert!(m.handle(20_000, Input::HubConnected).is_empty());
    assert!(m.unacknowledged().is_empty());
}

#[test]
fn a_restarted_adapter_takes_up_calls_from_the_channels_with_the_same_event_ids() {
    let mut m = Machine::new(Config::default());
    let leg_id = leg_id("17.1", "k1");
    let out = m.handle(50_000, Input::Channels(vec![caller("17.1"), leg(&leg_id, "Up"), leg("other", "Up")]));
    let ev = events(&out);
    assert_eq!(ev.iter().map(|e| e["event_id"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ["17.1:offered", "17.1:answered"]);
    assert!(requests(&out).is_empty(), "nothing is done again to channels already set up: {out:?}");
    // The counsellor hangs up later: the call ends, by the counsellor.
    let out = m.handle(60_000, Input::Ari(AriEvent::Gone { channel_id: leg_id, at: 60_000 }));
    assert_eq!(events(&out)[0]["by"], "counsellor");
}

#[test]
fn a_waiting_caller_taken_up_again_gets_music_again() {
    let mut m = Machine::new(Config::default());
    let out = m.handle(50_000, Input::Channels(vec![caller("17.1")]));
    assert_eq!(requests(&out), ["POST /channels/17.1/moh?mohClass=default"]);
    let mut ringing = caller("18.1");
    ringing.state = "Ring".into();
    let out = m.handle(50_000, Input::Channels(vec![caller("17.1"), ringing]));
    assert_eq!(requests(&out), ["POST /channels/18.1/answer", "POST /channels/18.1/moh?mohClass=default"]);
}

#[test]
fn calls_whose_channels_went_away_while_disconnected_are_ended() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    bridged(&mut m, "18.1");
    let out = m.handle(30_000, Input::Channels(vec![]));
    let ev = events(&out);
    assert_eq!(ev[0]["type"], "call_abandoned");
    assert_eq!((ev[1]["type"].as_str(), ev[1]["by"].as_str()), (Some("call_ended"), Some("caller")));
    assert!(m.followed_calls().is_empty());
}

#[test]
fn an_unknown_call_error_stops_the_resending_for_it() {
    let mut m = Machine::new(Config::default());
    start(&mut m, "17.1", 1_000);
    m.handle(
        1_100,
        Input::Hub(TelephonyCommand::Error {
            code: crate::protocol::ErrorCode::UnknownCall,
            message: String::new(),
            reference: Some("17.1".into()),
            retry_after_ms: None,
        }),
    );
    assert!(m.unacknowledged().is_empty());
}

#[test]
fn ari_json_is_read_with_asterisk_times() {
    assert_eq!(ari_time("1970-01-01T00:00:01.250+0000"), Some(1_250));
    assert_eq!(ari_time("1970-01-01T02:00:01.000+0200"), Some(1_000));
    assert_eq!(ari_time("nonsense"), None);
    let v = json!({"type": "StasisStart", "timestamp": "1970-01-01T00:00:02.000+0000", "args": ["116111"], "application": "helpline",
        "channel": {"id": "17.1", "state": "Up", "caller": {"name": "", "number": "069"}, "language": "ru",
                    "dialplan": {"app_name": "Stasis", "app_data": "helpline,116111"}, "creationtime": "1970-01-01T00:00:01.000+0000"}});
    let AriEvent::StasisStart { channel, args, at } = parse_event(&v, 9) else { panic!("not a StasisStart") };
    assert_eq!((channel.caller_number.as_str(), channel.language.as_str(), channel.created, at), ("069", "ru", 1_000, 2_000));
    assert_eq!(args, ["116111"]);
    assert_eq!(parse_event(&json!({"type": "StasisEnd", "channel": {}}), 0), AriEvent::Other);
    assert_eq!(parse_event(&json!("garbage"), 0), AriEvent::Other);
    assert_eq!(
        parse_event(&json!({"type": "ChannelDestroyed", "channel": {"id": "x"}}), 7),
        AriEvent::Gone { channel_id: "x".into(), at: 7 }
    );
}

//! Fuzz targets on the stable toolchain (proptest): the protocol decoder on arbitrary, generated and mutated frames, never panicking, always a typed request or a stable error code.
//!
//! A short run is part of `cargo test` (256 cases each). The long run is the same tests with
//! more cases: `HELPLINE_FUZZ_CASES=100000 cargo test --release --lib -- fuzz:: routing::` (see
//! `docs/security.md`). The routing engine's targets live beside its model in `routing/tests.rs`
//! and `routing/equivalence.rs` and read the same variable.

use proptest::prelude::*;

use crate::protocol::{
    check_message, decode, CallerRequest, CounsellorRequest, DecodeError, ErrorCode, KnownTypes, ServerEvent, SupervisorRequest,
    TelephonyEvent, MAX_FRAME_BYTES,
};

use crate::routing::tests::fuzz_config as config;

/// Valid frames of every endpoint: the seeds that mutations start from.
const SEEDS: &[&str] = &[
    r#"{"type":"start","helpline":"children","language":"ro"}"#,
    r#"{"type":"resume","resume_token":"vH3abc","last_seq":4}"#,
    r#"{"type":"message","client_id":"m-1","text":"Bună, am nevoie de ajutor"}"#,
    r#"{"type":"typing","active":false}"#,
    r#"{"type":"end"}"#,
    r#"{"type":"ping"}"#,
    r#"{"type":"status","status":"available"}"#,
    r#"{"type":"accept","contact_id":"01a206cb-0000-7000-8000-000000000001"}"#,
    r#"{"type":"message","contact_id":"01a206cb-0000-7000-8000-000000000001","client_id":"a-1","text":"Sunt aici."}"#,
    r#"{"type":"escalate","contact_id":"c","kind":"child_protection","risk":"high","reason":"r","district":"Chișinău"}"#,
    r#"{"type":"set_status","counsellor_id":"u","status":"away"}"#,
    r#"{"type":"transfer","contact_id":"c","counsellor_id":null,"helpline":"women"}"#,
    r#"{"type":"whisper","contact_id":"c","text":"ask about school"}"#,
    r#"{"type":"acknowledge","escalation_id":"e"}"#,
    r#"{"type":"call_offered","event_id":"e1","call_id":"k1","dialled":"116111","caller":"+37369000000","at":"2026-11-23T10:00:00.250Z"}"#,
    r#"{"type":"call_ended","event_id":"e2","call_id":"k1","by":"caller","at":1700000000000}"#,
];

/// Field names and `type` values the decoders know, so generated objects reach past the first checks.
const NAMES: &[&str] = &[
    "type",
    "helpline",
    "language",
    "resume_token",
    "last_seq",
    "client_id",
    "text",
    "active",
    "status",
    "contact_id",
    "counsellor_id",
    "kind",
    "risk",
    "reason",
    "district",
    "escalation_id",
    "event_id",
    "call_id",
    "dialled",
    "caller",
    "at",
    "by",
    "start",
    "resume",
    "message",
    "typing",
    "end",
    "ping",
    "accept",
    "decline",
    "escalate",
    "set_status",
    "to_front",
    "offer_to",
    "transfer",
    "monitor",
    "unmonitor",
    "whisper",
    "join",
    "acknowledge",
    "call_offered",
    "call_answered",
    "call_ended",
    "call_abandoned",
    "available",
    "away",
    "offline",
];

/// One decode under test: whatever the input, a typed request or a stable error code; never a panic.
fn check<T>(text: &str) -> Result<(), TestCaseError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + KnownTypes + PartialEq + std::fmt::Debug,
{
    match decode::<T>(text) {
        Ok(request) => {
            // What decodes re-encodes to a frame that decodes to the same request.
            let again = serde_json::to_string(&request).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decode::<T>(&again).ok(), Some(request), "round trip of {}", text);
            prop_assert!(text.len() <= MAX_FRAME_BYTES);
        }
        Err(e) => check_error(text, &e)?,
    }
    Ok(())
}

/// An error has one of the decoder's four codes, the one the input deserves, and an error frame that is JSON.
fn check_error(text: &str, e: &DecodeError) -> Result<(), TestCaseError> {
    let expected = if text.len() > MAX_FRAME_BYTES {
        vec![ErrorCode::TooLarge]
    } else {
        match serde_json::from_str::<serde_json::Value>(text) {
            Err(_) => vec![ErrorCode::BadJson],
            Ok(v) if !v.is_object() => vec![ErrorCode::BadJson],
            Ok(v) if !v["type"].is_string() => vec![ErrorCode::UnknownType],
            Ok(_) => vec![ErrorCode::UnknownType, ErrorCode::BadField],
        }
    };
    prop_assert!(expected.contains(&e.code), "{:?} for {:?}, expected one of {:?}", e.code, text, expected);
    prop_assert!(!e.message.is_empty());
    let frame = ServerEvent::error(e.code, e.message.clone()).to_json();
    prop_assert!(serde_json::from_str::<serde_json::Value>(&frame).is_ok(), "error frame is not JSON: {}", frame);
    Ok(())
}

/// Every endpoint's decoder on one text.
fn check_all(text: &str) -> Result<(), TestCaseError> {
    check::<CallerRequest>(text)?;
    check::<CounsellorRequest>(text)?;
    check::<SupervisorRequest>(text)?;
    // Telephony times are re-encoded as RFC 3339, which cannot show every i64 of milliseconds:
    // the round trip is not a property there, only "typed or a stable code".
    match decode::<TelephonyEvent>(text) {
        Ok(_) => prop_assert!(text.len() <= MAX_FRAME_BYTES),
        Err(e) => check_error(text, &e)?,
    }
    Ok(())
}

/// Any JSON value, with names and strings the decoders know often enough to reach their field checks.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let name = || prop_oneof![3 => prop::sample::select(NAMES).prop_map(str::to_string), 1 => any::<String>()];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(1u64 << 63)].prop_map(Value::from),
        name().prop_map(Value::String),
        prop::collection::vec(any::<char>(), 0..40).prop_map(|c| Value::String(c.into_iter().collect())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..8).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A frame shaped like a request: an object with a `type` (known or not) and random fields.
fn request_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![4 => prop::sample::select(NAMES).prop_map(serde_json::Value::from), 1 => json_value()],
        prop::collection::vec((prop::sample::select(NAMES), json_value()), 0..6),
    )
        .prop_map(|(kind, fields)| {
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), kind);
            for (k, v) in fields {
                obj.insert(k.to_string(), v);
            }
            serde_json::Value::Object(obj).to_string()
        })
}

/// One change to a frame's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
    Splice { at: usize, text: String },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = || any::<usize>();
    prop_oneof![
        (at(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (at(), prop_oneof![Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b','), Just(b':'), Just(0u8), any::<u8>()])
            .prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (at(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        at().prop_map(|at| Mutation::Truncate { at }),
        (at(), 1usize..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (
            at(),
            prop_oneof![
                Just("\\u0000".to_string()),
                Just("\\ud800".to_string()),
                Just("1e999".to_string()),
                Just("-9223372036854775809".to_string()),
                Just("[".repeat(200)),
                Just(",\"type\":\"end\"".to_string()),
                Just(",\"extra\":1".to_string()),
                "\\PC{0,12}",
            ]
        )
            .prop_map(|(at, text)| Mutation::Splice { at, text }),
    ]
}

fn mutate(seed: &str, mutations: &[Mutation]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for m in mutations {
        let n = bytes.len();
        let pos = |at: usize| if n == 0 { 0 } else { at % (n + 1) };
        match m {
            Mutation::Flip { at, bit } if n > 0 => bytes[at % n] ^= 1u8 << *bit,
            Mutation::Flip { .. } => {}
            Mutation::Insert { at, byte } => bytes.insert(pos(*at), *byte),
            Mutation::Delete { at, len } => {
                let start = pos(*at);
                bytes.drain(start..(start + len).min(n));
            }
            Mutation::Truncate { at } => bytes.truncate(pos(*at)),
            Mutation::Duplicate { at, len } => {
                let start = pos(*at);
                let piece = bytes[start..(start + len).min(n)].to_vec();
                let to = pos(at.wrapping_mul(31));
                bytes.splice(to..to, piece);
            }
            Mutation::Splice { at, text } => {
                let to = pos(*at);
                bytes.splice(to..to, text.bytes());
            }
        }
    }
    // WebSocket text frames are UTF-8 (the socket layer refuses the rest): fuzz what can arrive.
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes, as text.
    #[test]
    fn fuzz_decode_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_all(&String::from_utf8_lossy(&bytes))?;
    }

    /// Arbitrary Unicode strings.
    #[test]
    fn fuzz_decode_arbitrary_strings(text in any::<String>()) {
        check_all(&text)?;
    }

    /// Any JSON value, and objects shaped like requests.
    #[test]
    fn fuzz_decode_json_shapes(value in json_value(), request in request_like()) {
        check_all(&value.to_string())?;
        check_all(&request)?;
    }

    /// Valid frames with a few bytes changed.
    #[test]
    fn fuzz_decode_mutated_valid_frames(
        seed in prop::sample::select(SEEDS),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        check_all(&mutate(seed, &mutations))?;
    }

    /// Deep nesting and sizes around the limit: an error, not a stack overflow or a huge allocation.
    #[test]
    fn fuzz_decode_depth_and_size(depth in 1usize..20_000, pad in 0usize..64, open in prop::sample::select(&["[", "{\"a\":"][..])) {
        let deep = format!("{{\"type\":\"message\",\"client_id\":{}}}", open.repeat(depth));
        check_all(&deep)?;
        let text = "x".repeat(MAX_FRAME_BYTES - 40 + pad);
        check_all(&format!(r#"{{"type":"message","client_id":"c","text":"{text}"}}"#))?;
    }

    /// The message checks on any client id and text: a stable code, never a panic.
    #[test]
    fn fuzz_check_message(client_id in any::<String>(), text in any::<String>()) {
        match check_message(&client_id, &text) {
            Ok(()) => {
                prop_assert!(!client_id.is_empty() && client_id.len() <= crate::protocol::MAX_CLIENT_ID_BYTES);
                prop_assert!(!text.trim().is_empty() && text.chars().count() <= crate::protocol::MAX_TEXT_CHARS);
            }
            Err(e) => prop_assert!(matches!(e.code, ErrorCode::BadField | ErrorCode::TooLarge)),
        }
    }
}

#[test]
fn seeds_are_valid_frames() {
    for seed in SEEDS {
        let ok = decode::<CallerRequest>(seed).is_ok()
            || decode::<CounsellorRequest>(seed).is_ok()
            || decode::<SupervisorRequest>(seed).is_ok()
            || decode::<TelephonyEvent>(seed).is_ok();
        assert!(ok, "seed does not decode: {seed}");
    }
}

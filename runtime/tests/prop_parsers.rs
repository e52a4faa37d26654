//! Fuzzing of the runtime's parsers with `proptest` (nightly Rust, which
//! `cargo fuzz` needs, is not available here): callback tokens, schedule
//! expressions (`rate`/`cron`/`at`, with time zones), the store wire protocol
//! and journal decoding. Each property runs a bounded number of cases (a few
//! seconds in all) under plain `cargo test`; none may panic, and what parses
//! must behave (tokens verify only with their seed, wire values round-trip).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use durafn_runtime::model::{ExecutionId, OpKind, OpStatus, Operation, Timestamp};
use durafn_runtime::store::remote::wire::{Answer, Call, WireError, WireJournal};
use durafn_runtime::trigger::callback::{CallbackRef, token};
use durafn_runtime::trigger::schedule::ScheduleSpec;
use proptest::prelude::*;
use serde_json::{Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Short decimals only: without serde_json's `float_roundtrip` feature a
        // 17-digit float can come back one ULP off (see docs/reliability.md).
        any::<i32>().prop_map(|n| json!(f64::from(n) / 4.0)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("call"),
            Just("id"),
            Just("op"),
            Just("rev"),
            Just("put_operation"),
            Just("SUCCEEDED"),
            Just("STEP"),
            Just("x#1"),
            Just("cb1"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,12}",
                    prop_oneof![
                        Just("call"),
                        Just("id"),
                        Just("op"),
                        Just("new"),
                        Just("now"),
                        Just("epoch"),
                        Just("type"),
                        Just("name"),
                        Just("status"),
                        Just("attempt"),
                        Just("started_at"),
                        Just("rev"),
                        Just("ok"),
                        Just("err"),
                        Just("kind"),
                        Just("message"),
                        Just("execution"),
                        Just("operations"),
                        Just("events"),
                        Just("outcome"),
                    ]
                    .prop_map(String::from),
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn op_id() -> impl Strategy<Value = String> {
    prop::collection::vec(1u32..50, 1..4)
        .prop_map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
}

fn exec_id() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9_-]{1,40}", "[a-z]{1,8}::[0-9]{1,3}", ".{1,20}"]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn callback_token_parsing_never_panics(s in ".{0,120}") {
        let _ = CallbackRef::parse(&s);
    }

    #[test]
    fn callback_tokens_look_like_tokens_but_are_mutated(
        hex in "[0-9a-fA-F]{0,40}", op in "[0-9.]{0,10}", mac in "[0-9a-zA-Z_-]{0,50}", extra in ".{0,5}"
    ) {
        for t in [format!("cb1.{hex}.{op}.{mac}"), format!("cb1.{hex}.{op}.{mac}{extra}"), format!("cb1.{hex}.{mac}")] {
            if let Some(r) = CallbackRef::parse(&t) {
                prop_assert!(!r.verify(""), "an empty seed never verifies");
            }
        }
    }

    #[test]
    fn a_token_verifies_with_its_seed_only(
        id in exec_id(), op in op_id(), seed in "[a-z0-9]{8,32}", other in "[a-z0-9]{8,32}",
        flip in 0usize..200
    ) {
        let Ok(exec) = ExecutionId::new(id) else { return Ok(()) };
        let t = token(&exec, &seed, &op);
        let r = CallbackRef::parse(&t).expect("a minted token parses");
        prop_assert_eq!(&r.execution_id, &exec);
        prop_assert_eq!(&r.op_id, &op);
        prop_assert!(r.verify(&seed));
        prop_assert!(seed == other || !r.verify(&other));
        // One changed character: it no longer parses, or no longer verifies
        // (unless the change was to an equivalent hex case).
        let mut bytes = t.clone().into_bytes();
        let i = flip % bytes.len();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let mutated = String::from_utf8(bytes).unwrap();
        if let Some(m) = CallbackRef::parse(&mutated) {
            prop_assert!(
                !m.verify(&seed) || (m.execution_id == exec && m.op_id == op),
                "{mutated} verified for another operation"
            );
        }
    }
}

fn schedule_expr() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        Just("L".to_string()),
        "[0-9]{1,3}",
        "[0-9]{1,2}-[0-9]{1,2}",
        "[0-9]{1,2}/[0-9]{1,3}",
        "\\*/[0-9]{1,3}",
        "[0-9]{1,2},[0-9]{1,2}",
        "[0-9]{1,2}L",
        "[0-9]#[0-9]",
        "[0-9]{1,2}W",
        "LW",
        "(MON|TUE|SUN|JAN|DEC|mon|FOO)(-(FRI|SAT))?",
        ".{0,4}",
    ];
    prop_oneof![
        (
            any::<i64>(),
            prop_oneof![
                Just("minute"),
                Just("minutes"),
                Just("hour"),
                Just("hours"),
                Just("day"),
                Just("days"),
                Just("weeks"),
                Just("")
            ]
        )
            .prop_map(|(n, u)| format!("rate({n} {u})")),
        (0u32..100_000, "[a-z]{0,8}").prop_map(|(n, u)| format!("rate({n} {u})")),
        prop::collection::vec(field, 0..8).prop_map(|f| format!("cron({})", f.join(" "))),
        (
            "[0-9]{1,5}",
            "[0-9]{1,2}",
            "[0-9]{1,2}",
            "[0-9]{1,2}",
            "[0-9]{1,2}",
            "[0-9]{1,2}"
        )
            .prop_map(|(y, mo, d, h, mi, s)| format!("at({y}-{mo}-{d}T{h}:{mi}:{s})")),
        ".{0,40}",
    ]
}

fn timezone() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("UTC".to_string())),
        Just(Some("Europe/Paris".to_string())),
        Just(Some("America/New_York".to_string())),
        Just(Some("Australia/Lord_Howe".to_string())),
        ".{0,20}".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn schedule_expressions_parse_or_fail_cleanly_and_fire_forward(
        expr in schedule_expr(), tz in timezone(), after in 0i64..4_102_444_800_000i64
    ) {
        if let Ok(spec) = ScheduleSpec::parse(&expr, tz.as_deref()) {
            let after = Timestamp(after);
            let mut t = after;
            // Fire times move forward.
            for _ in 0..3 {
                match spec.next_after(t, after) {
                    Some(next) => {
                        prop_assert!(next > t, "{expr} {tz:?}: {next:?} after {t:?}");
                        t = next;
                    }
                    None => break,
                }
            }
        }
    }
}

fn op_kind() -> impl Strategy<Value = OpKind> {
    prop_oneof![
        Just(OpKind::Step),
        Just(OpKind::Sleep),
        Just(OpKind::Callback),
        Just(OpKind::Event),
        Just(OpKind::Child),
        Just(OpKind::Condition),
    ]
}

fn op_status() -> impl Strategy<Value = OpStatus> {
    prop_oneof![
        Just(OpStatus::Pending),
        Just(OpStatus::Started),
        Just(OpStatus::Succeeded),
        Just(OpStatus::Failed),
        Just(OpStatus::TimedOut),
        Just(OpStatus::Cancelled),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    (
        op_id(),
        op_kind(),
        ".{0,16}",
        op_status(),
        0u32..10,
        prop::option::of(json_value()),
        0i64..1 << 50,
        prop::option::of(0i64..1 << 50),
        prop::option::of(0i64..1 << 50),
        1u64..100,
    )
        // `Some(null)` is written as `"result": null` and read back as `None`:
        // the same to every reader, so generate `None` for it.
        .prop_map(
            |(id, kind, name, status, attempt, result, started, ended, wake, rev)| Operation {
                id,
                kind,
                name,
                status,
                attempt,
                result: result.filter(|r| !r.is_null()),
                error: None,
                started_at: Timestamp(started),
                ended_at: ended.map(Timestamp),
                wake_at: wake.map(Timestamp),
                rev,
            },
        )
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn wire_calls_decode_any_json_without_panicking(v in json_value()) {
        let text = v.to_string();
        let _ = serde_json::from_str::<Call>(&text);
        let _ = serde_json::from_str::<Answer<WireJournal>>(&text);
        let _ = serde_json::from_str::<Answer<Option<Operation>>>(&text);
        let _ = serde_json::from_str::<WireError>(&text);
    }

    #[test]
    fn wire_calls_decode_any_bytes_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = serde_json::from_slice::<Call>(&bytes);
        let _ = serde_json::from_slice::<Answer<WireJournal>>(&bytes);
    }

    #[test]
    fn a_put_operation_call_round_trips(id in "[a-z0-9-]{1,30}", op in operation()) {
        let exec = ExecutionId::new(id).unwrap();
        let call = Call::PutOperation {
            id: std::borrow::Cow::Borrowed(&exec),
            op: std::borrow::Cow::Borrowed(&op),
        };
        let text = serde_json::to_string(&call).unwrap();
        match serde_json::from_str::<Call>(&text).unwrap() {
            Call::PutOperation { id, op: back } => {
                prop_assert_eq!(id.as_ref(), &exec);
                prop_assert_eq!(
                    serde_json::to_value(back.as_ref()).unwrap(),
                    serde_json::to_value(&op).unwrap()
                );
            }
            other => prop_assert!(false, "decoded as {other:?}"),
        }
    }

    #[test]
    fn journal_records_decode_any_json_without_panicking(v in json_value()) {
        let _ = serde_json::from_value::<Operation>(v.clone());
        let _ = serde_json::from_value::<Vec<Operation>>(v.clone());
        let _ = serde_json::from_value::<WireJournal>(v);
    }

    #[test]
    fn an_operation_record_round_trips(op in operation()) {
        let v = serde_json::to_value(&op).unwrap();
        let back: Operation = serde_json::from_value(v.clone()).unwrap();
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), v);
    }

    #[test]
    fn mutated_operation_records_decode_or_fail_cleanly(op in operation(), key in "[a-z_]{1,12}", junk in json_value()) {
        let mut v = serde_json::to_value(&op).unwrap();
        if let Some(m) = v.as_object_mut() {
            let k = m.keys().nth(key.len() % m.len().max(1)).cloned().unwrap_or(key);
            m.insert(k, junk);
        }
        let _ = serde_json::from_value::<Operation>(v);
    }
}

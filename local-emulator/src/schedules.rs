//! The template's `Schedule` / `ScheduleV2` events, run by a scheduler loop,
//! and their REST API.
//!
//! At start every schedule of the template is registered in the store
//! (an existing record keeps its state, so a restart neither resets the next
//! fire nor repeats one; fires missed while down follow the catch-up policy).
//! A loop then fires the due schedules on the platform's clock and wakes the
//! dispatcher. Several emulators or servers sharing one store never start a
//! fire twice: the execution id is `<schedule>:<fire time>` and the record
//! advances by conditional writes (see `durafn_runtime::trigger::schedule`).
//!
//! A schedule's name is the event's `Name`, else `<function>-<event key>`.
//!
//! Routes (token-checked like the rest of `/v1`): `GET /v1/schedules`,
//! `GET /v1/schedules/{name}`, `POST /v1/schedules/{name}/pause`,
//! `POST /v1/schedules/{name}/resume`, `POST /v1/schedules/{name}/trigger`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use durafn_runtime::store::Schedule;
use durafn_runtime::trigger::schedule::{ScheduleDef, ScheduleSpec, Scheduler, SchedulerConfig};
use serde_json::{Value, json};

use crate::api::render::iso;
use crate::api::{ApiError, ApiState};
use crate::platform::{Platform, StartError};
use crate::routes::{Access, DEFAULT_TIMEOUT, RouteSpec, SMALL_BODY};
use crate::template::{EventKind, Template};

/// How often the loop looks for due schedules.
const POLL: Duration = Duration::from_millis(500);

/// The schedules of a template, checked (expression and time zone).
pub fn definitions(template: &Template) -> Result<Vec<ScheduleDef>, StartError> {
    let mut defs: Vec<ScheduleDef> = Vec::new();
    for f in &template.functions {
        for ev in &f.events {
            let EventKind::Schedule {
                expression,
                timezone,
                enabled,
                name,
                input,
            } = &ev.kind
            else {
                continue;
            };
            let name = name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", f.name, ev.name));
            let expression = expression.to_string();
            let bad = |reason: String| StartError::BadSchedule {
                event: ev.name.clone(),
                function: f.name.clone(),
                line: ev.line,
                reason,
            };
            ScheduleSpec::parse(&expression, timezone.as_deref())
                .map_err(|e| bad(e.to_string()))?;
            durafn_runtime::trigger::schedule::validate_name(&name)
                .map_err(|e| bad(format!("set a valid `Name`: {e}")))?;
            if defs.iter().any(|d| d.name == name) {
                return Err(StartError::DuplicateSchedule {
                    name,
                    line: ev.line,
                });
            }
            let mut def = ScheduleDef::new(name, f.name.clone(), expression, timezone.clone());
            def.enabled = *enabled;
            def.input = local_input(input.as_deref());
            defs.push(def);
        }
    }
    Ok(defs)
}

/// The input a local fire gives its execution, read from the event's
/// `Input` so it matches what the same fire gives it on AWS: the `input` of a
/// `{"durafn_schedule": {...}}` envelope (which the SDK unwraps there), else
/// the `Input` itself. (The template reader has checked it is JSON.)
fn local_input(input: Option<&str>) -> Value {
    let Some(v) = input.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return Value::Null;
    };
    match v.get("durafn_schedule") {
        Some(envelope) => envelope.get("input").cloned().unwrap_or(Value::Null),
        None => v,
    }
}

#[derive(Clone)]
struct SchedState {
    scheduler: Arc<Scheduler>,
    api: ApiState,
}

/// Starts the scheduler; returns its routes (`/v1/schedules`).
pub fn start(platform: &Platform) -> Result<Router, StartError> {
    let defs = definitions(&platform.template)?;
    let scheduler = Arc::new(Scheduler::new(
        platform.store.clone(),
        platform.clock.clone(),
        SchedulerConfig::default(),
    ));
    let state = SchedState {
        scheduler: scheduler.clone(),
        api: platform.api.clone(),
    };
    let mut shutdown = platform.shutdown.clone();
    let dispatch = platform.api.dispatch.clone();
    let shards = platform.shards.clone();
    let clock = platform.clock.clone();
    tokio::spawn(async move {
        let mut pending = defs;
        loop {
            // Register (retrying what the store could not take yet), then fire.
            let mut failed = Vec::new();
            for def in pending {
                if let Err(e) = scheduler.register(&def).await {
                    tracing::warn!(schedule = %def.name, error = %e, "cannot register schedule; retrying");
                    failed.push(def);
                }
            }
            pending = failed;
            // With several replicas, only the holder of the schedules' shard fires.
            let ours = shards
                .as_ref()
                .is_none_or(|s| s.holds_schedules(clock.now()));
            let tick = if ours {
                scheduler.tick().await
            } else {
                Ok(Default::default())
            };
            match crate::metrics::observe_tick(tick, clock.now()) {
                Ok(report) if report.fired.iter().any(|f| f.new) => {
                    for f in report.fired.iter().filter(|f| f.new) {
                        tracing::info!(schedule = %f.schedule, execution_id = %f.execution_id, fire_at = f.fire_at.0, "schedule fired");
                    }
                    if let Some(d) = &dispatch {
                        d.wake();
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "schedule scan failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
    Ok(crate::routes::build(ROUTES, endpoint, &platform.guard, &platform.limits).with_state(state))
}

/// The schedules API's handlers (see [`ROUTES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/schedules`.
    List,
    /// `GET /v1/schedules/{name}`.
    Describe,
    /// `POST /v1/schedules/{name}/{action}` (pause, resume, trigger).
    Act,
}

const fn spec(method: Method, path: &'static str, endpoint: Endpoint) -> RouteSpec<Endpoint> {
    RouteSpec {
        method,
        path,
        access: Access::Token,
        body_limit: SMALL_BODY,
        timeout: Some(DEFAULT_TIMEOUT),
        rate_limited: false,
        endpoint,
    }
}

/// Every route of the schedules API (all token-checked).
pub const ROUTES: &[RouteSpec<Endpoint>] = &[
    spec(Method::GET, "/v1/schedules", Endpoint::List),
    spec(Method::GET, "/v1/schedules/{name}", Endpoint::Describe),
    spec(Method::POST, "/v1/schedules/{name}/{action}", Endpoint::Act),
];

fn endpoint(e: Endpoint, m: MethodFilter) -> MethodRouter<SchedState> {
    match e {
        Endpoint::List => on(m, list),
        Endpoint::Describe => on(m, describe),
        Endpoint::Act => on(m, act),
    }
}

/// A schedule as the API shows it.
pub fn render(s: &Schedule) -> Value {
    let state = if !s.enabled {
        "DISABLED"
    } else if s.paused {
        "PAUSED"
    } else {
        "ENABLED"
    };
    let opt =
        |t: Option<durafn_runtime::model::Timestamp>| t.map(iso).map_or(Value::Null, Value::from);
    json!({
        "name": s.name,
        "function": s.function,
        "expression": s.expression,
        "timezone": s.timezone,
        "state": state,
        "catch_up": s.catch_up,
        "overlap": s.overlap,
        "next_fire_at": if s.enabled && !s.paused { opt(s.next_fire_at) } else { Value::Null },
        "pending_fire_at": opt(s.pending_fire_at),
        "last_fire_at": opt(s.last_fire_at),
        "last_execution_id": s.last_execution,
        "fires": s.fires,
        "skipped": s.skipped,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "ScheduleNotFound",
        format!("no schedule named {name:?}: `durafn schedules` lists them"),
    )
}

async fn list(State(st): State<SchedState>) -> Result<Json<Value>, ApiError> {
    let all = st.scheduler.list().await?;
    Ok(Json(
        json!({ "schedules": all.iter().map(render).collect::<Vec<_>>() }),
    ))
}

async fn describe(
    State(st): State<SchedState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match st.scheduler.get(&name).await? {
        Some(s) => Ok(Json(render(&s))),
        None => Err(not_found(&name)),
    }
}

async fn act(
    State(st): State<SchedState>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let changed = match action.as_str() {
        "pause" => st.scheduler.pause(&name).await?,
        "resume" => st.scheduler.resume(&name).await?,
        "trigger" => {
            let Some(fired) = st.scheduler.trigger(&name).await? else {
                return Err(not_found(&name));
            };
            if fired.new {
                if let Some(d) = &st.api.dispatch {
                    d.wake();
                }
            }
            return Ok(Json(json!({
                "schedule": fired.schedule,
                "execution_id": fired.execution_id,
                "fire_at": iso(fired.fire_at),
                "new": fired.new,
            })));
        }
        _ => {
            return Err(ApiError::not_found(
                "NotFound",
                format!("unknown schedule action {action:?}: use pause, resume or trigger"),
            ));
        }
    };
    match changed {
        Some(s) => Ok(Json(render(&s))),
        None => Err(not_found(&name)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn local_fires_get_the_input_aws_fires_get() {
        assert_eq!(local_input(None), Value::Null);
        let envelope =
            r#"{"durafn_schedule": {"name": "n", "time": "<aws.scheduler.scheduled-time>"}}"#;
        assert_eq!(local_input(Some(envelope)), Value::Null);
        let with = r#"{"durafn_schedule": {"name": "n", "time": "t", "input": {"k": 1}}}"#;
        assert_eq!(local_input(Some(with)), json!({"k": 1}));
        assert_eq!(local_input(Some(r#"{"k": 2}"#)), json!({"k": 2}));
    }

    #[test]
    fn template_schedules_become_definitions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.yaml");
        std::fs::write(
            &path,
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: backup\n      CodeUri: x\n      Events:\n        Nightly:\n          Type: ScheduleV2\n          Properties:\n            ScheduleExpression: cron(0 3 * * ? *)\n            ScheduleExpressionTimezone: Europe/Paris\n        Hourly:\n          Type: Schedule\n          Properties:\n            Schedule: rate(1 hour)\n            Enabled: false\n",
        )
        .unwrap();
        let t = crate::template::load(&path).unwrap();
        let defs = definitions(&t).unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[0].name, "backup-Nightly");
        assert_eq!(defs[0].expression, "cron(0 3 * * ? *)");
        assert_eq!(defs[0].timezone.as_deref(), Some("Europe/Paris"));
        assert!(defs[0].enabled && !defs[1].enabled);
    }

    #[test]
    fn the_repository_template_has_the_nightly_backup_check() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = crate::template::load(&path).unwrap();
        let defs = definitions(&t).unwrap();
        let nightly = defs
            .iter()
            .find(|d| d.name == "backup-verify-nightly")
            .expect("the backup-verify schedule");
        assert_eq!(nightly.function, "backup-verify");
        assert_eq!(nightly.expression, "cron(0 3 * * ? *)");
        assert_eq!(nightly.timezone.as_deref(), Some("Europe/Paris"));
    }

    #[test]
    fn an_unknown_time_zone_fails_at_start_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.yaml");
        std::fs::write(
            &path,
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: x\n      Events:\n        Nightly:\n          Type: ScheduleV2\n          Properties:\n            ScheduleExpression: cron(0 3 * * ? *)\n            ScheduleExpressionTimezone: Mars/Olympus\n",
        )
        .unwrap();
        let t = crate::template::load(&path).unwrap();
        let err = format!("{:#}", definitions(&t).unwrap_err());
        assert!(
            err.contains("line 7") && err.contains("Mars/Olympus"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_expression_is_refused_when_the_template_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.yaml");
        std::fs::write(
            &path,
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: x\n      Events:\n        Nightly:\n          Type: ScheduleV2\n          Properties:\n            ScheduleExpression: cron(0 3 * * * *)\n",
        )
        .unwrap();
        let err = crate::template::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("template.yaml:10") && err.contains("cron(0 3 * * * *)"),
            "{err}"
        );
    }
}

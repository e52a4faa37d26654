//! Tests of the template reader: what it reads from valid templates.

mod errors;
mod intrinsics;
mod schedule;

use std::path::Path;
use std::time::Duration;

use super::{EventKind, ScheduleExpr, TableDef, Template, TemplateError, load, parse};

pub(super) fn ok(text: &str) -> Template {
    match parse(text, "template.yaml") {
        Ok(t) => t,
        Err(e) => panic!("expected the template to parse, got: {e}"),
    }
}

pub(super) fn err(text: &str) -> TemplateError {
    match parse(text, "template.yaml") {
        Ok(t) => panic!("expected an error, got {t:#?}"),
        Err(e) => e,
    }
}

const FULL: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Timeout: 30
    MemorySize: 256
    Environment:
      Variables:
        SHARED: "yes"
        OVERRIDDEN: global
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: durafn
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: jobs
      VisibilityTimeout: 120
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt JobsDlq.Arn
        maxReceiveCount: 5
  JobsDlq:
    Type: AWS::SQS::Queue
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      Whatever: [1, 2, 3]
  Order:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
    Properties:
      FunctionName: order
      CodeUri: examples/order
      Handler: order
      Timeout: 60
      Environment:
        Variables:
          STORE: !Sub "dynamodb://${Table}"
          TABLE: !Ref Table
          REGION: !Sub "${AWS::Region}-${Stage}"
          STAGE: !Ref Stage
          ARN: !GetAtt Table.Arn
          JOINED: !Join ["/", [a, !Ref Table]]
          LONG: {"Fn::Sub": "x-${Table}"}
          VERSION: 1.10
          PICK: !Select [0, [a, b]]
          OVERRIDDEN: mine
      Events:
        Start:
          Type: HttpApi
          Properties:
            Path: /orders
            Method: post
        Anything:
          Type: HttpApi
          Properties:
            Path: /orders/{id}
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 5
        External:
          Type: SQS
          Properties:
            Queue: !Sub "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:outside"
        Nightly:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
            Enabled: false
        Every5:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(5 minutes)
            ScheduleExpressionTimezone: Europe/Paris
            State: ENABLED
            Name: every-five
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Bucket
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: examples/plain
      Handler: bootstrap
      Unknown: !Foo ignored because nobody reads it
"#;

#[test]
fn reads_functions_with_globals_applied() {
    let t = ok(FULL);
    assert_eq!(t.functions.len(), 2);
    let order = &t.functions[0];
    assert_eq!(order.logical_id, "Order");
    assert_eq!(order.name, "order");
    assert_eq!(order.code_uri, "examples/order");
    assert_eq!(order.binary, "order");
    assert_eq!(order.timeout, Duration::from_secs(60));
    assert_eq!(order.memory_size_mb, 256);
    let plain = &t.functions[1];
    assert_eq!(plain.name, "Plain");
    assert_eq!(plain.binary, "Plain", "`bootstrap` is not a binary name");
    assert_eq!(plain.timeout, Duration::from_secs(30));
    assert_eq!(
        plain.environment.get("SHARED").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        t.function("order").map(|f| f.logical_id.as_str()),
        Some("Order")
    );
}

#[test]
fn resolves_environment_values() {
    let t = ok(FULL);
    let env = &t.functions[0].environment;
    let var = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(var("STORE"), Some("dynamodb://durafn"));
    assert_eq!(var("TABLE"), Some("durafn"));
    assert_eq!(var("REGION"), Some("${AWS::Region}-dev"));
    assert_eq!(var("STAGE"), Some("dev"));
    assert_eq!(var("ARN"), Some("!GetAtt Table.Arn"));
    assert_eq!(var("JOINED"), Some("a/durafn"));
    assert_eq!(var("LONG"), Some("x-durafn"));
    assert_eq!(var("VERSION"), Some("1.10"));
    assert_eq!(
        var("PICK"),
        Some("!Select [0, [a, b]]"),
        "unresolved: kept as written"
    );
    assert_eq!(var("OVERRIDDEN"), Some("mine"));
    assert_eq!(var("SHARED"), Some("yes"));
}

#[test]
fn reads_events_of_every_kind() {
    let t = ok(FULL);
    let events = &t.functions[0].events;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Start", "Anything", "Work", "External", "Nightly", "Every5", "Upload"
        ]
    );
    assert_eq!(events[0].line, 56);
    assert_eq!(
        events[0].kind,
        EventKind::HttpApi {
            method: "POST".into(),
            path: "/orders".into()
        }
    );
    assert_eq!(
        events[1].kind,
        EventKind::HttpApi {
            method: "ANY".into(),
            path: "/orders/{id}".into()
        }
    );
    assert_eq!(
        events[2].kind,
        EventKind::Sqs {
            queue: "jobs".into(),
            batch_size: 5,
            max_receive_count: Some(5),
            visibility_timeout: Duration::from_secs(120),
            dead_letter_queue: Some("JobsDlq".into()),
        }
    );
    assert_eq!(
        events[3].kind,
        EventKind::Sqs {
            queue: "outside".into(),
            batch_size: 10,
            max_receive_count: None,
            visibility_timeout: Duration::from_secs(30),
            dead_letter_queue: None,
        }
    );
    let EventKind::Schedule {
        expression,
        timezone,
        enabled,
        name,
        ..
    } = &events[4].kind
    else {
        panic!("not a schedule: {:?}", events[4]);
    };
    assert_eq!(expression.to_string(), "cron(0 3 * * ? *)");
    assert_eq!((timezone, enabled, name), (&None, &false, &None));
    assert_eq!(
        events[5].kind,
        EventKind::Schedule {
            expression: "rate(5 minutes)".parse::<ScheduleExpr>().expect("valid"),
            timezone: Some("Europe/Paris".into()),
            enabled: true,
            name: Some("every-five".into()),
            input: None,
        }
    );
    assert_eq!(
        events[6].kind,
        EventKind::Other {
            event_type: "S3".into()
        }
    );
}

#[test]
fn reads_the_first_table() {
    let t = ok(FULL);
    assert_eq!(
        t.table,
        Some(TableDef {
            logical_id: "Table".into(),
            table_name: "durafn".into()
        })
    );
    let simple = ok("Resources:\n  T:\n    Type: AWS::Serverless::SimpleTable\n");
    assert_eq!(
        simple.table,
        Some(TableDef {
            logical_id: "T".into(),
            table_name: "T".into()
        })
    );
}

#[test]
fn defaults_apply_without_globals() {
    let t = ok(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: f\n",
    );
    let f = &t.functions[0];
    assert_eq!((f.name.as_str(), f.binary.as_str()), ("F", "F"));
    assert_eq!(f.timeout, Duration::from_secs(3));
    assert_eq!(f.memory_size_mb, 128);
    assert!(f.environment.is_empty() && f.events.is_empty());
    assert_eq!(t.table, None);
}

#[test]
fn cargo_lambda_binary_property_names_the_binary() {
    let t = ok("Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: worker
    Properties:
      CodeUri: f
      Handler: bootstrap
");
    assert_eq!(t.functions[0].binary, "worker");
}

#[test]
fn concurrency_limits_come_from_reserved_concurrency_and_durafn_metadata() {
    let t = ok("Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        ConcurrencyKey: input.customer_id
        MaxPerKey: 2
    Properties:
      CodeUri: f
      ReservedConcurrentExecutions: 5
  G:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: g
");
    let c = &t.functions[0].concurrency;
    assert_eq!(c.reserved, Some(5));
    assert_eq!(c.key.as_deref(), Some("input.customer_id"));
    assert_eq!(c.max_per_key, 2);
    assert_eq!(t.functions[1].concurrency.reserved, None);
    assert_eq!(t.functions[1].concurrency.key, None);
    let e = err("Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        ConcurrencyKey: \"input.\"
    Properties:
      CodeUri: f
");
    assert!(e.to_string().contains("ConcurrencyKey"), "{e}");
    let e = err("Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: f
      ReservedConcurrentExecutions: 0
");
    assert!(
        e.to_string().contains("ReservedConcurrentExecutions"),
        "{e}"
    );
}

#[test]
fn globals_code_uri_and_numeric_strings() {
    let t = ok("Globals:
  Function:
    CodeUri: shared
    Timeout: \"45\"
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: 1024
");
    let f = &t.functions[0];
    assert_eq!(f.code_uri, "shared");
    assert_eq!(f.timeout, Duration::from_secs(45));
    assert_eq!(f.memory_size_mb, 1024);
}

#[test]
fn loads_the_repository_template() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let t = match load(&path) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let order = t
        .function("order")
        .unwrap_or_else(|| panic!("no order function: {t:#?}"));
    assert_eq!(order.logical_id, "OrderFunction");
    assert_eq!(order.code_uri, "examples/order");
    assert_eq!(order.binary, "order");
    assert_eq!(order.timeout, Duration::from_secs(30));
    assert_eq!(order.memory_size_mb, 256);
    assert_eq!(
        order.environment.get("DURAFN_STORE").map(String::as_str),
        Some("dynamodb://durafn")
    );
    assert_eq!(order.events.len(), 1);
    assert_eq!(order.events[0].name, "StartOrder");
    assert_eq!(
        order.events[0].kind,
        EventKind::HttpApi {
            method: "POST".into(),
            path: "/orders".into()
        }
    );
    assert_eq!(
        t.table,
        Some(TableDef {
            logical_id: "DurafnTable".into(),
            table_name: "durafn".into()
        })
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(&order.code_uri)
            .join("Cargo.toml")
            .exists(),
        "CodeUri must point at the example's crate"
    );
    // The platform's own functions, marked for `durafn dev --aws`.
    let role = |name: &str| t.function(name).map(|f| f.platform);
    assert_eq!(
        role("durafn-dispatcher"),
        Some(Some(super::PlatformRole::Dispatcher))
    );
    assert_eq!(
        role("durafn-control"),
        Some(Some(super::PlatformRole::Control))
    );
    assert_eq!(role("order"), Some(None));
    let dispatcher = t
        .function("durafn-dispatcher")
        .unwrap_or_else(|| unreachable!());
    assert_eq!(dispatcher.binary, "durafn-dispatcher");
    assert_eq!(
        order
            .environment
            .get("DURAFN_WAKE_QUEUE_URL")
            .map(String::as_str),
        Some("durafn-wake"),
        "every function is told the wake queue (!Ref gives its name locally)"
    );
}

#[test]
fn durafn_role_must_be_known() {
    let text = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      DurafnRole: scheduler\n    Properties:\n      CodeUri: x\n";
    let e = match parse(text, "template.yaml") {
        Ok(t) => panic!("accepted: {t:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("template.yaml:5:19") && e.contains("dispatcher"),
        "{e}"
    );
}

#[test]
fn load_reports_a_missing_file() {
    let e = load(Path::new("/nonexistent/template.yaml")).map(|_| ());
    let Err(e) = e else {
        panic!("expected an error")
    };
    assert!(matches!(e, TemplateError::Read { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/template.yaml: cannot read"),
        "{e}"
    );
}

#[test]
fn flow_control_comes_from_durafn_metadata() {
    use durafn_runtime::dispatch::flow::InputKey;
    let t = ok("Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        Throttle:
          Limit: 10
          Period: 60
          Key: input.customer_id
        Debounce:
          Period: 5
    Properties:
      CodeUri: f
  G:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        Batch:
          MaxSize: 100
          Timeout: 2
    Properties:
      CodeUri: g
  H:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: h
");
    let f = &t.functions[0].flow;
    let th = f.throttle.as_ref().unwrap();
    assert_eq!((th.limit, th.period), (10, Duration::from_secs(60)));
    assert_eq!(th.key, InputKey::parse("input.customer_id"));
    let d = f.debounce.as_ref().unwrap();
    assert_eq!((d.period, d.key.as_ref()), (Duration::from_secs(5), None));
    assert!(f.batch.is_none());
    let b = t.functions[1].flow.batch.as_ref().unwrap();
    assert_eq!((b.max_size, b.timeout), (100, Duration::from_secs(2)));
    assert!(t.functions[2].flow.is_empty());
    assert!(!t.functions[0].pause_on_failure);
    let t = ok("Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        PauseOnFailure: true
    Properties:
      CodeUri: f
");
    assert!(t.functions[0].pause_on_failure);
    let e = err("Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata:
      Durafn:
        PauseOnFailure: sometimes
    Properties:
      CodeUri: f
");
    assert!(
        e.to_string().contains(":6:")
            && e.to_string()
                .contains("PauseOnFailure must be true or false"),
        "{e}"
    );
}

#[test]
fn bad_flow_control_is_an_error_at_its_line() {
    let case = |durafn: &str| {
        err(&format!(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      Durafn:\n{durafn}    Properties:\n      CodeUri: f\n"
        ))
        .to_string()
    };
    // A negative rate, named with its line.
    let e = case("        Throttle:\n          Limit: -5\n          Period: 60\n");
    assert!(
        e.contains(":7:") && e.contains("Throttle.Limit must be between 1 and 10000, got -5"),
        "{e}"
    );
    let e = case("        Throttle:\n          Limit: 5\n          Period: 0\n");
    assert!(e.contains(":8:") && e.contains("Throttle.Period"), "{e}");
    let e = case("        Throttle:\n          Limit: 5\n");
    assert!(e.contains("Throttle needs Period"), "{e}");
    let e = case("        Debounce:\n          Period: 5\n          Key: \"input.\"\n");
    assert!(e.contains("Debounce.Key must name an input field"), "{e}");
    let e = case("        Batch:\n          MaxSize: 10\n          Timout: 5\n");
    assert!(
        e.contains("has no setting \"Timout\"") && e.contains(":8:"),
        "{e}"
    );
    let e = case("        Batch:\n          MaxSize: ten\n          Timeout: 5\n");
    assert!(
        e.contains("Batch.MaxSize must be a number of starts"),
        "{e}"
    );
    let e = case(
        "        Batch:\n          MaxSize: 10\n          Timeout: 5\n        Debounce:\n          Period: 5\n",
    );
    assert!(e.contains("cannot both be set"), "{e}");
}

//! Every error names the file, line and column, what is wrong and what is
//! expected.

use super::err;
use crate::template::TemplateError;

/// A template with one function whose properties are `props` (indented by
/// six spaces in the text; the first property is on line 5).
fn function(props: &str) -> String {
    let mut text =
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n".to_owned();
    for line in props.lines() {
        text.push_str("      ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// A function with one event of type `ty` whose properties are `props`
/// (the first on line 10, column 13).
fn event(ty: &str, props: &str) -> String {
    let mut text = function(&format!(
        "CodeUri: f\nEvents:\n  Ev:\n    Type: {ty}\n    Properties:"
    ));
    for line in props.lines() {
        text.push_str("            ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn assert_error(e: &TemplateError, prefix: &str, parts: &[&str]) {
    let s = e.to_string();
    assert!(s.starts_with(prefix), "{s:?} should start with {prefix:?}");
    for part in parts {
        assert!(s.contains(part), "{s:?} should contain {part:?}");
    }
}

#[test]
fn yaml_syntax_error_has_the_parser_position() {
    let e = err("Resources:\n  Fn:\n    Type: [a, b\n    X: 1\n");
    assert!(matches!(e, TemplateError::Syntax { .. }), "{e:?}");
    assert_error(&e, "template.yaml:4:", &["invalid YAML"]);
    let e = err("Resources:\n  A: 1\n  A: 2\n");
    assert_error(&e, "template.yaml:3:3: ", &["duplicated key"]);
}

#[test]
fn missing_or_malformed_resources() {
    let e = err("# comment\nTransform: AWS::Serverless-2016-10-31\n");
    assert_error(
        &e,
        "template.yaml:2:1: ",
        &["no `Resources`", "expected a mapping"],
    );
    assert_error(&err(""), "template.yaml:1:1: ", &["empty"]);
    assert_error(
        &err("Resources: [a]\n"),
        "template.yaml:1:12: ",
        &["must be a mapping"],
    );
    let e = err("Resources:\n  Fn:\n    Properties: {}\n");
    assert_error(
        &e,
        "template.yaml:2:3: ",
        &["resource `Fn` has no `Type`; expected a resource type"],
    );
}

#[test]
fn function_without_code_uri() {
    let e = err(&function("Handler: x"));
    assert_error(
        &e,
        "template.yaml:2:3: ",
        &["`Fn` has no CodeUri", "expected the path"],
    );
    let e = err("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n");
    assert_error(&e, "template.yaml:2:3: ", &["has no CodeUri"]);
    let e = err(&function("CodeUri:\n  Bucket: b\n  Key: k"));
    assert_error(
        &e,
        "template.yaml:6:9: ",
        &["CodeUri must be the path", "got a mapping"],
    );
}

#[test]
fn bad_timeout_and_memory_size() {
    let e = err(&function("CodeUri: f\nTimeout: ten"));
    assert_eq!(
        e.to_string(),
        r#"template.yaml:6:16: Timeout must be a number of seconds, got "ten""#
    );
    assert_eq!((e.line(), e.column()), (Some(6), Some(16)));
    let e = err(&function("CodeUri: f\nTimeout: 0"));
    assert_error(&e, "template.yaml:6:16: ", &["between 1 and 900", "got 0"]);
    let e = err(&function("CodeUri: f\nTimeout: 2.5"));
    assert_error(
        &e,
        "template.yaml:6:16: ",
        &["number of seconds", "got \"2.5\""],
    );
    let e = err(&function("CodeUri: f\nMemorySize: [1]"));
    assert_error(
        &e,
        "template.yaml:6:19: ",
        &["MemorySize must be a number of megabytes", "got a list"],
    );
    let e = err(&function("CodeUri: f\nMemorySize: 64"));
    assert_error(&e, "template.yaml:6:19: ", &["between 128 and 10240"]);
    let e = err("Globals:\n  Function:\n    Timeout: soon\nResources: {}\n");
    assert_error(
        &e,
        "template.yaml:3:14: ",
        &["Timeout must be a number of seconds"],
    );
}

#[test]
fn duplicate_function_names() {
    let text = "Resources:
  A:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: order
      CodeUri: a
  B:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: order
      CodeUri: b
";
    let e = err(text);
    assert_error(
        &e,
        "template.yaml:10:21: ",
        &[
            "duplicate function name \"order\"",
            "`A` already uses it (line 5)",
        ],
    );
}

#[test]
fn http_api_without_path() {
    let e = err(&event("HttpApi", "Method: GET"));
    assert_error(
        &e,
        "template.yaml:10:13: ",
        &["HttpApi event `Ev` has no `Path`", "expected a route path"],
    );
    let e = err(&function("CodeUri: f\nEvents:\n  Ev:\n    Type: HttpApi"));
    assert_error(&e, "template.yaml:7:9: ", &["has no `Path`"]);
    let e = err(&event("HttpApi", "Path: orders"));
    assert_error(&e, "template.yaml:10:19: ", &["Path must start with `/`"]);
    let e = err(&event("HttpApi", "Path: /x\nMethod: FETCH"));
    assert_error(
        &e,
        "template.yaml:11:21: ",
        &["Method must be an HTTP method", "\"FETCH\""],
    );
}

#[test]
fn invalid_cron_expression_names_the_expression_and_field() {
    let e = err(&event("Schedule", "Schedule: cron(0 25 * * ? *)"));
    assert_error(
        &e,
        "template.yaml:10:23: ",
        &[
            "\"cron(0 25 * * ? *)\"",
            "Hours field \"25\"",
            "out of range",
            "0-23",
        ],
    );
    let e = err(&event("ScheduleV2", "ScheduleExpression: cron(0 12 * * *)"));
    assert_error(&e, "template.yaml:10:33: ", &["6 fields", "got 5"]);
}

#[test]
fn invalid_rate_expression() {
    let e = err(&event("Schedule", "Schedule: rate(1 minutes)"));
    assert_error(
        &e,
        "template.yaml:10:23: ",
        &["\"rate(1 minutes)\"", "singular unit `minute`"],
    );
    let e = err(&event(
        "ScheduleV2",
        "ScheduleExpression: rate(5 minute)\nState: ON",
    ));
    assert_error(&e, "template.yaml:10:33: ", &["plural unit `minutes`"]);
    let e = err(&event(
        "ScheduleV2",
        "ScheduleExpression: rate(5 minutes)\nState: ON",
    ));
    assert_error(
        &e,
        "template.yaml:11:20: ",
        &["State must be ENABLED or DISABLED"],
    );
    let e = err(&event("Schedule", "Enabled: true"));
    assert_error(
        &e,
        "template.yaml:10:13: ",
        &["has no `Schedule`", "expected a schedule expression"],
    );
}

#[test]
fn unknown_short_tag_where_a_value_is_required() {
    let e = err(&function("CodeUri: !Path examples/order"));
    assert_error(
        &e,
        "template.yaml:5:16: ",
        &["unknown tag !Path", "!Ref, !Sub or !GetAtt"],
    );
    let e = err(&function(
        "CodeUri: f\nEnvironment:\n  Variables:\n    A: !Magic x",
    ));
    assert_error(&e, "template.yaml:8:14: ", &["unknown tag !Magic"]);
    let e = err(&event("HttpApi", "Path: !Custom /x"));
    assert_error(&e, "template.yaml:10:19: ", &["unknown tag !Custom"]);
}

#[test]
fn sqs_queue_must_refer_to_a_queue_of_the_template() {
    let e = err(&event("SQS", "Queue: !GetAtt Missing.Arn"));
    assert_error(
        &e,
        "template.yaml:10:20: ",
        &[
            "Queue refers to `Missing`, which is not a resource of this template",
            "expected `!GetAtt <QueueLogicalId>.Arn`",
        ],
    );
    let mut text = event("SQS", "Queue: !GetAtt Fn.Arn");
    text.push_str("  Other:\n    Type: AWS::S3::Bucket\n");
    assert_error(
        &err(&text),
        "template.yaml:10:20: ",
        &["`Fn`, whose type is AWS::Serverless::Function rather than AWS::SQS::Queue"],
    );
    let e = err(&event("SQS", "Queue: !ImportValue shared-queue"));
    assert_error(
        &e,
        "template.yaml:10:20: ",
        &[
            "Queue must be",
            "or a queue ARN",
            "got !ImportValue shared-queue",
        ],
    );
    let e = err(&event("SQS", "BatchSize: 5"));
    assert_error(
        &e,
        "template.yaml:10:13: ",
        &["SQS event `Ev` has no `Queue`"],
    );
    let mut text = event("SQS", "Queue: !GetAtt Q.Arn\nBatchSize: 0");
    text.push_str("  Q:\n    Type: AWS::SQS::Queue\n");
    assert_error(
        &err(&text),
        "template.yaml:11:24: ",
        &["BatchSize must be between 1 and 10000"],
    );
}

#[test]
fn environment_values_must_be_scalars() {
    let e = err(&function(
        "CodeUri: f\nEnvironment:\n  Variables:\n    A: [1, 2]",
    ));
    assert_error(
        &e,
        "template.yaml:8:14: ",
        &["environment variable A must be a string", "got a list"],
    );
}

//! Fuzzing the template reader with `proptest` (nightly Rust, which
//! `cargo fuzz` needs, is not available): any text, and valid templates with
//! random edits, parse or fail with a located error; never a panic. Bounded
//! (a few seconds) so it runs under plain `cargo test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use durafn_emulator::template::parse;
use proptest::prelude::*;

const VALID: &str = r#"Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 30
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-durafn"
  MediaQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: media
      VisibilityTimeout: 30
  OrderFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: order
      CodeUri: examples/order
      Handler: order
      Timeout: 30
      MemorySize: 256
      Environment:
        Variables:
          TABLE: !Ref Table
          QUEUE: !GetAtt MediaQueue.Arn
      Events:
        Orders:
          Type: HttpApi
          Properties:
            Path: /orders/{id}
            Method: post
        Media:
          Type: SQS
          Properties:
            Queue: !GetAtt MediaQueue.Arn
            BatchSize: 5
        Nightly:
          Type: ScheduleV2
          Properties:
            Name: nightly
            ScheduleExpression: cron(0 3 * * ? *)
            ScheduleExpressionTimezone: Europe/Paris
"#;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn the_seed_template_parses() {
    parse(VALID, "template.yaml").expect("the fuzzing seed is a valid template");
}

/// Pieces YAML and CloudFormation care about.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(":".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just("!Ref ".to_string()),
        Just("!GetAtt ".to_string()),
        Just("!Sub ".to_string()),
        Just("${".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: ".to_string()),
        Just("---\n".to_string()),
        Just("\t".to_string()),
        Just("#".to_string()),
        Just("|".to_string()),
        Just("~".to_string()),
        Just("0x".to_string()),
        Just("99999999999999999999".to_string()),
        Just("Type: ".to_string()),
        Just("Properties:".to_string()),
        Just("Events:".to_string()),
        Just("AWS::Serverless::Function".to_string()),
        Just("rate(".to_string()),
        Just("cron(".to_string()),
        ".{0,6}",
    ]
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn any_text_parses_or_fails_cleanly(text in ".{0,300}") {
        let _ = parse(&text, "t.yaml");
    }

    #[test]
    fn yaml_like_text_parses_or_fails_cleanly(parts in prop::collection::vec(token(), 0..60)) {
        let _ = parse(&parts.concat(), "t.yaml");
    }

    #[test]
    fn edited_templates_parse_or_fail_with_a_location(
        edits in prop::collection::vec((0usize..10_000, 0usize..8, token()), 1..6)
    ) {
        let mut text = VALID.to_string();
        for (at, delete, insert) in edits {
            let mut i = at % (text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            let mut j = (i + delete).min(text.len());
            while !text.is_char_boundary(j) { j += 1; }
            text.replace_range(i..j, &insert);
        }
        if let Err(e) = parse(&text, "t.yaml") {
            let msg = e.to_string();
            prop_assert!(!msg.is_empty());
        }
    }
}

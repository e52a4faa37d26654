//! Intrinsic functions in their short and long forms.

use std::time::Duration;

use super::ok;
use crate::template::EventKind;

#[test]
fn sub_variables_literals_and_cycles() {
    let t = ok(r#"
Resources:
  A:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !GetAtt B.QueueName
  B:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Ref A
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: f
      FunctionName: !Sub "${AWS::StackName}-f"
      Environment:
        Variables:
          VARS: !Sub ["${Greeting}, ${Who}!", {Greeting: hello, Who: !Ref F}]
          LITERAL: !Sub "${!NotAVar} and ${F}"
          CYCLE: !Ref A
          UNKNOWN: !Ref Nowhere
          EMPTY:
"#);
    let f = &t.functions[0];
    assert_eq!(f.name, "${AWS::StackName}-f");
    let var = |k: &str| f.environment.get(k).map(String::as_str);
    assert_eq!(var("VARS"), Some("hello, ${AWS::StackName}-f!"));
    assert_eq!(var("LITERAL"), Some("${NotAVar} and ${AWS::StackName}-f"));
    // A names itself after B which names itself after A: the cycle gives up
    // and falls back to a logical id instead of looping.
    assert!(
        matches!(var("CYCLE"), Some("A" | "B")),
        "{:?}",
        var("CYCLE")
    );
    assert_eq!(var("UNKNOWN"), Some("!Ref Nowhere"));
    assert_eq!(var("EMPTY"), Some(""));
}

#[test]
fn long_forms_and_json_redrive_policy() {
    let t = ok(r#"
Parameters:
  Batch:
    Type: Number
    Default: 25
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: "90"
      RedrivePolicy: '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dead", "maxReceiveCount": 3}'
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: f
      Environment:
        Variables:
          QUEUE: {"Ref": "Q"}
      Events:
        E:
          Type: SQS
          Properties:
            Queue: {"Fn::GetAtt": [Q, Arn]}
            BatchSize: !Ref Batch
"#);
    let f = &t.functions[0];
    assert_eq!(f.environment.get("QUEUE").map(String::as_str), Some("Q"));
    assert_eq!(
        f.events[0].kind,
        EventKind::Sqs {
            queue: "Q".into(),
            batch_size: 25,
            max_receive_count: Some(3),
            visibility_timeout: Duration::from_secs(90),
            dead_letter_queue: Some("dead".into()),
        }
    );
}

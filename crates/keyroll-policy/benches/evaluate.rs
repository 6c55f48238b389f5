//! Evaluation cost of a realistic request: a 10-statement identity policy with conditions
//! plus a secret's resource policy. `cargo bench -p keyroll-policy`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyroll_policy::{MapContext, Policy, Request, evaluate};

const IDENTITY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "DenyOutsideCorp", "Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
     "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]}}},
    {"Sid": "DenyProdWithoutMfa", "Effect": "Deny", "Action": ["secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"],
     "Resource": "arn:aws:secretsmanager:*:123456789012:secret:prod/*",
     "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
    {"Sid": "DenyUntaggedCreate", "Effect": "Deny", "Action": "secretsmanager:CreateSecret", "Resource": "*",
     "Condition": {"Null": {"aws:RequestTag/team": "true"}}},
    {"Sid": "ListAll", "Effect": "Allow", "Action": ["secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword"], "Resource": "*"},
    {"Sid": "DescribeOwn", "Effect": "Allow", "Action": "secretsmanager:Describe*",
     "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/*"},
    {"Sid": "TeamRead", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
     "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
     "Condition": {"StringEquals": {"aws:ResourceTag/team": "payments"},
                   "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
    {"Sid": "RotateStaging", "Effect": "Allow", "Action": "secretsmanager:RotateSecret",
     "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:staging/*",
     "Condition": {"NumericLessThanEquals": {"secretsmanager:RotationPeriod": "30"}}},
    {"Sid": "TagWithinTeam", "Effect": "Allow", "Action": "secretsmanager:TagResource", "Resource": "*",
     "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}},
    {"Sid": "ReadFromVpc", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
     "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:shared/*",
     "Condition": {"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
    {"Sid": "AdminRole", "Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*",
     "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/admin-*"}}}
  ]
}"#;

const RESOURCE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "AppRole", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/app"},
     "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
    {"Sid": "DenyOtherAccounts", "Effect": "Deny", "Principal": "*", "Action": "secretsmanager:*", "Resource": "*",
     "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "123456789012"}}}
  ]
}"#;

fn bench(c: &mut Criterion) {
    let identity = Policy::parse(IDENTITY).unwrap();
    let resource = Policy::parse(RESOURCE).unwrap();
    let ctx = MapContext::new()
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:MultiFactorAuthPresent", "true")
        .with("aws:ResourceTag/team", "payments")
        .with("aws:CurrentTime", "2026-12-07T03:00:00Z")
        .with("aws:PrincipalAccount", "123456789012")
        .with("aws:PrincipalArn", "arn:aws:iam::123456789012:user/alice")
        .with("aws:username", "alice");
    let req = Request {
        action: "secretsmanager:GetSecretValue",
        resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/db-AbCdEf",
        principal_arn: "arn:aws:iam::123456789012:user/alice",
        principal_aliases: &[],
        account: "123456789012",
        context: &ctx,
    };
    let ids = [&identity];
    assert!(evaluate(&ids, Some(&resource), &req).is_allowed());
    c.bench_function("evaluate 10-statement identity + resource policy", |b| {
        b.iter(|| evaluate(black_box(&ids), black_box(Some(&resource)), black_box(&req)))
    });
    c.bench_function("parse 10-statement identity policy", |b| {
        b.iter(|| Policy::parse(black_box(IDENTITY)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

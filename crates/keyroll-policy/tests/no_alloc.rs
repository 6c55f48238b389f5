//! Evaluation allocates nothing in the common case (no policy variable, no multivalued key):
//! counted with a global allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use keyroll_policy::{Decision, MapContext, Policy, PolicyType, Request, evaluate};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const IDENTITY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Deny","Action":"secretsmanager:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}},
  {"Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}},
  {"Effect":"Allow","Action":["secretsmanager:Get*","secretsmanager:Describe*"],"Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*",
   "Condition":{"StringEquals":{"aws:ResourceTag/team":"payments"},"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"NumericLessThan":{"s:n":"5"},
                "StringLike":{"aws:userid":"AIDA*"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"},"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}}
]}"#;

const RESOURCE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}},
  {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:role/app","123456789012"]},"Action":"secretsmanager:GetSecretValue","Resource":"*"}
]}"#;

#[test]
fn evaluating_without_variables_or_multivalued_keys_does_not_allocate() {
    let identity = Policy::parse(IDENTITY).unwrap();
    let resource = Policy::parse_as(RESOURCE, PolicyType::Resource).unwrap();
    let ctx = MapContext::new()
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:ResourceTag/team", "payments")
        .with("aws:CurrentTime", "2026-12-07T03:00:00Z")
        .with("s:n", "3")
        .with("aws:MultiFactorAuthPresent", "true")
        .with("aws:userid", "AIDAEXAMPLE")
        .with("aws:PrincipalArn", "arn:aws:iam::123456789012:user/alice")
        .with("aws:username", "alice")
        .with("aws:PrincipalAccount", "123456789012");
    let ids = [&identity];
    let mut req = Request {
        action: "secretsmanager:GetSecretValue",
        resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        principal_arn: "arn:aws:iam::123456789012:user/alice",
        principal_aliases: &[],
        account: "123456789012",
        context: &ctx,
    };
    let before = allocations();
    let allowed = evaluate(&ids, Some(&resource), &req);
    req.action = "secretsmanager:DeleteSecret";
    let denied = evaluate(&ids, Some(&resource), &req);
    req.action = "secretsmanager:ListSecrets";
    req.resource = "*";
    let implicit = evaluate(&ids, Some(&resource), &req);
    let used = allocations() - before;
    assert_eq!(allowed, Decision::Allow);
    assert_eq!(denied, Decision::ImplicitDeny);
    assert_eq!(implicit, Decision::ImplicitDeny);
    assert_eq!(used, 0, "evaluation allocated {used} times");
}

#[test]
fn the_allocation_counter_counts() {
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 16]);
    assert!(allocations() > before);
    drop(v);
}

#[test]
fn policies_can_be_shared_across_threads() {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    shareable::<Policy>();
    shareable::<keyroll_policy::PolicyError>();
    let p = Policy::parse(IDENTITY).unwrap();
    let q = p.clone();
    let n = std::thread::spawn(move || q.statement_count())
        .join()
        .unwrap();
    assert_eq!(n, p.statement_count());
}

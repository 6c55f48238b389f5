//! [`DecisionMemo`]: recent decisions, reused when a request asks the same question again.
//!
//! [`crate::evaluate`] is a pure function of the policies, the request's action, resource
//! and principal, and the answers its [`Context`] gives, asked in an order that only those
//! inputs decide. So a decision can be reused for a request with the same policies (the
//! same parsed objects, which are immutable), the same action, resource and principal, for
//! which the context gives the same answer to every key the first evaluation asked, in the
//! same order: that evaluation would take the same path to the same decision. The memo
//! checks exactly that, asking the context again; what it saves is walking the policies'
//! statements, patterns and condition values, which are scattered in memory.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use crate::context::{Context, CtxValue};
use crate::policy::Policy;
use crate::{Decision, Request, evaluate};

/// A context key's answer, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Absent,
    One(Box<str>),
    Many(Box<[Box<str>]>),
}

impl Answer {
    fn of(v: Option<&CtxValue<'_>>) -> Answer {
        match v {
            None => Answer::Absent,
            Some(CtxValue::One(s)) => Answer::One((**s).into()),
            Some(CtxValue::Many(vs)) => Answer::Many(vs.iter().map(|s| (**s).into()).collect()),
        }
    }

    fn is(&self, v: Option<&CtxValue<'_>>) -> bool {
        match (self, v) {
            (Answer::Absent, None) => true,
            (Answer::One(a), Some(CtxValue::One(b))) => **a == **b,
            (Answer::Many(a), Some(CtxValue::Many(b))) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| **x == **y)
            }
            _ => false,
        }
    }
}

/// One remembered evaluation.
struct Entry {
    /// Of the question's fixed parts, to skip other entries quickly.
    hash: u64,
    /// Held, so that no other policy can be at these addresses while the entry exists.
    identity: Box<[Policy]>,
    resource: Option<Policy>,
    action: Box<str>,
    resource_arn: Box<str>,
    principal_arn: Box<str>,
    aliases: Box<[Box<str>]>,
    account: Box<str>,
    /// The keys the evaluation asked, in order, and the answers it got.
    asked: Box<[(Box<str>, Answer)]>,
    decision: Decision,
}

impl Entry {
    fn same_question(
        &self,
        hash: u64,
        identity: &[&Policy],
        resource: Option<&Policy>,
        req: &Request<'_>,
    ) -> bool {
        self.hash == hash
            && self.identity.len() == identity.len()
            && self
                .identity
                .iter()
                .zip(identity)
                .all(|(a, b)| Arc::ptr_eq(&a.inner, &b.inner))
            && match (&self.resource, resource) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(&a.inner, &b.inner),
                _ => false,
            }
            && *self.action == *req.action
            && *self.resource_arn == *req.resource
            && *self.principal_arn == *req.principal_arn
            && *self.account == *req.account
            && self.aliases.len() == req.principal_aliases.len()
            && self
                .aliases
                .iter()
                .zip(req.principal_aliases)
                .all(|(a, b)| **a == **b)
    }

    /// Whether the context answers every key as it did.
    fn same_answers(&self, ctx: &dyn Context) -> bool {
        self.asked
            .iter()
            .all(|(key, answer)| answer.is(ctx.get(key).as_ref()))
    }
}

/// A context that writes down what it is asked and answers.
struct Recording<'a> {
    inner: &'a dyn Context,
    asked: RefCell<Vec<(Box<str>, Answer)>>,
}

impl Context for Recording<'_> {
    fn get(&self, key: &str) -> Option<CtxValue<'_>> {
        let v = self.inner.get(key);
        self.asked
            .borrow_mut()
            .push((key.into(), Answer::of(v.as_ref())));
        v
    }
}

/// The last few decisions and what they depended on. Keep one per thread (it is not
/// shared) and ask it instead of [`evaluate`]: the answer is always the one `evaluate`
/// gives.
pub struct DecisionMemo {
    entries: Vec<Entry>,
    capacity: usize,
    /// The entry to replace next when full.
    next: usize,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for DecisionMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionMemo")
            .field("entries", &self.entries.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl DecisionMemo {
    /// A memo of at most `capacity` decisions (at least one).
    pub fn new(capacity: usize) -> Self {
        DecisionMemo {
            entries: Vec::new(),
            capacity: capacity.max(1),
            next: 0,
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn hash(&self, identity: &[&Policy], resource: Option<&Policy>, req: &Request<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        for p in identity {
            (Arc::as_ptr(&p.inner) as usize).hash(&mut h);
        }
        resource
            .map(|p| Arc::as_ptr(&p.inner) as usize)
            .hash(&mut h);
        req.action.hash(&mut h);
        req.resource.hash(&mut h);
        req.principal_arn.hash(&mut h);
        h.finish()
    }

    /// [`evaluate`], answered from memory when the same question was asked with the same
    /// context answers.
    pub fn evaluate(
        &mut self,
        identity: &[&Policy],
        resource: Option<&Policy>,
        req: &Request<'_>,
    ) -> Decision {
        let hash = self.hash(identity, resource, req);
        let found = self
            .entries
            .iter()
            .position(|e| e.same_question(hash, identity, resource, req));
        if let Some(i) = found
            && self.entries[i].same_answers(req.context)
        {
            return self.entries[i].decision;
        }
        let recording = Recording {
            inner: req.context,
            asked: RefCell::new(Vec::new()),
        };
        let decision = evaluate(
            identity,
            resource,
            &Request {
                context: &recording,
                ..*req
            },
        );
        let entry = Entry {
            hash,
            identity: identity.iter().map(|p| (*p).clone()).collect(),
            resource: resource.cloned(),
            action: req.action.into(),
            resource_arn: req.resource.into(),
            principal_arn: req.principal_arn.into(),
            aliases: req.principal_aliases.iter().map(|a| (*a).into()).collect(),
            account: req.account.into(),
            asked: recording.asked.into_inner().into_boxed_slice(),
            decision,
        };
        // One entry per question: a changed answer replaces it.
        match found {
            Some(i) => self.entries[i] = entry,
            None if self.entries.len() < self.capacity => self.entries.push(entry),
            None => {
                let i = self.next % self.capacity;
                self.entries[i] = entry;
                self.next = i + 1;
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapContext;

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    #[test]
    fn a_changed_answer_is_evaluated_again() {
        let identity = policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
              "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}]}"#,
        );
        let mut memo = DecisionMemo::new(4);
        let ask = |memo: &mut DecisionMemo, stage: &str| {
            let ctx = MapContext::new().with("secretsmanager:VersionStage", stage);
            memo.evaluate(
                &[&identity],
                None,
                &Request {
                    action: "secretsmanager:GetSecretValue",
                    resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf",
                    principal_arn: "arn:aws:iam::123456789012:user/app",
                    principal_aliases: &[],
                    account: "123456789012",
                    context: &ctx,
                },
            )
        };
        assert_eq!(ask(&mut memo, "AWSCURRENT"), Decision::Allow);
        assert_eq!(ask(&mut memo, "AWSCURRENT"), Decision::Allow);
        assert_eq!(ask(&mut memo, "AWSPREVIOUS"), Decision::ImplicitDeny);
        assert_eq!(ask(&mut memo, "AWSCURRENT"), Decision::Allow);
        assert_eq!(memo.entries.len(), 1, "one entry per question");
    }

    #[test]
    fn another_policy_object_is_another_question() {
        let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        let mut memo = DecisionMemo::new(1);
        let ctx = MapContext::new();
        let req = Request {
            action: "secretsmanager:GetSecretValue",
            resource: "*",
            principal_arn: "arn:aws:iam::123456789012:user/app",
            principal_aliases: &[],
            account: "123456789012",
            context: &ctx,
        };
        for _ in 0..3 {
            let a = policy(allow);
            assert_eq!(memo.evaluate(&[&a], None, &req), Decision::Allow);
            let d = policy(deny);
            assert_eq!(
                memo.evaluate(&[&d], None, &req),
                Decision::ExplicitDeny(crate::PolicyType::Identity)
            );
        }
    }
}

//! The actions of the services `keyroll serve` answers (Secrets Manager and STS), known
//! when a policy is parsed: for each, which statements' `Action`/`NotAction` covers it, so
//! that [`crate::evaluate`] visits only those statements and matches no action pattern per
//! request. Any other action is evaluated by matching every statement's patterns.

use crate::context::EmptyContext;
use crate::policy::Statement;

/// Lowercase and sorted, for a binary search.
pub(crate) const KNOWN: &[&str] = &[
    "secretsmanager:batchgetsecretvalue",
    "secretsmanager:cancelrotatesecret",
    "secretsmanager:createsecret",
    "secretsmanager:deleteresourcepolicy",
    "secretsmanager:deletesecret",
    "secretsmanager:describesecret",
    "secretsmanager:getrandompassword",
    "secretsmanager:getresourcepolicy",
    "secretsmanager:getsecretvalue",
    "secretsmanager:listsecrets",
    "secretsmanager:listsecretversionids",
    "secretsmanager:putresourcepolicy",
    "secretsmanager:putsecretvalue",
    "secretsmanager:removeregionsfromreplication",
    "secretsmanager:replicatesecrettoregions",
    "secretsmanager:restoresecret",
    "secretsmanager:rotatesecret",
    "secretsmanager:stopreplicationtoreplica",
    "secretsmanager:tagresource",
    "secretsmanager:untagresource",
    "secretsmanager:updatesecret",
    "secretsmanager:updatesecretversionstage",
    "secretsmanager:validateresourcepolicy",
    "sts:assumerole",
    "sts:getcalleridentity",
    "sts:getsessiontoken",
    "sts:tagsession",
];

/// Statements beyond this many are not indexed (the bits of a `u64`).
const MAX_INDEXED: usize = 64;

/// The index of a lowercased action in [`KNOWN`].
pub(crate) fn id(lowercase_action: &str) -> Option<usize> {
    KNOWN.binary_search(&lowercase_action).ok()
}

/// For each known action, the bit set of the statements that cover it; `None` for a policy
/// with more statements than bits.
pub(crate) fn index(statements: &[Statement]) -> Option<Box<[u64]>> {
    if statements.len() > MAX_INDEXED {
        return None;
    }
    let mut by_action = vec![0u64; KNOWN.len()];
    for (bits, action) in by_action.iter_mut().zip(KNOWN) {
        for (i, s) in statements.iter().enumerate() {
            if covers(s, action) {
                *bits |= 1 << i;
            }
        }
    }
    Some(by_action.into_boxed_slice())
}

/// Whether the statement's `Action` (or `NotAction`) element covers the lowercased action.
/// Action patterns hold no policy variable, so no request context is needed.
pub(crate) fn covers(s: &Statement, lowercase_action: &str) -> bool {
    let hit = s.actions.iter().any(|t| {
        t.matches(lowercase_action, &EmptyContext, false)
            .unwrap_or(false)
    });
    hit != s.not_action
}

/// The statements of a policy that can apply to one request's action, in order.
pub(crate) struct Relevant<'p> {
    statements: &'p [Statement],
    /// The index's bit set of the action, or `None` to visit every statement.
    mask: Option<u64>,
    next: usize,
}

impl<'p> Relevant<'p> {
    pub(crate) fn new(
        statements: &'p [Statement],
        index: Option<&[u64]>,
        action: Option<usize>,
    ) -> Self {
        let mask = match (index, action) {
            (Some(index), Some(a)) => index.get(a).copied(),
            _ => None,
        };
        Relevant {
            statements,
            mask,
            next: 0,
        }
    }

    /// Whether every statement visited is known to cover the action (no need to match its
    /// action patterns).
    pub(crate) fn action_checked(&self) -> bool {
        self.mask.is_some()
    }
}

impl<'p> Iterator for Relevant<'p> {
    type Item = &'p Statement;

    fn next(&mut self) -> Option<&'p Statement> {
        match &mut self.mask {
            Some(mask) => {
                if *mask == 0 {
                    return None;
                }
                let i = mask.trailing_zeros() as usize;
                *mask &= *mask - 1;
                self.statements.get(i)
            }
            None => {
                let s = self.statements.get(self.next);
                self.next += 1;
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    #[test]
    fn known_actions_are_lowercase_sorted_and_unique() {
        assert!(KNOWN.windows(2).all(|w| w[0] < w[1]));
        assert!(KNOWN.iter().all(|a| *a == a.to_ascii_lowercase()));
        assert_eq!(id("secretsmanager:getsecretvalue"), Some(8));
        assert_eq!(id("secretsmanager:GetSecretValue"), None, "lowercase only");
        assert_eq!(id("s3:getobject"), None);
    }

    #[test]
    fn the_index_agrees_with_matching_each_statement() {
        let policy = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},
              {"Effect":"Allow","Action":["secretsmanager:Get*","sts:GetCallerIdentity"],"Resource":"*"},
              {"Effect":"Deny","NotAction":"secretsmanager:DescribeSecret","Resource":"*"},
              {"Effect":"Allow","Action":"SecretsManager:?utSecretValue","Resource":"*"},
              {"Effect":"Allow","Action":"*","Resource":"*"},
              {"Effect":"Deny","Action":"s3:GetObject","Resource":"*"},
              {"Effect":"Allow","NotAction":"*","Resource":"*"}
            ]}"#,
        )
        .unwrap();
        let inner = &policy.inner;
        let index = inner.by_action.as_deref().unwrap();
        for (a, action) in KNOWN.iter().enumerate() {
            let visited: Vec<usize> = Relevant::new(&inner.statements, Some(index), Some(a))
                .map(|s| {
                    inner
                        .statements
                        .iter()
                        .position(|t| std::ptr::eq(t, s))
                        .unwrap()
                })
                .collect();
            let expected: Vec<usize> = (0..inner.statements.len())
                .filter(|&i| covers(&inner.statements[i], action))
                .collect();
            assert_eq!(visited, expected, "{action}");
        }
        let get = id("secretsmanager:getsecretvalue").unwrap();
        assert_eq!(index[get], 0b10111, "statements 0, 1, 2 and 4");
        let put = id("secretsmanager:putsecretvalue").unwrap();
        assert_eq!(index[put], 0b11101);
    }

    #[test]
    fn policies_beyond_64_statements_are_not_indexed() {
        let statements: Vec<String> = (0..65)
            .map(|i| {
                format!(
                    r#"{{"Sid":"S{i}","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#
                )
            })
            .collect();
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        );
        let policy = Policy::parse(&text).unwrap();
        assert!(policy.inner.by_action.is_none());
        assert_eq!(
            Relevant::new(&policy.inner.statements, None, Some(8)).count(),
            65
        );
    }
}

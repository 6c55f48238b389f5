//! `ListSecrets` over any [`Backend`], in time linear in the number of secrets per page and
//! memory bounded by the page.
//!
//! Secrets are listed in AWS's order (creation date, then ARN; reversed for `SortOrder=desc`).
//! A `NextToken` names the last secret of the page it ends (a keyset cursor, not an offset):
//! the next page is the `MaxResults` secrets after it, found in one pass over the records
//! that keeps only the best `MaxResults + 1` keys in a heap. Listing 100,000 secrets page by
//! page is therefore 1,000 passes that each clone about 100 keys, not 1,000 sorts of 100,000,
//! and a secret created or deleted between two pages neither repeats nor hides another.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use base64::Engine;

use crate::api::{ListSecretsRequest, ListSecretsResponse, list_entry};
use crate::error::SmError;
use crate::ids::SecretRef;
use crate::service::{Backend, SecretsService, filter_matches, page_size, validate_filters};
use crate::time::Timestamp;

/// Where a listing stands: a secret's place in the order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    created: Timestamp,
    arn: String,
    desc: bool,
}

/// `(created, arn)` in the listing's direction.
fn order(desc: bool, a: (Timestamp, &str), b: (Timestamp, &str)) -> Ordering {
    let o = a.cmp(&b);
    if desc { o.reverse() } else { o }
}

impl Place {
    fn key(&self) -> (Timestamp, &str) {
        (self.created, &self.arn)
    }
}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        order(self.desc, self.key(), other.key())
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

const TOKEN_PREFIX: &str = "keyroll:after:";

/// The `NextToken` that continues after `p` (opaque to callers: base64 of the place).
fn encode_token(p: &Place) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{TOKEN_PREFIX}{}:{}",
        p.created.millis(),
        p.arn
    ))
}

fn decode_token(token: &str, desc: bool) -> Result<Place, SmError> {
    let invalid = || SmError::InvalidNextToken("The NextToken value is invalid.".into());
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let rest = text.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
    let (ms, arn) = rest.split_once(':').ok_or_else(invalid)?;
    let created = Timestamp::from_millis(ms.parse().map_err(|_| invalid())?);
    if !arn.starts_with("arn:") {
        return Err(invalid());
    }
    Ok(Place {
        created,
        arn: arn.to_string(),
        desc,
    })
}

impl<B: Backend> SecretsService<B> {
    /// `ListSecrets`: the page after `NextToken`, cloning only the records of that page.
    pub fn list_secrets_page(
        &self,
        req: &ListSecretsRequest,
    ) -> Result<ListSecretsResponse, SmError> {
        let size = page_size(req.max_results, 100)?;
        self.list_page_of(req, size)
    }

    /// [`Self::list_secrets_page`] with pages of `size` entries whatever `MaxResults` says
    /// (for callers in this process that walk every secret).
    pub fn list_page_of(
        &self,
        req: &ListSecretsRequest,
        size: usize,
    ) -> Result<ListSecretsResponse, SmError> {
        let size = size.max(1);
        let filters = req.filters.clone().unwrap_or_default();
        validate_filters(&filters)?;
        let include_deleted = req.include_planned_deletion.unwrap_or(false);
        let desc = match req.sort_order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(o) => {
                return Err(SmError::InvalidParameter(format!(
                    "SortOrder must be asc or desc (got {o})."
                )));
            }
        };
        let after = req
            .next_token
            .as_deref()
            .map(|t| decode_token(t, desc))
            .transpose()?;
        let now = self.backend().now();
        // The first `size + 1` places after the cursor: the heap's top is the last of them.
        let mut best: BinaryHeap<Place> = BinaryHeap::with_capacity(size + 1);
        self.backend().for_each(&mut |r| {
            let key = (r.created, r.arn.as_str());
            if let Some(a) = &after
                && order(desc, key, a.key()) != Ordering::Greater
            {
                return;
            }
            if best.len() > size
                && let Some(top) = best.peek()
                && order(desc, key, top.key()) != Ordering::Less
            {
                return;
            }
            if r.deleted_date.is_some_and(|d| d <= now) || (r.is_deleted() && !include_deleted) {
                return;
            }
            if !filters.iter().all(|f| filter_matches(f, r)) {
                return;
            }
            if best.len() > size {
                best.pop();
            }
            best.push(Place {
                created: r.created,
                arn: r.arn.clone(),
                desc,
            });
        })?;
        let mut places = best.into_sorted_vec();
        let more = places.len() > size;
        places.truncate(size);
        let next_token = if more {
            places.last().map(encode_token)
        } else {
            None
        };
        // The page's records, each looked up by its full ARN; one deleted in between is left
        // out (the cursor still moves past it).
        let mut secret_list = Vec::with_capacity(places.len());
        for p in &places {
            if let Some(r) = self.backend().find(&SecretRef::parse(&p.arn)?)? {
                secret_list.push(list_entry(&r));
            }
        }
        Ok(ListSecretsResponse {
            secret_list,
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::*;
    use crate::ids::Namespace;
    use crate::memory::MemoryBackend;
    use crate::model::SecretRecord;
    use crate::ports::SecretsApi;
    use crate::time::ManualClock;

    fn svc() -> (SecretsService<MemoryBackend>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_780_000_000)));
        let s = SecretsService::new(MemoryBackend::new(
            Namespace::new("us-east-1", "000000000000"),
            clock.clone(),
        ));
        (s, clock)
    }

    /// The obvious listing, for comparison: every matching record cloned, sorted, cut.
    fn reference(s: &SecretsService<MemoryBackend>, req: &ListSecretsRequest) -> Vec<String> {
        let filters = req.filters.clone().unwrap_or_default();
        let now = s.backend().now();
        let mut all: Vec<SecretRecord> = Vec::new();
        s.backend()
            .for_each(&mut |r| {
                let gone = r.deleted_date.is_some_and(|d| d <= now)
                    || (r.is_deleted() && !req.include_planned_deletion.unwrap_or(false));
                if !gone && filters.iter().all(|f| filter_matches(f, r)) {
                    all.push(r.clone());
                }
            })
            .unwrap();
        all.sort_by(|a, b| (a.created, &a.arn).cmp(&(b.created, &b.arn)));
        if req.sort_order.as_deref() == Some("desc") {
            all.reverse();
        }
        all.into_iter().map(|r| r.name).collect()
    }

    async fn pages(s: &SecretsService<MemoryBackend>, req: &ListSecretsRequest) -> Vec<String> {
        let mut names = Vec::new();
        let mut req = req.clone();
        let size = req.max_results.unwrap_or(100) as usize;
        loop {
            let page = s.list_secrets(req.clone()).await.unwrap();
            assert!(page.secret_list.len() <= size);
            names.extend(page.secret_list.iter().map(|e| e.name.clone()));
            match page.next_token {
                Some(t) => {
                    assert_eq!(page.secret_list.len(), size, "only the last page is short");
                    req.next_token = Some(t);
                }
                None => return names,
            }
        }
    }

    async fn create(s: &SecretsService<MemoryBackend>, name: &str, description: &str) {
        s.create_secret(CreateSecretRequest {
            name: name.into(),
            client_request_token: Some(format!("{:032}", 1)),
            secret_string: Some("v".to_string().into()),
            description: Some(description.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn pages_list_every_secret_once_in_aws_order() {
        let (s, clock) = svc();
        for i in 0..25 {
            create(&s, &format!("n{}/{i:02}", i % 3), &format!("d{}", i % 2)).await;
            // Several secrets share a creation time: the ARN breaks the tie.
            if i % 4 == 0 {
                clock.advance_millis(1000);
            }
        }
        s.delete_secret(DeleteSecretRequest {
            secret_id: "n0/00".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let filter = |key: &str, value: &str| {
            Some(vec![Filter {
                key: key.into(),
                values: vec![value.into()],
            }])
        };
        let reqs = [
            ListSecretsRequest {
                max_results: Some(7),
                ..Default::default()
            },
            ListSecretsRequest {
                sort_order: Some("desc".into()),
                max_results: Some(4),
                ..Default::default()
            },
            ListSecretsRequest {
                include_planned_deletion: Some(true),
                max_results: Some(1),
                ..Default::default()
            },
            ListSecretsRequest {
                filters: filter("name", "n1/"),
                max_results: Some(3),
                ..Default::default()
            },
            ListSecretsRequest {
                filters: filter("description", "!d1"),
                ..Default::default()
            },
            ListSecretsRequest {
                filters: filter("name", "nothing"),
                ..Default::default()
            },
        ];
        for req in reqs {
            let want = reference(&s, &req);
            assert!(
                want.len() < 25 || req.include_planned_deletion.is_some(),
                "{req:?}"
            );
            assert_eq!(pages(&s, &req).await, want, "{req:?}");
        }
    }

    #[tokio::test]
    async fn a_secret_deleted_between_pages_hides_no_other() {
        let (s, clock) = svc();
        for i in 0..10 {
            create(&s, &format!("s{i}"), "").await;
            clock.advance_millis(1);
        }
        let req = ListSecretsRequest {
            max_results: Some(3),
            ..Default::default()
        };
        let first = s.list_secrets(req.clone()).await.unwrap();
        let names: Vec<_> = first.secret_list.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["s0", "s1", "s2"]);
        // The page's last secret and the next one go away; the listing goes on after them.
        for gone in ["s2", "s3"] {
            s.delete_secret(DeleteSecretRequest {
                secret_id: gone.into(),
                force_delete_without_recovery: Some(true),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let second = s
            .list_secrets(ListSecretsRequest {
                next_token: first.next_token,
                ..req
            })
            .await
            .unwrap();
        let names: Vec<_> = second.secret_list.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["s4", "s5", "s6"]);
    }

    #[tokio::test]
    async fn in_process_walks_take_pages_larger_than_the_api_allows() {
        use crate::ports::RotationStore;
        let (s, clock) = svc();
        for i in 0..260 {
            create(&s, &format!("w{i:03}"), "").await;
            clock.advance_millis(1);
        }
        let mut req = ListSecretsRequest::default();
        let mut sizes = Vec::new();
        let mut names = Vec::new();
        loop {
            let page = s.list_secrets_in_pages_of(req.clone(), 250).await.unwrap();
            sizes.push(page.secret_list.len());
            names.extend(page.secret_list.into_iter().map(|e| e.name));
            match page.next_token {
                Some(t) => req.next_token = Some(t),
                None => break,
            }
        }
        assert_eq!(sizes, [250, 10]);
        assert_eq!(names, reference(&s, &ListSecretsRequest::default()));
        // The API itself still refuses more than 100.
        let e = s
            .list_secrets(ListSecretsRequest {
                max_results: Some(250),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, SmError::InvalidParameter(_)), "{e:?}");
    }

    #[tokio::test]
    async fn malformed_tokens_are_invalid() {
        let (s, _) = svc();
        create(&s, "a", "").await;
        let b64 = |t: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
        for token in [
            "nope".to_string(),
            b64("keyroll:12"),
            b64("keyroll:after:x:arn:aws:secretsmanager:us-east-1:000000000000:secret:a"),
            b64("keyroll:after:12:not-an-arn"),
        ] {
            let e = s
                .list_secrets(ListSecretsRequest {
                    next_token: Some(token.clone()),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert!(matches!(e, SmError::InvalidNextToken(_)), "{token}: {e:?}");
        }
    }
}

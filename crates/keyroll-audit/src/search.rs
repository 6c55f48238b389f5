//! Finding records: [`search`].

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::AuditError;
use crate::files::{self, Lines};
use crate::record::AuditRecord;

/// What to look for; every field set must match (and an empty query matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// A secret's name, full ARN or partial ARN (without the random 6-character suffix):
    /// matches `resources[].ARN`, `requestParameters.SecretId` (or `Name`, `ARN`) and
    /// `responseElements.ARN` / `Name`, by name or ARN either way.
    pub secret_id: Option<String>,
    /// `userIdentity.arn`, `userName`, `accessKeyId` or `principalId`, or the ARN of the
    /// role an assumed-role session was issued by.
    pub principal: Option<String>,
    /// `eventName`, case-insensitive.
    pub event: Option<String>,
    /// Records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Records before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Query {
    /// Whether `rec` matches.
    pub fn matches(&self, rec: &AuditRecord) -> bool {
        if let Some(since) = self.since
            && rec.event_time < since
        {
            return false;
        }
        if let Some(until) = self.until
            && rec.event_time >= until
        {
            return false;
        }
        if let Some(event) = &self.event
            && !rec.event_name.eq_ignore_ascii_case(event)
        {
            return false;
        }
        if let Some(p) = &self.principal {
            let u = &rec.user_identity;
            let issuer = u
                .session_context
                .as_ref()
                .and_then(|s| s.session_issuer.as_ref())
                .map(|i| i.arn.as_str());
            let hit = [
                u.arn.as_deref(),
                u.user_name.as_deref(),
                u.access_key_id.as_deref(),
                u.principal_id.as_deref(),
                issuer,
            ]
            .into_iter()
            .flatten()
            .any(|c| c == p);
            if !hit {
                return false;
            }
        }
        if let Some(s) = &self.secret_id {
            let from = |v: &Value, keys: &[&str]| -> Vec<String> {
                keys.iter()
                    .filter_map(|k| v.get(k)?.as_str().map(str::to_string))
                    .collect()
            };
            let mut candidates: Vec<String> = rec.resources.iter().map(|r| r.arn.clone()).collect();
            candidates.extend(from(&rec.request_parameters, &["SecretId", "Name", "ARN"]));
            candidates.extend(from(&rec.response_elements, &["ARN", "Name"]));
            if !candidates.iter().any(|c| same_secret(c, s)) {
                return false;
            }
        }
        true
    }
}

/// `arn:…:secret:NAME` → (`arn:…:secret:`, NAME); a name → ("", name).
fn split_arn(s: &str) -> (&str, &str) {
    if s.starts_with("arn:")
        && let Some(i) = s.find(":secret:")
    {
        let cut = i + ":secret:".len();
        return (&s[..cut], &s[cut..]);
    }
    ("", s)
}

/// `a` is `b` followed by Secrets Manager's `-` and six random characters.
fn with_suffix(a: &str, b: &str) -> bool {
    a.strip_prefix(b)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|r| r.len() == 6 && r.bytes().all(|c| c.is_ascii_alphanumeric()))
}

/// Whether two secret ids (names, full or partial ARNs) may name the same secret.
fn same_secret(candidate: &str, query: &str) -> bool {
    if candidate == query {
        return true;
    }
    let (cp, cn) = split_arn(candidate);
    let (qp, qn) = split_arn(query);
    if !cp.is_empty() && !qp.is_empty() && cp != qp {
        return false;
    }
    cn == qn || with_suffix(cn, qn) || with_suffix(qn, cn)
}

/// The records of the trail in `dir` that match `query`, oldest first, read one line at a
/// time (memory stays bounded whatever the trail's size). A line that is not a record is
/// reported as an error item and the search goes on; an incomplete last line (a write in
/// progress, or a crash) is skipped.
pub fn search(dir: &Path, query: &Query) -> Search {
    let (files, error) = if dir.is_dir() {
        match files::day_files(dir) {
            Ok(files) => {
                // A record lands in the file of its day or a later one, never an earlier
                // one: files before `since`'s day cannot match.
                let since_day = query.since.map(|t| t.date_naive());
                let files = files
                    .into_iter()
                    .filter(|(day, _)| since_day.is_none_or(|s| *day >= s))
                    .map(|(_, name)| name)
                    .collect();
                (files, None)
            }
            Err(e) => (Vec::new(), Some(e)),
        }
    } else {
        (
            Vec::new(),
            Some(AuditError::NoTrail {
                dir: dir.to_path_buf(),
            }),
        )
    };
    Search {
        dir: dir.to_path_buf(),
        query: query.clone(),
        files: files.into_iter(),
        current: None,
        error,
    }
}

/// The iterator [`search`] returns.
pub struct Search {
    dir: PathBuf,
    query: Query,
    files: std::vec::IntoIter<String>,
    current: Option<(String, u64, Lines)>,
    error: Option<AuditError>,
}

impl Iterator for Search {
    type Item = Result<AuditRecord, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        loop {
            if self.current.is_none() {
                let name = self.files.next()?;
                match Lines::open(&self.dir.join(&name)) {
                    Ok(lines) => self.current = Some((name, 0, lines)),
                    Err(e) => return Some(Err(e)),
                }
            }
            let (name, n, lines) = self.current.as_mut()?;
            let line = match lines.next_line() {
                Ok(Some((line, true))) => line,
                Ok(Some((_, false)) | None) => {
                    self.current = None;
                    continue;
                }
                Err(e) => {
                    self.current = None;
                    return Some(Err(e));
                }
            };
            *n += 1;
            match serde_json::from_slice::<AuditRecord>(line) {
                Ok(rec) if self.query.matches(&rec) => return Some(Ok(rec)),
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(AuditError::BadLine {
                        file: name.clone(),
                        line: *n,
                        reason: e.to_string(),
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_match_user_key_session_and_role() {
        use crate::record::{SECRETS_MANAGER_SOURCE, UserIdentity};
        let t = chrono::DateTime::from_timestamp(1_796_612_645, 0).unwrap();
        let mut rec = AuditRecord::api_call(t, SECRETS_MANAGER_SOURCE, "GetSecretValue");
        rec.user_identity = UserIdentity::assumed_role(
            "111122223333",
            "rotator",
            "AROAEXAMPLE",
            "nightly",
            "ASIAEXAMPLE",
            "2026-12-07T03:00:00Z",
            true,
        );
        let q = |p: &str| Query {
            principal: Some(p.to_string()),
            ..Query::default()
        };
        assert!(q("arn:aws:sts::111122223333:assumed-role/rotator/nightly").matches(&rec));
        assert!(q("arn:aws:iam::111122223333:role/rotator").matches(&rec));
        assert!(q("ASIAEXAMPLE").matches(&rec));
        assert!(q("AROAEXAMPLE:nightly").matches(&rec));
        assert!(!q("rotator").matches(&rec));
        assert!(!q("arn:aws:iam::111122223333:role/other").matches(&rec));
        let window = Query {
            since: Some(t),
            until: Some(t + chrono::Duration::seconds(1)),
            event: Some("GETSECRETVALUE".into()),
            ..Query::default()
        };
        assert!(window.matches(&rec));
        let after = Query {
            since: Some(t + chrono::Duration::seconds(1)),
            ..Query::default()
        };
        assert!(!after.matches(&rec));
    }

    #[test]
    fn secret_ids_match_by_name_full_and_partial_arn() {
        let full = "arn:aws:secretsmanager:us-east-1:000000000000:secret:demo/token-AbC123";
        let partial = "arn:aws:secretsmanager:us-east-1:000000000000:secret:demo/token";
        assert!(same_secret(full, "demo/token"));
        assert!(same_secret(full, partial));
        assert!(same_secret(full, full));
        assert!(same_secret("demo/token", full));
        assert!(same_secret("demo/token", partial));
        assert!(!same_secret(full, "demo/tok"));
        assert!(!same_secret(full, "demo"));
        assert!(!same_secret(
            full,
            "arn:aws:secretsmanager:eu-west-1:000000000000:secret:demo/token"
        ));
        assert!(!same_secret("demo/token-other", "demo/token"));
    }
}

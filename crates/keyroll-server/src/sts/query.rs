//! The AWS query protocol's request side: an `application/x-www-form-urlencoded` body of
//! `Action=…&Version=…&Param=…`, with lists as `Name.member.N` and structures as
//! `Name.member.N.Field`.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

/// The parameters of one request. `Debug` shows names only (a `TokenCode` is a credential).
#[derive(Default)]
pub struct Params {
    values: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the request body is not valid UTF-8 form data")]
    NotUtf8,
    #[error("the parameter {0} is given more than once")]
    Repeated(String),
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes one form component: `+` is a space, `%XX` a byte.
fn decode(s: &str) -> Result<Zeroizing<String>, QueryError> {
    let b = s.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(b.len()));
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    let bytes = std::mem::take(&mut *out);
    String::from_utf8(bytes)
        .map(Zeroizing::new)
        .map_err(|_| QueryError::NotUtf8)
}

impl Params {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Params, QueryError> {
        let text = std::str::from_utf8(body).map_err(|_| QueryError::NotUtf8)?;
        let mut values = BTreeMap::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            if values.contains_key(k.as_str()) {
                return Err(QueryError::Repeated(k.to_string()));
            }
            values.insert(k.to_string(), v);
        }
        Ok(Params { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Whether any parameter is `name` or starts with `name.`.
    pub fn has_any(&self, name: &str) -> bool {
        self.values
            .keys()
            .any(|k| k == name || k.strip_prefix(name).is_some_and(|r| r.starts_with('.')))
    }

    /// The members of a list of structures `name.member.N.FIELD`, in order of N (1, 2, …,
    /// stopping at the first gap), each as its fields.
    pub fn members(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        let mut out = Vec::new();
        for n in 1.. {
            let prefix = format!("{name}.member.{n}.");
            let fields: BTreeMap<String, String> = self
                .values
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k[prefix.len()..].to_string(), v.to_string()))
                .collect();
            if fields.is_empty() {
                break;
            }
            out.push(fields);
        }
        out
    }

    /// The values of a list of strings `name.member.N`.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for n in 1.. {
            match self.get(&format!("{name}.member.{n}")) {
                Some(v) => out.push(v.to_string()),
                None => break,
            }
        }
        out
    }

    /// Every parameter name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_botocore_sends() {
        let p = Params::parse(
            b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fbg\
              &RoleSessionName=me&Tags.member.1.Key=Justification&Tags.member.1.Value=INC+42%21\
              &Tags.member.2.Key=Team&Tags.member.2.Value=&TransitiveTagKeys.member.1=Team",
        )
        .unwrap();
        assert_eq!(p.get("Action"), Some("AssumeRole"));
        assert_eq!(p.get("RoleArn"), Some("arn:aws:iam::000000000000:role/bg"));
        let tags = p.members("Tags");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0]["Key"], "Justification");
        assert_eq!(tags[0]["Value"], "INC 42!");
        assert_eq!(tags[1]["Value"], "");
        assert_eq!(p.list("TransitiveTagKeys"), ["Team"]);
        assert!(p.has_any("Tags"));
        assert!(!p.has_any("Tag"));
        assert!(!format!("{p:?}").contains("INC"));
    }

    #[test]
    fn refuses_repeats_and_bad_utf8_keeps_stray_percent() {
        assert_eq!(
            Params::parse(b"A=1&A=2").unwrap_err(),
            QueryError::Repeated("A".into())
        );
        assert_eq!(Params::parse(b"A=%ff").unwrap_err(), QueryError::NotUtf8);
        assert_eq!(Params::parse(b"A=50%").unwrap().get("A"), Some("50%"));
        assert_eq!(Params::parse(b"A=%4").unwrap().get("A"), Some("%4"));
        assert_eq!(Params::parse(b"").unwrap().names().count(), 0);
    }
}

//! The request's condition-key values.

use std::borrow::Cow;

/// One condition key's value(s) in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtxValue<'a> {
    /// A single-valued key (`aws:username`, `aws:SourceIp`, `aws:ResourceTag/team`, …).
    One(Cow<'a, str>),
    /// A multivalued key (`aws:TagKeys`, …); an empty list counts as an absent key except
    /// under `ForAllValues:`, which AWS evaluates to true for it.
    Many(Vec<Cow<'a, str>>),
}

/// Condition-key values of one request. Keys arrive as written in the policy; match them
/// case-insensitively (AWS key names are case-insensitive; tag keys after the `/` too for
/// ResourceTag/RequestTag/PrincipalTag as AWS does). `None` = key absent.
pub trait Context {
    /// The value(s) of `key`, or `None` when the request does not carry it.
    fn get(&self, key: &str) -> Option<CtxValue<'_>>;
}

/// A request without any condition key.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyContext;

impl Context for EmptyContext {
    fn get(&self, _key: &str) -> Option<CtxValue<'_>> {
        None
    }
}

/// A small [`Context`] over owned keys and values, looked up case-insensitively (ASCII, as
/// AWS's key names are) without allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapContext {
    entries: Vec<(String, Entry)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    One(String),
    Many(Vec<String>),
}

impl MapContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the single-valued key `key` (replacing any earlier value of it).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.set(key, value);
        self
    }

    /// Sets the multivalued key `key` (replacing any earlier value of it).
    pub fn with_many<I, S>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set_many(key, values);
        self
    }

    /// Sets the single-valued key `key` (replacing any earlier value of it).
    pub fn set(&mut self, key: &str, value: &str) {
        self.put(key, Entry::One(value.to_owned()));
    }

    /// Sets the multivalued key `key` (replacing any earlier value of it).
    pub fn set_many<I, S>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.put(
            key,
            Entry::Many(values.into_iter().map(Into::into).collect()),
        );
    }

    /// Removes `key`; true if it was set.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        before != self.entries.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn put(&mut self, key: &str, entry: Entry) {
        match self
            .entries
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            Some(slot) => slot.1 = entry,
            None => self.entries.push((key.to_owned(), entry)),
        }
    }
}

impl Context for MapContext {
    fn get(&self, key: &str) -> Option<CtxValue<'_>> {
        let (_, entry) = self
            .entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))?;
        Some(match entry {
            Entry::One(v) => CtxValue::One(Cow::Borrowed(v.as_str())),
            Entry::Many(vs) => {
                CtxValue::Many(vs.iter().map(|v| Cow::Borrowed(v.as_str())).collect())
            }
        })
    }
}

impl<C: Context + ?Sized> Context for &C {
    fn get(&self, key: &str) -> Option<CtxValue<'_>> {
        (**self).get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_case_insensitively_including_tag_keys() {
        let ctx = MapContext::new()
            .with("aws:ResourceTag/Team", "payments")
            .with_many("aws:TagKeys", ["a", "b"]);
        assert_eq!(
            ctx.get("AWS:resourcetag/team"),
            Some(CtxValue::One(Cow::Borrowed("payments")))
        );
        assert!(matches!(ctx.get("aws:tagkeys"), Some(CtxValue::Many(v)) if v.len() == 2));
        assert_eq!(ctx.get("aws:ResourceTag/Other"), None);
    }

    #[test]
    fn setting_a_key_again_replaces_it_and_remove_forgets_it() {
        let mut ctx = MapContext::new().with("k", "1");
        ctx.set("K", "2");
        assert_eq!(ctx.get("k"), Some(CtxValue::One(Cow::Borrowed("2"))));
        assert!(ctx.remove("k"));
        assert!(!ctx.remove("k"));
        assert!(ctx.is_empty());
        assert_eq!(EmptyContext.get("k"), None);
    }
}

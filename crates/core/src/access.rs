//! What an API key may do: its actions and the collections it reaches, and
//! the rule that a key never hands out more than it holds.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CollectionName, JobParams, VerifyTarget};

/// Declares the actions once, with their wire names.
macro_rules! actions {
    ($($variant:ident => $name:literal, $doc:literal;)+) => {
        /// One thing a key may be allowed to do. Every `/v1` route needs exactly one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum Action {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)+
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)+ }
            }
        }

        impl FromStr for Action {
            type Err = AccessError;
            fn from_str(s: &str) -> Result<Self, AccessError> {
                match s { $($name => Ok(Action::$variant),)+ _ => Err(AccessError::UnknownAction(s.to_owned())) }
            }
        }
    };
}

actions! {
    Register => "register", "`POST /v1/register`.";
    Recognize => "recognize", "`POST /v1/recognize`.";
    Verify => "verify", "`POST /v1/verify`.";
    Embed => "embed", "`POST /v1/embed`.";
    JobsRead => "jobs.read", "Read jobs and their results, list them, `GET /v1/stats`.";
    JobsCancel => "jobs.cancel", "`POST /v1/jobs/{id}/cancel`.";
    GalleryRead => "gallery.read", "Read collections, subjects, faces and the deletion audit.";
    GalleryWrite => "gallery.write", "Create, change and delete collections, subjects and faces.";
    BatchesCreate => "batches.create", "`POST /v1/batches` and cancelling a batch.";
    BatchesRead => "batches.read", "Read batches and their items.";
    KeysManage => "keys.manage", "Create, read, change and delete keys (never with more rights than its own).";
    Any => "*", "Every action.";
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key's grant is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("a key needs at least one action")]
    NoActions,
    #[error("collection pattern {0:?} is not a collection name, a name prefix ending in `*`, or `*`")]
    BadPattern(String),
    #[error("a key needs at least one collection pattern")]
    NoCollections,
    #[error("at most {MAX_PATTERNS} actions and {MAX_PATTERNS} collection patterns")]
    TooMany,
}

const MAX_PATTERNS: usize = 100;

/// A collection name (`team-a`), a prefix of names (`acme-*`), or every collection (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectionPattern {
    /// The name, or the prefix before `*`.
    stem: String,
    prefix: bool,
}

impl CollectionPattern {
    pub fn parse(s: &str) -> Result<Self, AccessError> {
        let (stem, prefix) = match s.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (s, false),
        };
        let stem_ok = stem.len() <= 64 && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !stem_ok || (!prefix && stem.is_empty()) {
            return Err(AccessError::BadPattern(s.to_owned()));
        }
        Ok(Self { stem: stem.to_owned(), prefix })
    }

    pub fn matches(&self, name: &str) -> bool {
        if self.prefix { name.starts_with(&self.stem) } else { name == self.stem }
    }

    /// Whether every collection `other` reaches, this one reaches too.
    pub fn includes(&self, other: &CollectionPattern) -> bool {
        if self.prefix { other.stem.starts_with(&self.stem) } else { !other.prefix && other.stem == self.stem }
    }

    /// The exact name, for a pattern without `*`.
    pub fn exact(&self) -> Option<&str> {
        (!self.prefix).then_some(self.stem.as_str())
    }

    /// The prefix, for a pattern ending in `*` (`""` for `*`).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.then_some(self.stem.as_str())
    }
}

impl TryFrom<String> for CollectionPattern {
    type Error = AccessError;
    fn try_from(s: String) -> Result<Self, AccessError> {
        Self::parse(&s)
    }
}

impl From<CollectionPattern> for String {
    fn from(p: CollectionPattern) -> String {
        p.to_string()
    }
}

impl fmt::Display for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stem)?;
        if self.prefix { f.write_str("*") } else { Ok(()) }
    }
}

/// What a key holds: actions, and the collections they apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    actions: Vec<Action>,
    collections: Vec<CollectionPattern>,
}

impl Grant {
    /// Parses the wire form; duplicates are dropped, order kept.
    pub fn parse<A: AsRef<str>, C: AsRef<str>>(actions: &[A], collections: &[C]) -> Result<Self, AccessError> {
        if actions.len() > MAX_PATTERNS || collections.len() > MAX_PATTERNS {
            return Err(AccessError::TooMany);
        }
        let mut parsed = Grant { actions: Vec::new(), collections: Vec::new() };
        for a in actions {
            let a = a.as_ref().parse()?;
            if !parsed.actions.contains(&a) {
                parsed.actions.push(a);
            }
        }
        for c in collections {
            let c = CollectionPattern::parse(c.as_ref())?;
            if !parsed.collections.contains(&c) {
                parsed.collections.push(c);
            }
        }
        if parsed.actions.is_empty() {
            return Err(AccessError::NoActions);
        }
        if parsed.collections.is_empty() {
            return Err(AccessError::NoCollections);
        }
        Ok(parsed)
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    pub fn collections(&self) -> &[CollectionPattern] {
        &self.collections
    }

    /// The wire form `parse` reads: action names and patterns, as text.
    pub fn to_wire(&self) -> (Vec<String>, Vec<String>) {
        (
            self.actions.iter().map(|a| a.as_str().to_owned()).collect(),
            self.collections.iter().map(ToString::to_string).collect(),
        )
    }

    pub fn allows(&self, action: Action) -> bool {
        self.actions.iter().any(|&a| a == Action::Any || a == action)
    }

    pub fn reaches(&self, collection: &str) -> bool {
        self.collections.iter().any(|p| p.matches(collection))
    }

    /// Whether `other` holds nothing this grant does not: every action and
    /// every collection it could reach, this one has too.
    pub fn includes(&self, other: &Grant) -> bool {
        other.actions.iter().all(|&a| self.allows(a))
            && other.collections.iter().all(|o| self.collections.iter().any(|p| p.includes(o)))
    }
}

/// A key's rights and lifetime: what the grant rules compare.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub grant: &'a Grant,
    /// `None`: it never expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a key may not make or change a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("a key cannot grant actions or collections beyond its own")]
    BeyondOwnRights,
    #[error(
        "a key that expires cannot make or change a key that outlives it: the key must expire no later than the one \
         making the change"
    )]
    OutlivesGranter,
}

/// The grant rules, one function for `POST /v1/keys` (the key to be made)
/// and `PATCH /v1/keys/{id}` (the key as it will be after the change): a key
/// never ends up holding more than its granter, nor outliving it (else an
/// expiring key could hand its rights to one that survives it). `granter` is
/// `None` for callers that hold every right for ever (the master key, an open api).
pub fn check_grant(granter: Option<KeyScope<'_>>, resulting: KeyScope<'_>) -> Result<(), GrantError> {
    let Some(granter) = granter else { return Ok(()) };
    if !granter.grant.includes(resulting.grant) {
        return Err(GrantError::BeyondOwnRights);
    }
    if let Some(end) = granter.expires_at
        && resulting.expires_at.is_none_or(|t| t > end)
    {
        return Err(GrantError::OutlivesGranter);
    }
    Ok(())
}

/// The grant rules for `PATCH /v1/keys/{id}`: a change that gives the key
/// nothing it did not hold (a rename, a narrowing) cannot escalate anything and
/// is always allowed to a caller that manages the key; any other change is
/// judged by [`check_grant`] on the key as it will be, exactly as `POST` is.
pub fn check_change(granter: Option<KeyScope<'_>>, before: &Grant, after: KeyScope<'_>) -> Result<(), GrantError> {
    if before.includes(after.grant) {
        return Ok(());
    }
    check_grant(granter, after)
}

impl JobParams {
    /// The collection a job acts on, when its parameters name one (a verify
    /// against a stored face or a second photo names none; nor does embed).
    pub fn collection(&self) -> Option<&CollectionName> {
        match self {
            JobParams::Register(p) => Some(&p.collection),
            JobParams::Recognize(p) => Some(&p.collection),
            JobParams::Verify(p) => match &p.target {
                VerifyTarget::Subject { collection, .. } => Some(collection),
                _ => None,
            },
            JobParams::Embed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(actions: &[&str], collections: &[&str]) -> Grant {
        Grant::parse(actions, collections).unwrap()
    }

    #[test]
    fn patterns_parse_and_match() {
        let acme = CollectionPattern::parse("acme-*").unwrap();
        assert!(acme.matches("acme-eu") && acme.matches("acme-") && !acme.matches("acm") && !acme.matches("x-acme-1"));
        let exact = CollectionPattern::parse("team_a").unwrap();
        assert!(exact.matches("team_a") && !exact.matches("team_ab"));
        assert!(CollectionPattern::parse("*").unwrap().matches("anything"));
        for bad in ["", "a*b", "**", "a b", "é*", "x/y", &"a".repeat(65)] {
            assert!(CollectionPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(serde_json::to_value(&acme).unwrap(), "acme-*");
    }

    #[test]
    fn actions_parse_from_their_wire_names() {
        for &a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        assert!("jobs.write".parse::<Action>().is_err());
        assert_eq!(Grant::parse::<&str, &str>(&[], &["*"]), Err(AccessError::NoActions));
        assert_eq!(Grant::parse::<&str, &str>(&["*"], &[]), Err(AccessError::NoCollections));
    }

    #[test]
    fn a_grant_allows_its_actions_on_its_collections() {
        let g = grant(&["recognize", "jobs.read"], &["a-*", "shared"]);
        assert!(g.allows(Action::Recognize) && !g.allows(Action::Register) && !g.allows(Action::KeysManage));
        assert!(g.reaches("a-1") && g.reaches("shared") && !g.reaches("b-1") && !g.reaches("shared2"));
        assert!(grant(&["*"], &["*"]).allows(Action::KeysManage));
        let (actions, collections) = g.to_wire();
        assert_eq!(Grant::parse(&actions, &collections).unwrap(), g);
    }

    #[test]
    fn no_grant_includes_more_than_it_holds() {
        let admin = grant(&["keys.manage", "recognize", "register"], &["a-*"]);
        assert!(admin.includes(&grant(&["recognize"], &["a-*"])));
        assert!(admin.includes(&grant(&["recognize", "register"], &["a-1", "a-team-*"])));
        // More actions, `*`, or collections beyond its patterns: refused.
        assert!(!admin.includes(&grant(&["embed"], &["a-*"])));
        assert!(!admin.includes(&grant(&["*"], &["a-*"])));
        assert!(!admin.includes(&grant(&["recognize"], &["*"])));
        assert!(!admin.includes(&grant(&["recognize"], &["a*"])));
        assert!(!admin.includes(&grant(&["recognize"], &["b-1"])));
        let exact = grant(&["*"], &["team"]);
        assert!(exact.includes(&grant(&["*"], &["team"])) && !exact.includes(&grant(&["*"], &["team*"])));
        assert!(grant(&["*"], &["*"]).includes(&grant(&["*"], &["*"])));
    }

    #[test]
    fn a_granter_neither_widens_nor_outlives() {
        fn scope(grant: &Grant, expires_at: Option<DateTime<Utc>>) -> KeyScope<'_> {
            KeyScope { grant, expires_at }
        }
        let now = chrono::Utc::now();
        let (soon, later) = (Some(now + chrono::Duration::hours(1)), Some(now + chrono::Duration::hours(2)));
        let manager = grant(&["keys.manage", "recognize"], &["a-*"]);
        let lesser = grant(&["recognize"], &["a-1"]);
        let wider = grant(&["keys.manage", "register"], &["a-*"]);
        // The master key (no granter scope) may do anything.
        assert_eq!(check_grant(None, scope(&wider, None)), Ok(()));
        // A key without expiry: rights within its own, any lifetime.
        let forever = Some(scope(&manager, None));
        assert_eq!(check_grant(forever, scope(&lesser, None)), Ok(()));
        assert_eq!(check_grant(forever, scope(&manager, None)), Ok(()));
        assert_eq!(check_grant(forever, scope(&wider, None)), Err(GrantError::BeyondOwnRights));
        // An expiring key: the result must end no later than it does.
        let expiring = Some(scope(&manager, soon));
        assert_eq!(check_grant(expiring, scope(&lesser, soon)), Ok(()));
        assert_eq!(check_grant(expiring, scope(&lesser, Some(now))), Ok(()));
        assert_eq!(check_grant(expiring, scope(&lesser, None)), Err(GrantError::OutlivesGranter));
        assert_eq!(check_grant(expiring, scope(&manager, later)), Err(GrantError::OutlivesGranter));
        assert_eq!(check_grant(expiring, scope(&wider, soon)), Err(GrantError::BeyondOwnRights));
    }

    #[test]
    fn a_change_that_gives_nothing_new_is_allowed_and_any_other_obeys_the_grant_rules() {
        let now = chrono::Utc::now();
        let expiring = KeyScope { grant: &grant(&["keys.manage", "recognize"], &["a-*"]), expires_at: Some(now) };
        let old = grant(&["recognize", "register"], &["a-1"]);
        // Renaming or narrowing a key that never expires: nothing is handed out.
        assert_eq!(check_change(Some(expiring), &old, KeyScope { grant: &old, expires_at: None }), Ok(()));
        let narrower = grant(&["recognize"], &["a-1"]);
        assert_eq!(check_change(Some(expiring), &old, KeyScope { grant: &narrower, expires_at: None }), Ok(()));
        // Handing out keys.manage to it, even within the caller's rights, would outlive the caller.
        let manage = grant(&["keys.manage"], &["a-1"]);
        assert_eq!(
            check_change(Some(expiring), &old, KeyScope { grant: &manage, expires_at: None }),
            Err(GrantError::OutlivesGranter)
        );
        // And beyond the caller's rights, never.
        let wider = grant(&["recognize"], &["b-1"]);
        let forever = KeyScope { grant: expiring.grant, expires_at: None };
        assert_eq!(
            check_change(Some(forever), &old, KeyScope { grant: &wider, expires_at: None }),
            Err(GrantError::BeyondOwnRights)
        );
    }
}

//! What one caller may see: everything (open mode, the master key), or the
//! collections an API key's patterns reach plus the jobs the key submitted.
//! Listings and counts filter in SQL, so a page is never short of what the caller can see.

use facerec_core::CollectionPattern;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// The collection a job acts on, from its parameters (register, recognize, verify against a subject).
pub(crate) const JOB_COLLECTION: &str = "coalesce(params->>'collection', params->'target'->>'collection')";

/// Whose records a query may return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Visibility {
    /// Every record.
    #[default]
    All,
    /// An API key's: collections matching its patterns, and jobs it submitted.
    Key { id: Uuid, collections: Vec<CollectionPattern> },
}

impl Visibility {
    fn parts(&self) -> (bool, Vec<String>, Vec<String>) {
        match self {
            Visibility::All => (true, Vec::new(), Vec::new()),
            Visibility::Key { collections, .. } => (
                false,
                collections.iter().filter_map(|p| p.exact().map(str::to_owned)).collect(),
                collections.iter().filter_map(|p| p.prefix().map(str::to_owned)).collect(),
            ),
        }
    }

    fn key_id(&self) -> Option<Uuid> {
        match self {
            Visibility::All => None,
            Visibility::Key { id, .. } => Some(*id),
        }
    }

    /// `AND (<expr> is a collection the caller reaches)`.
    pub(crate) fn push_collection(&self, q: &mut QueryBuilder<Postgres>, expr: &str) {
        self.push_reach(q, expr, false);
    }

    /// `AND (the job is on a collection the caller reaches, or the caller submitted it)`.
    pub(crate) fn push_job(&self, q: &mut QueryBuilder<Postgres>) {
        self.push_reach(q, JOB_COLLECTION, true);
    }

    fn push_reach(&self, q: &mut QueryBuilder<Postgres>, expr: &str, or_submitted: bool) {
        let (all, exact, prefixes) = self.parts();
        q.push(" AND (").push_bind(all);
        if or_submitted {
            q.push(" OR api_key_id = ").push_bind(self.key_id());
        }
        q.push(format!(" OR {expr} = ANY(")).push_bind(exact);
        q.push(") OR EXISTS (SELECT 1 FROM unnest(").push_bind(prefixes);
        q.push(format!("::text[]) AS p(stem) WHERE starts_with({expr}, p.stem)))"));
    }
}

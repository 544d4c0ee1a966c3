//! Query parameters: one the route does not take is refused
//! (`unknown_field`), a known one is parsed or refused with the route's error
//! code for it. Shared by every route that reads a query.

use std::collections::HashMap;

use crate::{ApiError, ErrorCode};

/// `400 unknown_field` for a query parameter the route does not take (a
/// misspelt `stauts=` would otherwise list everything): the answer names it
/// and every parameter the route takes.
pub(crate) fn known_params(query: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    // The first by name, so that the same query always gets the same answer.
    let unknown = query.keys().map(String::as_str).filter(|k| !allowed.contains(k)).min();
    match unknown {
        None => Ok(()),
        Some(name) => Err(ApiError::unknown_field("query has an unknown parameter", name, allowed)),
    }
}

/// The parameter `name`, parsed (`None` when absent); an error with `code` when it does not parse.
pub(crate) fn parse<T>(
    query: &HashMap<String, String>,
    name: &str,
    code: ErrorCode,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|v| {
            parse(v).ok_or_else(|| ApiError::new(code, format!("{name} {v:?} is not valid: {}", code.description())))
        })
        .transpose()
}

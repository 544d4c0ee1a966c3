//! The action each `/v1` route needs: one table, read by the authentication
//! middleware and listed in docs/api.md ("Authentication and API keys").

use axum::http::Method;
use facerec_core::Action;

/// The action `method` on the route `path` (as declared, e.g. `/v1/jobs/{id}`)
/// needs; `None` for a route no API key may use (only the master key).
pub fn action_for(method: &Method, path: &str) -> Option<Action> {
    use Action::*;
    let write = matches!(*method, Method::POST | Method::PATCH | Method::DELETE);
    Some(match (method.as_str(), path) {
        ("POST", "/v1/register") => Register,
        ("POST", "/v1/recognize") => Recognize,
        ("POST", "/v1/verify") => Verify,
        ("POST", "/v1/embed") => Embed,
        ("GET", "/v1/jobs" | "/v1/jobs/{id}" | "/v1/stats") => JobsRead,
        ("POST", "/v1/jobs/{id}/cancel") => JobsCancel,
        ("POST", "/v1/batches" | "/v1/batches/{id}/cancel") => BatchesCreate,
        ("GET", "/v1/batches" | "/v1/batches/{id}" | "/v1/batches/{id}/items") => BatchesRead,
        (
            _,
            "/v1/collections"
            | "/v1/collections/{name}"
            | "/v1/collections/{name}/subjects"
            | "/v1/collections/{name}/subjects/{subject}"
            | "/v1/collections/{name}/faces"
            | "/v1/faces/{id}"
            | "/v1/audit",
        ) => {
            if write {
                GalleryWrite
            } else {
                GalleryRead
            }
        }
        (_, "/v1/keys" | "/v1/keys/{id}") => KeysManage,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    /// A route added without an action would be master-only by accident: every
    /// documented `/v1` operation must have one.
    #[test]
    fn every_documented_route_needs_an_action() {
        let doc = crate::ApiDoc::openapi();
        let mut seen = 0;
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (method, present) in operations {
                if present && path.starts_with("/v1/") {
                    assert!(action_for(&method, path).is_some(), "{method} {path} has no action");
                    seen += 1;
                }
            }
        }
        assert!(seen >= 25, "only {seen} routes documented");
        assert_eq!(action_for(&Method::DELETE, "/v1/faces/{id}"), Some(Action::GalleryWrite));
        assert_eq!(action_for(&Method::GET, "/v1/faces/{id}"), Some(Action::GalleryRead));
        assert_eq!(action_for(&Method::GET, "/v1/unknown"), None);
    }
}

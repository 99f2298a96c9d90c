//! Which APIs a node serves, by its cluster roles, and the answer to a request for an API
//! another role serves: `421 Misdirected Request` naming the role, never a bare 404.

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fimlake_cluster::{Role, Roles};
use fimlake_ingest::ApiError;

/// The role whose nodes serve `path`, for the APIs only some roles serve.
fn served_by(path: &str) -> Option<Role> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/v1/tables") || under("/dataCollectionRules") {
        Some(Role::Ingest)
    } else if under("/v1/workspaces") || under("/workspaces") || path == "/v1/workspace" || path == "/v1/machines" {
        Some(Role::Query)
    } else if ["/v1/alert-rules", "/v1/alerts", "/v1/notifications", "/v1/action-groups"].iter().any(|p| under(p)) {
        Some(Role::Leader)
    } else {
        None
    }
}

/// The fallback of a node's API: 421 for another role's API, else 404.
pub(crate) fn fallback(router: Router, roles: Roles) -> Router {
    router.fallback(move |uri: Uri| elsewhere(roles, uri))
}

async fn elsewhere(roles: Roles, uri: Uri) -> Response {
    match served_by(uri.path()) {
        Some(role) if !roles.has(role) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "WrongRole",
            format!(
                "this node of the cluster serves {roles}; {} is served by the nodes with the {} role (GET /v1/cluster lists them)",
                uri.path(),
                role.name()
            ),
        )
        .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_only_api_is_known_by_its_paths() {
        assert_eq!(served_by("/v1/tables/Heartbeat/records"), Some(Role::Ingest));
        assert_eq!(served_by("/dataCollectionRules/dcr-1/streams/Custom-X"), Some(Role::Ingest));
        assert_eq!(served_by("/v1/workspaces/abc/query"), Some(Role::Query));
        assert_eq!(served_by("/v1/machines"), Some(Role::Query));
        assert_eq!(served_by("/v1/alert-rules/r1"), Some(Role::Leader));
        assert_eq!(served_by("/v1/machines/web1/reenrollment"), None, "the fleet's API is on every node");
        assert_eq!(served_by("/v1/tablesX"), None);
        assert_eq!(served_by("/v1/keys"), None);
    }
}

//! Which role each route needs: the one rule, read from the method and the route's path
//! template (never from a handler), so a route added without thought gets the strictest
//! answer that fits it.
//!
//! - `read`: every `GET`/`HEAD` (task lists, events, figures, workers, the OpenAPI document),
//!   and ending one's own session; except the reads of [`ADMIN_READS`] (the audit log).
//! - `operate`: what a CMS site or an operator does to tasks: create, cancel, retry, delete,
//!   create and cancel batches, and upload an input file.
//! - `admin`: everything else that changes state: workers, settings, schedules, cache,
//!   cleaning.

use crate::model::TokenRole;
use axum::http::Method;

/// The state-changing routes the `operate` role may call, as `(method, path template)`.
const OPERATE: &[(Method, &str)] = &[
    (Method::POST, "/stask/tasks/{id}/cancel"),
    (Method::POST, "/stask/tasks/{id}/retry"),
    (Method::DELETE, "/stask/tasks/{id}"),
    (Method::POST, "/stask/workers/{identifier}/tasks/{action}"),
    (Method::POST, "/stask/uploads"),
    (Method::POST, "/stask/batches"),
    (Method::POST, "/stask/batches/{id}/cancel"),
];

/// The reads only an admin may make, as path templates: who did what is not for every reader.
pub const ADMIN_READS: &[&str] = &["/stask/audit"];

/// The role a request needs, from its method and matched path template.
pub fn required_role(method: &Method, path: &str) -> TokenRole {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        if ADMIN_READS.contains(&path) {
            return TokenRole::Admin;
        }
        return TokenRole::Read;
    }
    // Anyone who may log in may log out.
    if *method == Method::POST && path == "/stask/logout" {
        return TokenRole::Read;
    }
    if OPERATE.iter().any(|(m, p)| m == method && *p == path) {
        return TokenRole::Operate;
    }
    TokenRole::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the OpenAPI document gets the role its kind calls for; the list of
    /// operate routes names only routes that exist (a renamed route would silently need admin).
    #[test]
    fn every_route_of_the_document_has_the_role_its_kind_needs() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let mut operate_seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let role = required_role(&m, path);
                let expected = if ADMIN_READS.contains(&path.as_str()) {
                    TokenRole::Admin
                } else if m == Method::GET || path == "/stask/logout" {
                    TokenRole::Read
                } else if path.starts_with("/stask/tasks")
                    || path.starts_with("/stask/batches")
                    || path == "/stask/uploads"
                    || path.ends_with("/tasks/{action}")
                {
                    // Cleaning many tasks at once is an admin's job.
                    if path == "/stask/tasks/clean" {
                        TokenRole::Admin
                    } else {
                        TokenRole::Operate
                    }
                } else {
                    TokenRole::Admin
                };
                assert_eq!(role, expected, "{method} {path}");
                operate_seen += usize::from(role == TokenRole::Operate);
            }
        }
        assert_eq!(operate_seen, OPERATE.len(), "every operate route exists");
    }
}

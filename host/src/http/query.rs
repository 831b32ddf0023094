//! Query parameters: one rule for all of them.
//!
//! Numeric and boolean parameters are read as text ([`Param`]) and checked here, so a bad value
//! is answered 422 with the parameter's name and what it accepts
//! (`per_page must be a whole number between 1 and 500, got '0'`), never clamped in silence
//! and never serde's anonymous "Failed to deserialize query string". An empty value
//! (`?page=`) is the same as no value: the default. Each range is declared once, as an
//! [`IntParam`], and the OpenAPI document's `minimum`/`maximum` must agree with it (a unit test
//! in this module checks every one).

use super::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use serde::Deserialize;

/// A query parameter's raw text. Deserializing it never fails, so the check that follows can
/// name the parameter in its error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Param(String);

impl Param {
    /// The text, `None` when empty.
    fn text(raw: &Option<Param>) -> Option<&str> {
        raw.as_ref().map(|p| p.0.as_str()).filter(|s| !s.is_empty())
    }
}

/// A whole-number query parameter: its name, its range and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntParam {
    /// The parameter's name in the query string.
    pub name: &'static str,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
    /// The value when the parameter is absent or empty.
    pub default: i64,
}

impl IntParam {
    /// The value of `raw`: the default when absent or empty, else a whole number within the
    /// range, or 422 naming the parameter and its range.
    pub fn read(&self, raw: &Option<Param>) -> Result<i64, ApiError> {
        let Some(text) = Param::text(raw) else {
            return Ok(self.default);
        };
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|v| (self.min..=self.max).contains(v))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "{} must be a whole number between {} and {}, got '{text}'",
                    self.name, self.min, self.max
                ))
            })
    }

    /// [`IntParam::read`] for a parameter without a default: `None` when absent or empty.
    pub fn read_opt(&self, raw: &Option<Param>) -> Result<Option<i64>, ApiError> {
        match Param::text(raw) {
            None => Ok(None),
            Some(_) => self.read(raw).map(Some),
        }
    }

    /// [`IntParam::read`] for a parameter whose range fits in `u32`.
    pub fn read_u32(&self, raw: &Option<Param>) -> Result<u32, ApiError> {
        let v = self.read(raw)?;
        u32::try_from(v).map_err(|_| ApiError::internal(format!("{} out of u32: {v}", self.name)))
    }
}

/// A boolean query parameter: `true` or `false` (any case), `None` when absent or empty, else
/// 422 naming it.
pub fn boolean(name: &str, raw: &Option<Param>) -> Result<Option<bool>, ApiError> {
    let Some(text) = Param::text(raw) else {
        return Ok(None);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(ApiError::invalid(format!(
            "{name} must be true or false, got '{text}'"
        ))),
    }
}

/// The query string parsed into `T`, whose checked parameters are [`Param`]s: what is left to
/// fail is the query string itself (a repeated parameter), answered 400 with serde's reason,
/// which names the parameter.
pub fn parse<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {}", e.body_text())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: IntParam = IntParam {
        name: "per_page",
        min: 1,
        max: 500,
        default: 50,
    };

    fn raw(s: &str) -> Option<Param> {
        Some(Param(s.into()))
    }

    #[test]
    fn whole_numbers_inside_the_range_only_and_errors_name_the_parameter() {
        assert_eq!(P.read(&None).unwrap(), 50);
        assert_eq!(P.read(&raw("")).unwrap(), 50, "empty is the default");
        assert_eq!(P.read(&raw("1")).unwrap(), 1);
        assert_eq!(P.read(&raw("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "1.5", "x", "99999999999999999999", "1e3"] {
            let e = P.read(&raw(bad)).unwrap_err();
            assert_eq!(e.status.as_u16(), 422, "{bad}");
            assert_eq!(
                e.message,
                format!("per_page must be a whole number between 1 and 500, got '{bad}'")
            );
        }
    }

    #[test]
    fn an_optional_whole_number_is_none_when_absent_and_checked_when_given() {
        assert_eq!(P.read_opt(&None).unwrap(), None);
        assert_eq!(P.read_opt(&raw("")).unwrap(), None, "empty is absent");
        assert_eq!(P.read_opt(&raw("7")).unwrap(), Some(7));
        let e = P.read_opt(&raw("x")).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(
            e.message,
            "per_page must be a whole number between 1 and 500, got 'x'"
        );
    }

    #[test]
    fn booleans_are_true_or_false_in_any_case() {
        assert_eq!(boolean("active", &raw("TRUE")).unwrap(), Some(true));
        assert_eq!(boolean("active", &raw("false")).unwrap(), Some(false));
        assert_eq!(boolean("active", &None).unwrap(), None);
        let e = boolean("active", &raw("yes")).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.message, "active must be true or false, got 'yes'");
    }

    /// Every declared range is the one the OpenAPI document states (CI fuzzes the API from
    /// the document, so a disagreement would be a false finding or a hidden one).
    #[test]
    fn the_openapi_document_declares_every_range_as_checked() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let declared = super::super::int_params();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] != "query" {
                        continue;
                    }
                    let schema = &param["schema"];
                    let is_int = schema["type"] == "integer"
                        || schema["type"]
                            .as_array()
                            .is_some_and(|t| t.iter().any(|t| t == "integer"));
                    if !is_int {
                        continue;
                    }
                    let name = param["name"].as_str().unwrap();
                    let p = declared
                        .iter()
                        .find(|p| p.name == name)
                        .unwrap_or_else(|| panic!("{path}: {name} has no IntParam"));
                    assert_eq!(schema["minimum"], p.min, "{path} {name}: {schema}");
                    assert_eq!(schema["maximum"], p.max, "{path} {name}: {schema}");
                    seen += 1;
                }
            }
        }
        assert!(seen >= 6, "only {seen} integer query parameters found");
    }
}

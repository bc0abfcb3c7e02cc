//! [`parse_spec`]: a policy's settings from JSON, with every refusal naming its field.

use serde_json::Value;

use super::{PolicySpec, ip::parse_net, throttle::ThrottleUnit};
use crate::model::ValidationError;

/// Parses a policy's settings from a JSON object `{"type": ..., ...the kind's fields}` (the
/// admin API's body without `name`), then validates them.
///
/// Every refusal names the field: `type`, `unit`, `api_default`, `special_apps[0].limit`,
/// `rules[2].cidr`, ... Limits that are zero, negative, fractional or too large, unknown
/// units and invalid CIDRs are caught here before the typed parse (whose own messages could
/// not name them).
///
/// # Errors
///
/// [`ValidationError::InvalidField`] naming the field.
///
/// # Examples
///
/// ```
/// use stagegate::policy::parse_spec;
/// let ok = parse_spec(serde_json::json!({"type": "THROTTLING", "unit": "MINUTE", "api_default": 60})).unwrap();
/// assert_eq!(ok.policy_type().as_str(), "THROTTLING");
/// let e = parse_spec(serde_json::json!({"type": "THROTTLING", "unit": "MINUTE", "api_default": -1})).unwrap_err();
/// assert!(e.to_string().contains("api_default"));
/// let e = parse_spec(serde_json::json!({"type": "IP_CONTROL", "mode": "ALLOW", "rules": [{"cidr": "10.0.0.0/99"}]})).unwrap_err();
/// assert!(e.to_string().contains("rules[0].cidr"));
/// ```
pub fn parse_spec(v: Value) -> Result<PolicySpec, ValidationError> {
    let Value::Object(m) = &v else {
        return Err(ValidationError::field("policy", "expected a JSON object"));
    };
    let ty = match m.get("type") {
        Some(Value::String(t)) => t.clone(),
        None => {
            return Err(ValidationError::field(
                "type",
                "is required: THROTTLING, IP_CONTROL, CORS or BACKEND_SIGNATURE",
            ));
        }
        Some(_) => return Err(ValidationError::field("type", "must be a string")),
    };
    match ty.as_str() {
        "THROTTLING" => {
            match m.get("unit") {
                Some(Value::String(u)) => {
                    ThrottleUnit::parse(u)?;
                }
                None => return Err(ValidationError::field("unit", "is required")),
                Some(_) => return Err(ValidationError::field("unit", "must be a string")),
            }
            match m.get("api_default") {
                None => return Err(ValidationError::field("api_default", "is required")),
                Some(x) => limit("api_default", x)?,
            }
            if let Some(x) = m.get("app_default").filter(|x| !x.is_null()) {
                limit("app_default", x)?;
            }
            if let Some(list) = m.get("special_apps") {
                let Value::Array(list) = list else {
                    return Err(ValidationError::field("special_apps", "must be an array"));
                };
                for (i, s) in list.iter().enumerate() {
                    match s.get("limit") {
                        None => {
                            return Err(ValidationError::field(
                                format!("special_apps[{i}].limit"),
                                "is required",
                            ));
                        }
                        Some(x) => limit(&format!("special_apps[{i}].limit"), x)?,
                    }
                    if !s.get("app_id").is_some_and(Value::is_string) {
                        return Err(ValidationError::field(
                            format!("special_apps[{i}].app_id"),
                            "is required (a string)",
                        ));
                    }
                }
            }
        }
        "IP_CONTROL" => {
            if let Some(Value::Array(rules)) = m.get("rules") {
                for (i, r) in rules.iter().enumerate() {
                    match r.get("cidr") {
                        Some(Value::String(c)) => {
                            parse_net(&format!("rules[{i}].cidr"), c)?;
                        }
                        _ => {
                            return Err(ValidationError::field(
                                format!("rules[{i}].cidr"),
                                "is required (a string)",
                            ));
                        }
                    }
                }
            }
        }
        "CORS" | "BACKEND_SIGNATURE" => {}
        other => {
            return Err(ValidationError::field(
                "type",
                format!(
                    "unknown type `{}`: expected THROTTLING, IP_CONTROL, CORS or BACKEND_SIGNATURE",
                    crate::model::id::truncate(other)
                ),
            ));
        }
    }
    let spec: PolicySpec = serde_json::from_value(v)
        .map_err(|e| ValidationError::field(ty.to_ascii_lowercase() + " policy", e.to_string()))?;
    spec.validate()?;
    Ok(spec)
}

fn limit(field: &str, v: &Value) -> Result<(), ValidationError> {
    match v.as_i64() {
        Some(n) => super::throttle::check_limit(field, n),
        None => Err(ValidationError::field(
            field,
            format!(
                "must be a whole number from 1 to {}",
                super::throttle::MAX_LIMIT
            ),
        )),
    }
}

//! The CloudAPI wire format: form/query decoding with the SDKs' quirks (`+` is a space, Python
//! booleans arrive as `True`/`False`, complex fields are JSON strings inside one parameter) and
//! PascalCase JSON responses.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::error::CloudApiError;
use crate::model::Stage;

/// The content type of every response (the SDKs parse JSON bodies of this type).
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body): `+` is a
/// space, `%XX` escapes are decoded; bytes that are not UTF-8 are refused.
pub(crate) fn decode_form(s: &str) -> Result<Vec<(String, String)>, CloudApiError> {
    let mut out = Vec::new();
    for part in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((decode_component(k)?, decode_component(v)?));
    }
    Ok(out)
}

fn decode_component(s: &str) -> Result<String, CloudApiError> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| CloudApiError::invalid("Parameter", "is not valid UTF-8 once decoded"))
}

/// The parameters of one call: the query and the form body merged, decoded.
#[derive(Debug, Default)]
pub(crate) struct Params {
    map: BTreeMap<String, String>,
}

/// The most parameters one call may carry.
const MAX_PARAMS: usize = 512;

impl Params {
    /// Merges `query` and `form`. A name given twice is refused (the SDKs never do it, and two
    /// values would make the signature ambiguous).
    pub(crate) fn merge(
        query: &[(String, String)],
        form: &[(String, String)],
    ) -> Result<Self, CloudApiError> {
        if query.len() + form.len() > MAX_PARAMS {
            return Err(CloudApiError::invalid(
                "Parameter",
                format!("at most {MAX_PARAMS} parameters"),
            ));
        }
        let mut map = BTreeMap::new();
        for (k, v) in query.iter().chain(form) {
            if map.insert(k.clone(), v.clone()).is_some() {
                return Err(CloudApiError::invalid(
                    short(k),
                    "is given more than once (query and body together)",
                ));
            }
        }
        Ok(Self { map })
    }

    /// A parameter's value, if given (an empty value counts as given).
    pub(crate) fn opt(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A parameter's value, `MissingParameter` when absent or empty.
    pub(crate) fn req(&self, name: &str) -> Result<&str, CloudApiError> {
        match self.opt(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(CloudApiError::MissingParameter(name.to_owned())),
        }
    }

    /// A boolean: `true`/`false` in any case (Python sends `True`/`False`).
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, CloudApiError> {
        self.opt(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// An integer in `min..=max`.
    pub(crate) fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, CloudApiError> {
        self.opt(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        CloudApiError::invalid(
                            name,
                            format!("must be an integer from {min} to {max}"),
                        )
                    })
            })
            .transpose()
    }

    /// A JSON document inside one parameter.
    pub(crate) fn json(&self, name: &str) -> Result<Option<Value>, CloudApiError> {
        self.opt(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                serde_json::from_str(v)
                    .map_err(|e| CloudApiError::invalid(name, format!("is not valid JSON: {e}")))
            })
            .transpose()
    }

    /// A stage name (`RELEASE`, `PRE`, `TEST`, or a custom one).
    pub(crate) fn stage(&self, name: &str) -> Result<Option<Stage>, CloudApiError> {
        self.opt(name)
            .filter(|v| !v.is_empty())
            .map(|v| Stage::parse(v).map_err(|e| CloudApiError::invalid(name, e.to_string())))
            .transpose()
    }

    /// A required stage name.
    pub(crate) fn req_stage(&self, name: &str) -> Result<Stage, CloudApiError> {
        self.stage(name)?
            .ok_or_else(|| CloudApiError::MissingParameter(name.to_owned()))
    }

    /// A comma-separated list (`AppIds`, `ApiIds`), at most `max` entries.
    pub(crate) fn list(&self, name: &str, max: usize) -> Result<Vec<&str>, CloudApiError> {
        let v: Vec<&str> = self
            .req(name)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if v.is_empty() || v.len() > max {
            return Err(CloudApiError::invalid(
                name,
                format!("must list 1 to {max} ids, comma-separated"),
            ));
        }
        Ok(v)
    }

    /// Refuses a parameter that changes behaviour stagegate cannot honour, unless it has the
    /// value that means "off".
    pub(crate) fn refuse_unless(
        &self,
        name: &str,
        allowed: &[&str],
        why: &str,
    ) -> Result<(), CloudApiError> {
        match self.opt(name) {
            Some(v) if !v.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) => {
                Err(CloudApiError::unsupported(name, why))
            }
            _ => Ok(()),
        }
    }
}

/// Parses a boolean case-insensitively.
pub(crate) fn parse_bool(name: &str, v: &str) -> Result<bool, CloudApiError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(CloudApiError::invalid(name, "must be true or false"))
    }
}

/// A name shortened for an error message.
pub(crate) fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A JSON object's field looked up case-insensitively on the first letter (`ServiceAddress`
/// and `serviceAddress` are both accepted, as Alibaba's service does).
pub(crate) fn field<'v>(obj: &'v serde_json::Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        let mut c = name.chars();
        let first = c.next()?;
        obj.get(&format!("{}{}", first.to_ascii_lowercase(), c.as_str()))
    })
}

/// A string field of a JSON object (numbers are accepted as their text).
pub(crate) fn str_field(
    obj: &serde_json::Map<String, Value>,
    parent: &str,
    name: &str,
) -> Result<Option<String>, CloudApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(CloudApiError::invalid(
            format!("{parent}.{name}"),
            "must be a string",
        )),
    }
}

/// The JSON response of a successful call: `RequestId` plus the action's fields.
pub(crate) fn ok_response(request_id: &str, mut body: Value) -> Response<Full<Bytes>> {
    if let Value::Object(m) = &mut body {
        m.insert("RequestId".into(), Value::String(request_id.to_owned()));
    }
    respond(StatusCode::OK, request_id, &body)
}

/// The JSON response of a refused call: `{"RequestId","Code","Message","HostId"}`.
pub(crate) fn error_response(
    request_id: &str,
    host: &str,
    e: &CloudApiError,
) -> Response<Full<Bytes>> {
    let body = json!({
        "RequestId": request_id,
        "Code": e.code(),
        "Message": e.to_string(),
        "HostId": host,
    });
    respond(e.status(), request_id, &body)
}

fn respond(status: StatusCode, request_id: &str, body: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    res
}

/// A timestamp as CloudAPI writes it: `2016-08-01T06:53:02Z`.
pub(crate) fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A page of `items` by `PageNumber` (from 1) and `PageSize` (1–100, default 10), with the
/// paging fields every Describe*List answer carries.
pub(crate) fn page<T>(params: &Params, items: Vec<T>) -> Result<(Vec<T>, Value), CloudApiError> {
    let number = params.int("PageNumber", 1, 1_000_000)?.unwrap_or(1);
    let size = params.int("PageSize", 1, 100)?.unwrap_or(10);
    let total = items.len();
    let skip = usize::try_from((number - 1) * size).unwrap_or(usize::MAX);
    let take = usize::try_from(size).unwrap_or(10);
    let items = items.into_iter().skip(skip).take(take).collect();
    Ok((
        items,
        json!({"PageNumber": number, "PageSize": size, "TotalCount": total}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_a_space_and_escapes_decode() {
        let v = decode_form("Description=first+%2B+backend%2F%C3%BC&Empty=&Bare").unwrap();
        assert_eq!(v[0], ("Description".into(), "first + backend/ü".into()));
        assert_eq!(v[1], ("Empty".into(), String::new()));
        assert_eq!(v[2], ("Bare".into(), String::new()));
        assert!(decode_form("A=%FF").is_err());
    }

    #[test]
    fn python_booleans_parse_and_duplicates_are_refused() {
        let p = Params::merge(
            &[("ForceNonceCheck".into(), "True".into())],
            &[("X".into(), "FALSE".into())],
        )
        .unwrap();
        assert_eq!(p.bool("ForceNonceCheck").unwrap(), Some(true));
        assert_eq!(p.bool("X").unwrap(), Some(false));
        let bad = Params::merge(&[("B".into(), "yes".into())], &[]).unwrap();
        assert!(bad.bool("B").unwrap_err().to_string().contains("`B`"));
        let e = Params::merge(&[("A".into(), "1".into())], &[("A".into(), "2".into())]);
        assert!(e.unwrap_err().to_string().contains("`A`"));
    }

    #[test]
    fn json_fields_are_read_with_either_first_letter_case() {
        let v: Value = serde_json::from_str(r#"{"serviceAddress":"http://h","Port":80}"#).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(
            str_field(o, "C", "ServiceAddress").unwrap().as_deref(),
            Some("http://h")
        );
        assert_eq!(str_field(o, "C", "Port").unwrap().as_deref(), Some("80"));
    }
}

//! The rules a declared parameter's value must satisfy.

use regex::Regex;

use crate::model::{ParamType, RequestParameter};

use super::MappingError;

/// Longest enum list or pattern quoted in an error message.
const MAX_QUOTED: usize = 120;

fn invalid(p: &RequestParameter, rule: String) -> MappingError {
    MappingError::InvalidParameter {
        name: p.name.clone(),
        rule,
    }
}

fn quote(s: &str) -> String {
    if s.len() <= MAX_QUOTED {
        return s.to_owned();
    }
    let mut end = MAX_QUOTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Checks `value` against every rule of `p`, in order: type, length, range, enum, pattern.
///
/// `regex` is the precompiled, anchored pattern of `p` (if it has one).
pub(crate) fn check_value(
    p: &RequestParameter,
    regex: Option<&Regex>,
    value: &str,
) -> Result<(), MappingError> {
    let number = parse_type(p, value)?;
    if p.min_length.is_some() || p.max_length.is_some() {
        let len = value.chars().count();
        if let Some(min) = p.min_length
            && len < min
        {
            return Err(invalid(
                p,
                format!("must be at least {min} characters long"),
            ));
        }
        if let Some(max) = p.max_length
            && len > max
        {
            return Err(invalid(p, format!("must be at most {max} characters long")));
        }
    }
    if let Some(n) = number {
        if let Some(min) = p.min_value
            && n < min
        {
            return Err(invalid(p, format!("must be at least {min}")));
        }
        if let Some(max) = p.max_value
            && n > max
        {
            return Err(invalid(p, format!("must be at most {max}")));
        }
    }
    if !p.enum_values.is_empty() && !p.enum_values.iter().any(|e| e == value) {
        return Err(invalid(
            p,
            format!("must be one of {}", quote(&p.enum_values.join(", "))),
        ));
    }
    if let Some(r) = regex
        && !r.is_match(value)
    {
        let pattern = p.regex.as_deref().unwrap_or_default();
        return Err(invalid(p, format!("must match `{}`", quote(pattern))));
    }
    Ok(())
}

/// Parses `value` as the parameter's type; numbers come back as `f64` for the range check.
fn parse_type(p: &RequestParameter, value: &str) -> Result<Option<f64>, MappingError> {
    match p.param_type {
        ParamType::String => Ok(None),
        ParamType::Int => value
            .parse::<i32>()
            .map(|n| Some(f64::from(n)))
            .map_err(|_| invalid(p, "must be a 32-bit integer".to_owned())),
        #[allow(clippy::cast_precision_loss)] // range checks on huge longs may round: fine
        ParamType::Long => value
            .parse::<i64>()
            .map(|n| Some(n as f64))
            .map_err(|_| invalid(p, "must be a 64-bit integer".to_owned())),
        ParamType::Float | ParamType::Double => match value.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(invalid(p, "must be a number".to_owned())),
        },
        ParamType::Boolean => {
            if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                Ok(None)
            } else {
                Err(invalid(p, "must be `true` or `false`".to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(t: ParamType) -> RequestParameter {
        RequestParameter {
            name: "p".into(),
            param_type: t,
            ..RequestParameter::default()
        }
    }

    fn rule(p: &RequestParameter, re: Option<&Regex>, v: &str) -> Option<String> {
        match check_value(p, re, v) {
            Ok(()) => None,
            Err(MappingError::InvalidParameter { rule, .. }) => Some(rule),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn types() {
        let p = param(ParamType::Int);
        assert_eq!(rule(&p, None, "42"), None);
        assert_eq!(rule(&p, None, "-7"), None);
        assert_eq!(
            rule(&p, None, "2147483648").as_deref(),
            Some("must be a 32-bit integer")
        );
        assert!(rule(&p, None, "1.5").is_some());
        let p = param(ParamType::Long);
        assert_eq!(rule(&p, None, "2147483648"), None);
        assert_eq!(
            rule(&p, None, "x").as_deref(),
            Some("must be a 64-bit integer")
        );
        for t in [ParamType::Float, ParamType::Double] {
            let p = param(t);
            assert_eq!(rule(&p, None, "1.5e3"), None);
            for bad in ["NaN", "inf", "-infinity", "1e999", "", "abc"] {
                assert_eq!(
                    rule(&p, None, bad).as_deref(),
                    Some("must be a number"),
                    "{bad}"
                );
            }
        }
        let p = param(ParamType::Boolean);
        for ok in ["true", "FALSE", "True"] {
            assert_eq!(rule(&p, None, ok), None);
        }
        assert_eq!(
            rule(&p, None, "yes").as_deref(),
            Some("must be `true` or `false`")
        );
    }

    #[test]
    fn lengths_count_characters() {
        let mut p = param(ParamType::String);
        p.min_length = Some(2);
        p.max_length = Some(3);
        assert_eq!(
            rule(&p, None, "a").as_deref(),
            Some("must be at least 2 characters long")
        );
        assert_eq!(rule(&p, None, "äöü"), None);
        assert_eq!(
            rule(&p, None, "abcd").as_deref(),
            Some("must be at most 3 characters long")
        );
    }

    #[test]
    fn ranges() {
        let mut p = param(ParamType::Int);
        p.min_value = Some(0.0);
        p.max_value = Some(150.0);
        assert_eq!(
            rule(&p, None, "151").as_deref(),
            Some("must be at most 150")
        );
        assert_eq!(rule(&p, None, "-1").as_deref(), Some("must be at least 0"));
        assert_eq!(rule(&p, None, "150"), None);
        let mut p = param(ParamType::Double);
        p.max_value = Some(1.5);
        assert_eq!(
            rule(&p, None, "1.6").as_deref(),
            Some("must be at most 1.5")
        );
    }

    #[test]
    fn enums_and_patterns() {
        let mut p = param(ParamType::String);
        p.enum_values = vec!["boy".into(), "girl".into()];
        assert_eq!(rule(&p, None, "girl"), None);
        assert_eq!(
            rule(&p, None, "other").as_deref(),
            Some("must be one of boy, girl")
        );
        let mut p = param(ParamType::String);
        p.regex = Some("[a-z]+".into());
        let re = Regex::new("^(?:[a-z]+)$").unwrap();
        assert_eq!(rule(&p, Some(&re), "abc"), None);
        assert_eq!(
            rule(&p, Some(&re), "abc1").as_deref(),
            Some("must match `[a-z]+`")
        );
        p.regex = Some("x".repeat(300));
        let long = rule(&p, Some(&re), "1").unwrap();
        assert!(long.len() < 200 && long.ends_with("...`"));
    }
}

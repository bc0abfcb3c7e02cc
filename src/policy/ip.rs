//! IP access control: `ALLOW` or `REFUSE` lists of IPv4 and IPv6 CIDRs.
//!
//! - `ALLOW`: a request is admitted when its client address is in a rule without an app, or
//!   in a rule for the app it authenticated as (an app's rules let only that app in from
//!   those addresses). A request without a known client address is refused.
//! - `REFUSE`: a request whose client address is in any rule is refused; rules name no app.
//!
//! The client address is the one the request context holds (the socket peer, never a
//! header a client can write). An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is matched as
//! the IPv4 address it carries. Refusal answers 403 `A403IP`.
//!
//! # Examples
//!
//! ```
//! use stagegate::policy::{IpControl, IpMode, IpRule};
//! let c = IpControl { mode: IpMode::Refuse, rules: vec![IpRule::parse("192.0.2.0/24", None).unwrap()] };
//! assert!(c.validate().is_ok());
//! assert!(!c.admits(Some("192.0.2.7".parse().unwrap()), None));
//! assert!(c.admits(Some("198.51.100.1".parse().unwrap()), None));
//! ```

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{AppId, ValidationError};

/// The most rules one policy holds (the original gateway's 100 items of up to 10 CIDRs).
pub const MAX_RULES: usize = 1000;

/// Whether the rules list who may call or who may not.
///
/// # Examples
///
/// ```
/// use stagegate::policy::IpMode;
/// assert_eq!(serde_json::to_string(&IpMode::Allow).unwrap(), "\"ALLOW\"");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IpMode {
    /// Only the listed addresses may call.
    Allow,
    /// The listed addresses may not call.
    Refuse,
}

/// One CIDR, optionally for one app only (`ALLOW` only).
///
/// A bare address (`192.0.2.1`, `2001:db8::1`) is the network of that one address.
///
/// # Examples
///
/// ```
/// use stagegate::policy::IpRule;
/// assert_eq!(IpRule::parse("10.1.2.3", None).unwrap().cidr.to_string(), "10.1.2.3/32");
/// assert!(IpRule::parse("10.0.0.0/33", None).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    /// The network.
    #[serde(serialize_with = "ser_net", deserialize_with = "de_net")]
    pub cidr: IpNet,
    /// The app the rule is for (`ALLOW` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<AppId>,
}

fn ser_net<S: Serializer>(n: &IpNet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

fn de_net<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    crate::model::id::deserialize_parsed(d, "a CIDR", |s| parse_net("cidr", s))
}

/// Parses a CIDR or a bare address; the network is normalized (`10.1.2.3/8` is `10.0.0.0/8`).
pub(crate) fn parse_net(field: &str, s: &str) -> Result<IpNet, ValidationError> {
    let t = s.trim();
    let net = t
        .parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ValidationError::field(
                field,
                format!(
                    "`{}` is not an IPv4 or IPv6 CIDR (like 192.0.2.0/24 or 2001:db8::/32)",
                    crate::model::id::truncate(s)
                ),
            )
        })?;
    Ok(net.trunc())
}

impl IpRule {
    /// A rule from text.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] naming `cidr`.
    pub fn parse(cidr: &str, app_id: Option<AppId>) -> Result<Self, ValidationError> {
        Ok(Self {
            cidr: parse_net("cidr", cidr)?,
            app_id,
        })
    }
}

/// An IP access-control policy's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpControl {
    /// `ALLOW` or `REFUSE`.
    pub mode: IpMode,
    /// The rules, at least one.
    pub rules: Vec<IpRule>,
}

impl IpControl {
    /// Checks there are rules, not too many, and that only `ALLOW` rules name an app.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidField`] naming the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.rules.is_empty() {
            return Err(ValidationError::field(
                "rules",
                "at least one rule is needed",
            ));
        }
        if self.rules.len() > MAX_RULES {
            return Err(ValidationError::field(
                "rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        if self.mode == IpMode::Refuse
            && let Some(i) = self.rules.iter().position(|r| r.app_id.is_some())
        {
            return Err(ValidationError::field(
                format!("rules[{i}].app_id"),
                "only ALLOW rules may name an app",
            ));
        }
        Ok(())
    }

    /// Whether a request from `client` (authenticated as `app`) may call.
    #[must_use]
    pub fn admits(&self, client: Option<IpAddr>, app: Option<&AppId>) -> bool {
        let Some(ip) = client.map(canonical) else {
            return self.mode == IpMode::Refuse;
        };
        let hit = self.rules.iter().any(|r| {
            r.cidr.contains(&ip)
                && match (&r.app_id, app) {
                    (None, _) => true,
                    (Some(only), Some(app)) => only == app,
                    (Some(_), None) => false,
                }
        });
        match self.mode {
            IpMode::Allow => hit,
            IpMode::Refuse => !hit,
        }
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl fmt::Display for IpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "ALLOW",
            Self::Refuse => "REFUSE",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn allow_with_app_rules() {
        let app = AppId::parse("42").unwrap();
        let other = AppId::parse("43").unwrap();
        let c = IpControl {
            mode: IpMode::Allow,
            rules: vec![
                IpRule::parse("10.0.0.0/8", None).unwrap(),
                IpRule::parse("2001:db8::/32", None).unwrap(),
                IpRule::parse("203.0.113.5", Some(app.clone())).unwrap(),
            ],
        };
        assert!(c.validate().is_ok());
        assert!(c.admits(ip("10.9.8.7"), None));
        assert!(c.admits(ip("::ffff:10.9.8.7"), None));
        assert!(c.admits(ip("2001:db8:1::1"), Some(&other)));
        assert!(!c.admits(ip("2001:db9::1"), None));
        assert!(c.admits(ip("203.0.113.5"), Some(&app)));
        assert!(!c.admits(ip("203.0.113.5"), Some(&other)));
        assert!(!c.admits(ip("203.0.113.5"), None));
        assert!(!c.admits(None, Some(&app)));
    }

    #[test]
    fn refuse_names_no_app_and_bad_cidrs_name_the_field() {
        let c = IpControl {
            mode: IpMode::Refuse,
            rules: vec![IpRule::parse("10.0.0.0/8", Some(AppId::parse("1").unwrap())).unwrap()],
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("rules[0].app_id")
        );
        for bad in ["10.0.0.0/33", "300.1.1.1/8", "", "fe80::/129", "abc"] {
            let e = IpRule::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains("cidr"), "{bad}: {e}");
        }
        assert_eq!(
            IpRule::parse("10.1.2.3/8", None).unwrap().cidr.to_string(),
            "10.0.0.0/8"
        );
    }
}

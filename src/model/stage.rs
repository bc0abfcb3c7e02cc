//! Stages (environments): `TEST`, `PRE`, `RELEASE`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;

/// An environment an API is published to and a backend service is defined for.
///
/// `TEST`, `PRE` and `RELEASE` are built in (shown to people as Test, Pre and Production).
/// Names parse case-insensitively and are kept upper-case, the wire form. The type holds a name
/// rather than being a closed enum so that custom environments can come later without a break.
///
/// # Examples
///
/// ```
/// use stagegate::model::Stage;
/// let s = Stage::parse("test").unwrap();
/// assert_eq!(s, Stage::TEST);
/// assert_eq!(s.as_str(), "TEST");
/// assert_eq!(Stage::RELEASE.display_name(), "Production");
/// assert!(Stage::parse("STAGING").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stage(Repr);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    Test,
    Pre,
    Release,
    #[allow(dead_code)] // reserved for custom environments
    Custom(Arc<str>),
}

impl Stage {
    /// The test environment.
    pub const TEST: Self = Self(Repr::Test);
    /// The pre-release (staging) environment.
    pub const PRE: Self = Self(Repr::Pre);
    /// The production environment.
    pub const RELEASE: Self = Self(Repr::Release);

    /// The built-in stages, in promotion order.
    pub const BUILT_IN: [Self; 3] = [Self::TEST, Self::PRE, Self::RELEASE];

    /// Parses a stage name, case-insensitively.
    ///
    /// # Errors
    ///
    /// [`ValidationError::UnknownStage`] for a name that is not a known stage.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("TEST") {
            Ok(Self::TEST)
        } else if s.eq_ignore_ascii_case("PRE") {
            Ok(Self::PRE)
        } else if s.eq_ignore_ascii_case("RELEASE") {
            Ok(Self::RELEASE)
        } else {
            Err(ValidationError::UnknownStage(super::id::truncate(s)))
        }
    }

    /// The wire name: `TEST`, `PRE` or `RELEASE`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Test => "TEST",
            Repr::Pre => "PRE",
            Repr::Release => "RELEASE",
            Repr::Custom(s) => s,
        }
    }

    /// The name shown to people: Test, Pre, Production.
    #[must_use]
    pub fn display_name(&self) -> &str {
        match &self.0 {
            Repr::Test => "Test",
            Repr::Pre => "Pre",
            Repr::Release => "Production",
            Repr::Custom(s) => s,
        }
    }
}

impl Default for Stage {
    /// `RELEASE`, the stage a request without `X-Ca-Stage` goes to.
    fn default() -> Self {
        Self::RELEASE
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::id::deserialize_parsed(d, "a stage name", Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively() {
        assert_eq!(Stage::parse("Release").unwrap(), Stage::RELEASE);
        assert_eq!(Stage::parse(" pre ").unwrap(), Stage::PRE);
        assert!(Stage::parse("").is_err());
        assert!(Stage::parse("PROD").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let s: Stage = serde_json::from_str("\"test\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"TEST\"");
    }
}

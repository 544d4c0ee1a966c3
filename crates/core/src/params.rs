//! Request parameters, validated once when they enter the system.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("subject must be 1 to 128 characters, got {0}")]
    SubjectLength(usize),
    #[error("subject must not contain control characters")]
    SubjectControl,
    #[error("collection must match [A-Za-z0-9_-]{{1,64}}, got {0:?}")]
    Collection(String),
    #[error("top_k must be an integer from 1 to 100, got {0:?}")]
    TopK(String),
    #[error("threshold must be a number from -1 to 1, got {0:?}")]
    Threshold(String),
    #[error("max_faces must be an integer from 1 to 100, got {0:?}")]
    MaxFaces(String),
    #[error("consent must be 1 to 512 characters without control characters, got {0} characters")]
    Consent(usize),
}

/// A person's external id or name: 1–128 characters (Unicode scalar values), no control characters.
/// Stored and returned exactly as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectName(String);

impl SubjectName {
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        let n = s.chars().count();
        if !(1..=128).contains(&n) || s.trim().is_empty() {
            return Err(ParamError::SubjectLength(n));
        }
        if s.chars().any(char::is_control) {
            return Err(ParamError::SubjectControl);
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A gallery namespace: `[A-Za-z0-9_-]{1,64}`. Recognition only searches one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CollectionName(String);

impl CollectionName {
    pub const DEFAULT: &'static str = "default";

    pub fn parse(s: &str) -> Result<Self, ParamError> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Self(s.to_owned())) } else { Err(ParamError::Collection(s.to_owned())) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CollectionName {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

/// A reference to a person's consent to be registered (a signed form's id, a
/// ticket URL): 1–512 characters, no control characters. Stored as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsentRef(String);

impl ConsentRef {
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        let n = s.chars().count();
        if !(1..=512).contains(&n) || s.trim().is_empty() || s.chars().any(char::is_control) {
            return Err(ParamError::Consent(n));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many matches to return per face: 1–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TopK(u32);

impl TopK {
    pub const DEFAULT: TopK = TopK(5);

    pub fn parse(s: &str) -> Result<Self, ParamError> {
        match s.trim().parse::<u32>() {
            Ok(k) if (1..=100).contains(&k) => Ok(Self(k)),
            _ => Err(ParamError::TopK(s.to_owned())),
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Minimum cosine similarity, in [-1, 1], for a match to count as `best`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Threshold(f32);

impl Threshold {
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        match s.trim().parse::<f32>() {
            Ok(t) => Self::new(t).ok_or_else(|| ParamError::Threshold(s.to_owned())),
            Err(_) => Err(ParamError::Threshold(s.to_owned())),
        }
    }
    pub fn new(t: f32) -> Option<Self> {
        (t.is_finite() && (-1.0..=1.0).contains(&t)).then_some(Self(t))
    }
    pub fn get(self) -> f32 {
        self.0
    }
}

/// How many faces of one photo to process, largest first: 1–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MaxFaces(u32);

impl MaxFaces {
    pub const DEFAULT: MaxFaces = MaxFaces(10);

    pub fn parse(s: &str) -> Result<Self, ParamError> {
        match s.trim().parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => Ok(Self(n)),
            _ => Err(ParamError::MaxFaces(s.to_owned())),
        }
    }
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl Default for MaxFaces {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Archive batches' register jobs get theirs from SQL (`facerec_feed_batches`,
/// latest definition in migration 20), written as serde writes this; the
/// feeding tests (crates/store/tests/store/feeding.rs) compare the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterParams {
    pub subject: SubjectName,
    pub collection: CollectionName,
    /// Required by collections with `require_consent`; stored with the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecognizeParams {
    pub collection: CollectionName,
    pub top_k: TopK,
    pub threshold: Threshold,
    /// Absent in jobs recorded before it existed.
    #[serde(default)]
    pub max_faces: MaxFaces,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedParams {
    #[serde(default)]
    pub max_faces: MaxFaces,
}

/// What a verify job compares its photo's face with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VerifyTarget {
    /// The largest usable face of a second photo (the job's second input).
    Image,
    /// The best-matching face of a subject.
    Subject { collection: CollectionName, subject: SubjectName },
    /// One stored face.
    Face { face_id: uuid::Uuid },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyParams {
    pub target: VerifyTarget,
    pub threshold: Threshold,
}

/// What a job was asked to do; stored as JSON in `jobs.params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobParams {
    Register(RegisterParams),
    Recognize(RecognizeParams),
    Embed(EmbedParams),
    Verify(VerifyParams),
}

impl JobParams {
    pub fn kind(&self) -> crate::JobKind {
        match self {
            Self::Register(_) => crate::JobKind::Register,
            Self::Recognize(_) => crate::JobKind::Recognize,
            Self::Embed(_) => crate::JobKind::Embed,
            Self::Verify(_) => crate::JobKind::Verify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_counts_characters_not_bytes() {
        assert!(SubjectName::parse(&"é".repeat(128)).is_ok());
        assert_eq!(SubjectName::parse(&"é".repeat(129)), Err(ParamError::SubjectLength(129)));
        assert_eq!(SubjectName::parse(""), Err(ParamError::SubjectLength(0)));
        assert!(SubjectName::parse("   ").is_err());
        assert_eq!(SubjectName::parse("a\nb"), Err(ParamError::SubjectControl));
        assert_eq!(SubjectName::parse("Zoë 王").unwrap().as_str(), "Zoë 王");
    }

    #[test]
    fn collection_names() {
        assert!(CollectionName::parse("team_a-1").is_ok());
        assert!(CollectionName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "x/y", &"a".repeat(65)] {
            assert!(CollectionName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn top_k_and_threshold_ranges() {
        assert_eq!(TopK::parse("1").unwrap().get(), 1);
        assert_eq!(TopK::parse("100").unwrap().get(), 100);
        for bad in ["0", "101", "-1", "2.5", "five"] {
            assert!(TopK::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Threshold::parse("-1").unwrap().get(), -1.0);
        assert_eq!(Threshold::parse("0.35").unwrap().get(), 0.35);
        for bad in ["1.01", "-2", "NaN", "inf", "x"] {
            assert!(Threshold::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(MaxFaces::parse("1").unwrap().get(), 1);
        assert_eq!(MaxFaces::parse("100").unwrap().get(), 100);
        for bad in ["0", "101", "", "3.0"] {
            assert!(MaxFaces::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn params_json_is_tagged_by_kind() {
        let p = JobParams::Register(RegisterParams {
            subject: SubjectName::parse("ada").unwrap(),
            collection: CollectionName::default(),
            consent: None,
        });
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "register", "subject": "ada", "collection": "default"}));
        assert_eq!(serde_json::from_value::<JobParams>(json).unwrap(), p);
        let v = JobParams::Verify(VerifyParams {
            target: VerifyTarget::Subject {
                collection: CollectionName::default(),
                subject: SubjectName::parse("ada/b").unwrap(),
            },
            threshold: Threshold::new(0.4).unwrap(),
        });
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["target"], serde_json::json!({"type": "subject", "collection": "default", "subject": "ada/b"}));
        assert_eq!(serde_json::from_value::<JobParams>(json).unwrap(), v);
    }

    #[test]
    fn consent_references() {
        assert!(ConsentRef::parse("form-2026-0042").is_ok());
        assert!(ConsentRef::parse(&"x".repeat(512)).is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(513)] {
            assert!(ConsentRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}

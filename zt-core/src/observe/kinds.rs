//! The vocabulary of security events: the `tracing` target, the ECS `event.kind`,
//! `event.category`, `event.type` and `event.outcome` values, severities, and how long a
//! field may be. A leaf module: events, controls, bot signals and the ECS layer all name
//! it, and it names none of them.

/// The `tracing` target of every security event.
pub const SECURITY_TARGET: &str = "zt::security";

/// Longest `user_agent.original` written; longer values are cut (at a character boundary).
pub(crate) const MAX_USER_AGENT: usize = 512;
/// Longest `url.path` written.
pub(crate) const MAX_PATH: usize = 1024;

/// ECS `event.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Something that needs attention (anomalies, actions): `WARN`.
    Alert,
    /// A record of something that happened (denials): `INFO`.
    Event,
}

impl EventKind {
    /// `alert` or `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::Event => "event",
        }
    }
}

/// ECS `event.category` (the subset zt uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventCategory {
    /// Credentials, tokens, lockouts.
    Authentication,
    /// HTTP-level denials (routing, contract, scope, limits).
    Web,
    /// Anomalies, bots, blocks.
    IntrusionDetection,
}

impl EventCategory {
    /// `authentication`, `web`, or `intrusion_detection`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventCategory::Authentication => "authentication",
            EventCategory::Web => "web",
            EventCategory::IntrusionDetection => "intrusion_detection",
        }
    }
}

/// ECS `event.type` (the subset zt uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    /// A request was refused.
    Denied,
    /// An anomaly: something suspicious was seen.
    Indicator,
    /// A control was put in place (block, throttle, challenge).
    Change,
}

impl EventType {
    /// `denied`, `indicator`, or `change`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Denied => "denied",
            EventType::Indicator => "indicator",
            EventType::Change => "change",
        }
    }
}

/// ECS `event.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventOutcome {
    /// The request or operation succeeded.
    Success,
    /// The request was refused.
    Failure,
    /// Not applicable or unknown.
    Unknown,
}

impl EventOutcome {
    /// `success`, `failure`, or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Success => "success",
            EventOutcome::Failure => "failure",
            EventOutcome::Unknown => "unknown",
        }
    }
}

/// Severities (`event.severity`), on the scale Elastic detection rules use.
pub(crate) mod severity {
    /// Routine: denials, informational anomalies.
    pub const LOW: u8 = 21;
    /// Worth a look: lockouts, medium-score anomalies, throttles.
    pub const MEDIUM: u8 = 47;
    /// Act now: high-score anomalies, blocks.
    pub const HIGH: u8 = 73;
}

/// Cuts text at `max` bytes on a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("héllo", 3), "hé");
    }
}

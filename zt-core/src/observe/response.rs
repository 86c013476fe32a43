// The module's documentation is on `ResponseConfig`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::record::RequestRecord;
use super::rule::{Action, Rule};
use super::target::Target;

/// The response a challenge hook wants sent instead of forwarding (e.g. a 401 with a
/// CAPTCHA or proof-of-work page, or a redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeResponse {
    /// The status to answer with.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// Where throttle requests go: the Guard implements this and forwards to its limiter, so
/// the observer does not depend on the limiter.
///
/// Called on the request path (after the response): implementations must not block or do
/// I/O; record the request (e.g. in a bounded map the limiter reads) and return.
pub trait ActionSink: Send + Sync {
    /// Tighten `target`'s limits to `factor` (0 < factor < 1) of normal for `duration`.
    fn throttle(&self, target: &Target, factor: f64, duration: Duration);
}

/// The user's challenge hook: given the request that triggered the action, the response
/// to send instead of forwarding the target's next requests, or `None` to decline (then
/// [`ResponseConfig::challenge_fallback`] applies).
pub type ChallengeHook = Arc<dyn Fn(&RequestRecord<'_>) -> Option<ChallengeResponse> + Send + Sync>;

/// Response settings.
///
/// Responses to anomalies: per-rule actions, the throttle sink and the challenge hook.
///
/// Each [`Rule`] maps to one [`Action`] (defaults in [`Rule::default_action`], overridable
/// per rule in [`ResponseConfig::actions`]). When several rules fire on one request, the
/// most severe action is taken once. Every action is an `alert` event on `zt::security`
/// (`event.action` = the action, `zt.enforced`).
///
/// | action | effect |
/// |---|---|
/// | `log` | an `INFO` event (`event.kind = event`) |
/// | `alert` | a `WARN` event (`event.kind = alert`) |
/// | `throttle` | alert, and [`ActionSink::throttle`] for the target for [`ResponseConfig::throttle_for`] |
/// | `challenge` | alert, and the challenge hook's response for the target's next requests ([`ResponseConfig::challenge_for`]); without a hook, or when it declines, [`ResponseConfig::challenge_fallback`] |
/// | `block` | alert, and a temporary block ([`ResponseConfig::block_for`]): 403 `urn:zt:problem:blocked` |
///
/// In report-only mode ([`crate::Mode::Report`]) actions are logged with
/// `zt.enforced = false` and nothing is put in place: no throttle, no challenge, no block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseConfig {
    /// Per-rule overrides of [`Rule::default_action`]. Default: none.
    pub actions: BTreeMap<Rule, Action>,
    /// How long an automatic block lasts. Default 15 min.
    #[serde(with = "humantime_serde")]
    pub block_for: Duration,
    /// How long a throttle lasts. Default 15 min.
    #[serde(with = "humantime_serde")]
    pub throttle_for: Duration,
    /// The share of the normal quota a throttled target keeps. Default 0.1.
    pub throttle_factor: f64,
    /// How long a challenge stays in place (until cleared). Default 10 min.
    #[serde(with = "humantime_serde")]
    pub challenge_for: Duration,
    /// What a `challenge` becomes without a hook or when the hook declines. Default
    /// `block`.
    pub challenge_fallback: Action,
    /// Rules in observe-only dry run: when one of these decides the action, the events say
    /// what would have been done (`zt.action`, `zt.enforced = false`) and nothing is put in
    /// place, while the other rules act. For trying a rule or a threshold on production
    /// traffic first. Default: none.
    pub dry_run: std::collections::BTreeSet<Rule>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            actions: BTreeMap::new(),
            block_for: Duration::from_secs(15 * 60),
            throttle_for: Duration::from_secs(15 * 60),
            throttle_factor: 0.1,
            challenge_for: Duration::from_secs(10 * 60),
            challenge_fallback: Action::Block,
            dry_run: std::collections::BTreeSet::new(),
        }
    }
}

impl ResponseConfig {
    /// The action for a rule.
    pub fn action_for(&self, rule: Rule) -> Action {
        self.actions.get(&rule).copied().unwrap_or_else(|| rule.default_action())
    }
}

/// An action the observer took (or, in report-only mode, would have taken).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionTaken {
    /// The action.
    pub action: Action,
    /// Whom it applies to (`None` for log/alert on a request without subject or address).
    pub target: Option<Target>,
    /// False when only logged: in report-only mode, or a throttle without an
    /// [`ActionSink`].
    pub enforced: bool,
    /// How long it lasts (throttle, challenge, block).
    pub duration: Option<Duration>,
    /// The incident it belongs to.
    pub incident_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_order_by_severity_and_config_overrides() {
        assert!(Action::Block > Action::Challenge && Action::Challenge > Action::Throttle);
        assert!(Action::Throttle > Action::Alert && Action::Alert > Action::Log);
        let mut config = ResponseConfig::default();
        assert_eq!(config.action_for(Rule::Enumeration), Action::Block);
        config.actions.insert(Rule::Enumeration, Action::Alert);
        assert_eq!(config.action_for(Rule::Enumeration), Action::Alert);
        let parsed: ResponseConfig =
            toml::from_str("block_for = \"5m\"\n[actions]\nbot_timing = \"block\"\n").unwrap();
        assert_eq!(parsed.block_for, Duration::from_secs(300));
        assert_eq!(parsed.action_for(Rule::BotTiming), Action::Block);
        assert_eq!(parsed.action_for(Rule::CredentialStuffing), Action::Block);
        let parsed: ResponseConfig =
            toml::from_str("dry_run = [\"request_rate\", \"automation\"]\n").unwrap();
        assert!(parsed.dry_run.contains(&Rule::RequestRate) && !parsed.dry_run.contains(&Rule::Enumeration));
    }
}

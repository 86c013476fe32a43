//! The anomaly rules and the actions they call for: the names detection, responses,
//! incidents, events and KPIs share (`zt_anomalies_total{rule}`, `zt_actions_total{action}`).
//! A leaf module, so none of those has to name another for them.

use serde::{Deserialize, Serialize};

/// An anomaly rule. The slug (`as_str`) is the `rule` label of `zt_anomalies_total` and
/// the name in `zt.anomaly.rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Many distinct object ids in one window: the BOLA / IDOR enumeration signal.
    Enumeration,
    /// Far more requests in a window than the caller's baseline.
    RequestRate,
    /// A much higher share of error responses than the caller's baseline.
    ErrorRatio,
    /// A request body far larger than the endpoint usually receives.
    PayloadSize,
    /// A caller seen from a network it has not used recently.
    NewNetwork,
    /// A caller seen from a country it has not used recently.
    NewCountry,
    /// A caller active at an hour (UTC) it is rarely active at.
    UnusualHour,
    /// Many failed authentications for many subjects from one network.
    CredentialStuffing,
    /// Far more requests to an endpoint than its baseline.
    EndpointRate,
    /// A much higher share of errors on an endpoint than its baseline.
    EndpointErrors,
    /// An automation client or no user agent on a human-facing route.
    BotUserAgent,
    /// Machine-regular request timing on human-facing routes.
    BotTiming,
    /// A browser user agent without the headers browsers send.
    BotHeaders,
    /// Many distinct object ids answered 404/403 over the long window
    /// ([`DetectionConfig::long_window`](super::DetectionConfig::long_window)): a slow walk.
    SlowEnumeration,
    /// An automation score (user agent family, missing browser headers, header count,
    /// timing regularity) at or above [`BotConfig::automation_threshold`](super::BotConfig::automation_threshold)
    /// on any route. Acts only when another signal fires for the caller in the same
    /// window; alone it is an alert.
    Automation,
    /// GraphQL documents refused at the depth, alias, cost, batch or size limits, or
    /// accepted near them, repeatedly in one window.
    GraphqlAbuse,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 16] = [
        Rule::Enumeration,
        Rule::RequestRate,
        Rule::ErrorRatio,
        Rule::PayloadSize,
        Rule::NewNetwork,
        Rule::NewCountry,
        Rule::UnusualHour,
        Rule::CredentialStuffing,
        Rule::EndpointRate,
        Rule::EndpointErrors,
        Rule::BotUserAgent,
        Rule::BotTiming,
        Rule::BotHeaders,
        Rule::SlowEnumeration,
        Rule::Automation,
        Rule::GraphqlAbuse,
    ];

    /// The stable slug, e.g. `enumeration`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Enumeration => "enumeration",
            Rule::RequestRate => "request_rate",
            Rule::ErrorRatio => "error_ratio",
            Rule::PayloadSize => "payload_size",
            Rule::NewNetwork => "new_network",
            Rule::NewCountry => "new_country",
            Rule::UnusualHour => "unusual_hour",
            Rule::CredentialStuffing => "credential_stuffing",
            Rule::EndpointRate => "endpoint_rate",
            Rule::EndpointErrors => "endpoint_errors",
            Rule::BotUserAgent => "bot_user_agent",
            Rule::BotTiming => "bot_timing",
            Rule::BotHeaders => "bot_headers",
            Rule::SlowEnumeration => "slow_enumeration",
            Rule::Automation => "automation",
            Rule::GraphqlAbuse => "graphql_abuse",
        }
    }

    /// How much one firing weighs in the score (0..1): strong, specific signals high,
    /// weak context signals (a new network, an unusual hour) low.
    pub fn weight(self) -> f64 {
        match self {
            Rule::Enumeration | Rule::CredentialStuffing | Rule::SlowEnumeration => 0.9,
            Rule::GraphqlAbuse => 0.8,
            Rule::Automation => 0.5,
            Rule::BotUserAgent | Rule::BotTiming => 0.7,
            Rule::RequestRate => 0.6,
            Rule::ErrorRatio => 0.5,
            Rule::PayloadSize | Rule::NewCountry | Rule::BotHeaders => 0.4,
            Rule::EndpointRate | Rule::EndpointErrors => 0.3,
            Rule::NewNetwork => 0.2,
            Rule::UnusualHour => 0.15,
        }
    }

    /// The action taken when the rule fires, unless configured otherwise:
    /// enumeration (fast or slow), credential stuffing (a block of the network: a throttle
    /// has no quota of a network to tighten) and GraphQL abuse `block`; request rate and
    /// the automation score `throttle` (the score only with another signal, see
    /// [`Rule::Automation`]); automation agents and machine timing on human-facing routes
    /// `challenge`; new network and unusual hour `log`; everything else `alert`.
    pub fn default_action(self) -> Action {
        match self {
            Rule::Enumeration | Rule::SlowEnumeration | Rule::CredentialStuffing | Rule::GraphqlAbuse => {
                Action::Block
            }
            Rule::RequestRate | Rule::Automation => Action::Throttle,
            Rule::BotUserAgent | Rule::BotTiming => Action::Challenge,
            Rule::NewNetwork | Rule::UnusualHour => Action::Log,
            Rule::ErrorRatio
            | Rule::PayloadSize
            | Rule::NewCountry
            | Rule::EndpointRate
            | Rule::EndpointErrors
            | Rule::BotHeaders => Action::Alert,
        }
    }

    /// True for the rules that count as "another signal" for the automation score: the
    /// behavioural ones, not the score's own family (agent, headers) or context (network,
    /// country, hour).
    pub(super) fn corroborates_automation(self) -> bool {
        !matches!(
            self,
            Rule::Automation
                | Rule::BotUserAgent
                | Rule::BotHeaders
                | Rule::NewNetwork
                | Rule::NewCountry
                | Rule::UnusualHour
                | Rule::EndpointRate
                | Rule::EndpointErrors
        )
    }

    pub(super) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// What to do when a rule fires, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Record an informational event.
    Log,
    /// Raise an alert event.
    Alert,
    /// Alert and ask the limiter to tighten the target's quota for a while.
    Throttle,
    /// Alert and answer the target's requests with a challenge for a while.
    Challenge,
    /// Alert and refuse the target's requests for a while.
    Block,
}

impl Action {
    /// `log`, `alert`, `throttle`, `challenge`, or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Alert => "alert",
            Action::Throttle => "throttle",
            Action::Challenge => "challenge",
            Action::Block => "block",
        }
    }
}

//! Security events: one `tracing` event per denial, anomaly and action, on the stable
//! target `zt::security`, with ECS field names.
//!
//! Alerts (anomalies, actions) are `WARN`, plain events (denials) `INFO`. The
//! [`EcsJsonLayer`](super::EcsJsonLayer) writes them as ECS JSON lines; any other
//! subscriber sees the same fields. See the [module docs](super) for the field table.

use std::net::IpAddr;

use tracing::Level;
use tracing::field::display;

use super::detect::Anomaly;
use super::geo::CountryCode;
use super::kinds::{
    EventCategory, EventKind, EventOutcome, EventType, MAX_PATH, MAX_USER_AGENT, SECURITY_TARGET, cut,
    severity,
};
use super::record::RequestRecord;
use super::rule::Action;

/// One security event. Borrows everything; [`SecurityEvent::emit`] writes it to
/// `tracing`. Build one with [`SecurityEvent::from_record`] and set what applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecurityEvent<'a> {
    /// `event.kind`.
    pub kind: EventKind,
    /// `event.category`.
    pub category: EventCategory,
    /// `event.type`.
    pub event_type: EventType,
    /// `event.action`: what happened, e.g. `request-denied`, `anomaly-detected`, `block`.
    pub action: &'a str,
    /// `event.outcome`.
    pub outcome: EventOutcome,
    /// `event.reason` and `message`: a short safe sentence (no values from the request
    /// beyond the documented fields).
    pub reason: &'a str,
    /// `event.severity` (see [`severity`]).
    pub severity: u8,
    /// `user.id`: the verified subject.
    pub user_id: Option<&'a str>,
    /// `zt.client_id`.
    pub client_id: Option<&'a str>,
    /// `client.ip` and `source.ip`.
    pub client_ip: Option<IpAddr>,
    /// `source.geo.country_iso_code`.
    pub country: Option<CountryCode>,
    /// `user_agent.original` (cut at [`MAX_USER_AGENT`] bytes).
    pub user_agent: Option<&'a str>,
    /// `http.request.method`.
    pub method: Option<&'a str>,
    /// `url.path` (cut at [`MAX_PATH`] bytes; never a query string).
    pub path: Option<&'a str>,
    /// `zt.route`: the route template.
    pub route: Option<&'a str>,
    /// `http.response.status_code`.
    pub status: Option<u16>,
    /// `trace.id`.
    pub trace_id: Option<&'a str>,
    /// `zt.request_id`.
    pub request_id: Option<&'a str>,
    /// `zt.decision`.
    pub decision: Option<&'a str>,
    /// `zt.reason`: the denial reason's slug.
    pub zt_reason: Option<&'a str>,
    /// `zt.anomaly.score`, `zt.anomaly.rules` and `zt.anomaly.reasons`.
    pub anomaly: Option<&'a Anomaly>,
    /// `zt.action`: the response taken.
    pub zt_action: Option<Action>,
    /// `zt.enforced`: false when only reported (report-only mode).
    pub enforced: Option<bool>,
    /// `zt.target`: what an action applies to: `subject:<id>`, `address:<ip>`,
    /// `network:<cidr>`.
    pub target: Option<&'a str>,
    /// `zt.duration_seconds`: how long an action lasts.
    pub duration_secs: Option<u64>,
    /// `zt.incident.id`.
    pub incident_id: Option<u64>,
    /// `zt.zone`.
    pub zone: Option<&'a str>,
    /// `zt.operation_id`.
    pub operation_id: Option<&'a str>,
    /// `zt.mode`: `enforce` or `report`.
    pub mode: Option<&'a str>,
}

impl<'a> SecurityEvent<'a> {
    /// An event about `record`, with its request fields filled in.
    pub fn from_record(
        record: &'a RequestRecord<'a>,
        kind: EventKind,
        category: EventCategory,
        event_type: EventType,
        action: &'a str,
        reason: &'a str,
    ) -> SecurityEvent<'a> {
        let outcome = if record.decision.is_denial() { EventOutcome::Failure } else { EventOutcome::Success };
        SecurityEvent {
            kind,
            category,
            event_type,
            action,
            outcome,
            reason,
            severity: severity::LOW,
            user_id: record.subject,
            client_id: record.client_id,
            client_ip: record.client_ip,
            country: record.country,
            user_agent: record.user_agent,
            method: Some(record.method),
            path: Some(record.path),
            route: record.route,
            status: Some(record.status),
            trace_id: record.trace_id,
            request_id: Some(record.request_id),
            decision: Some(record.decision.as_str()),
            zt_reason: record.reason,
            anomaly: None,
            zt_action: None,
            enforced: None,
            target: None,
            duration_secs: None,
            incident_id: None,
            zone: record.zone,
            operation_id: record.operation_id,
            mode: None,
        }
    }

    /// An event not tied to a request (e.g. a manual block).
    pub fn standalone(
        kind: EventKind,
        category: EventCategory,
        event_type: EventType,
        action: &'a str,
        reason: &'a str,
    ) -> SecurityEvent<'a> {
        SecurityEvent {
            kind,
            category,
            event_type,
            action,
            outcome: EventOutcome::Unknown,
            reason,
            severity: severity::LOW,
            user_id: None,
            client_id: None,
            client_ip: None,
            country: None,
            user_agent: None,
            method: None,
            path: None,
            route: None,
            status: None,
            trace_id: None,
            request_id: None,
            decision: None,
            zt_reason: None,
            anomaly: None,
            zt_action: None,
            enforced: None,
            target: None,
            duration_secs: None,
            incident_id: None,
            zone: None,
            operation_id: None,
            mode: None,
        }
    }

    /// True when some subscriber would record this event: check before building costly
    /// parts.
    pub fn enabled(kind: EventKind) -> bool {
        match kind {
            EventKind::Alert => tracing::enabled!(target: SECURITY_TARGET, Level::WARN),
            EventKind::Event => tracing::enabled!(target: SECURITY_TARGET, Level::INFO),
        }
    }

    /// Writes the event to `tracing` on [`SECURITY_TARGET`].
    pub fn emit(&self) {
        if !Self::enabled(self.kind) {
            return;
        }
        let reasons_json = self.anomaly.map(Anomaly::reasons_json);
        let rules = self.anomaly.map(Anomaly::rules_text);
        let score = self.anomaly.map(|a| a.score);
        let ua = self.user_agent.map(|u| cut(u, MAX_USER_AGENT));
        let path = self.path.map(|p| cut(p, MAX_PATH));
        let ip = self.client_ip.map(display);
        let country = self.country.as_ref().map(CountryCode::as_str);
        let action = self.zt_action.map(Action::as_str);
        // One field list for both levels: `event!` needs its level as a constant.
        macro_rules! emit_at {
            ($level:expr) => {
                tracing::event!(
                    target: "zt::security",
                    $level,
                    event.kind = self.kind.as_str(),
                    event.category = self.category.as_str(),
                    "event.type" = self.event_type.as_str(),
                    event.action = self.action,
                    event.outcome = self.outcome.as_str(),
                    event.reason = self.reason,
                    event.severity = self.severity,
                    user.id = self.user_id,
                    client.ip = ip,
                    source.ip = ip,
                    source.geo.country_iso_code = country,
                    user_agent.original = ua,
                    http.request.method = self.method,
                    url.path = path,
                    http.response.status_code = self.status,
                    trace.id = self.trace_id,
                    zt.request_id = self.request_id,
                    zt.route = self.route,
                    zt.decision = self.decision,
                    zt.reason = self.zt_reason,
                    zt.client_id = self.client_id,
                    zt.anomaly.score = score,
                    zt.anomaly.rules = rules.as_deref(),
                    zt.anomaly.reasons = reasons_json.as_deref(),
                    zt.action = action,
                    zt.enforced = self.enforced,
                    zt.target = self.target,
                    zt.duration_seconds = self.duration_secs,
                    zt.incident.id = self.incident_id,
                    zt.zone = self.zone,
                    zt.operation_id = self.operation_id,
                    zt.mode = self.mode,
                    "{}",
                    self.reason
                )
            };
        }
        match self.kind {
            EventKind::Alert => emit_at!(Level::WARN),
            EventKind::Event => emit_at!(Level::INFO),
        }
    }
}

/// The denial event for a refused request: category and severity from the reason.
pub(crate) fn denial_event<'a>(record: &'a RequestRecord<'a>, mode: &'a str) -> SecurityEvent<'a> {
    let slug = record.reason.unwrap_or("denied");
    let (category, action, severity, reason) = match slug {
        "locked-out" => (EventCategory::Authentication, "lockout", severity::MEDIUM, "caller locked out"),
        "blocked" | "challenged" => (
            EventCategory::IntrusionDetection,
            "request-blocked",
            severity::MEDIUM,
            "request refused by a block",
        ),
        _ if record.is_auth_failure() || slug == "missing-credentials" || slug == "malformed-credentials" => {
            (EventCategory::Authentication, "request-denied", severity::LOW, "authentication failed")
        }
        _ => (EventCategory::Web, "request-denied", severity::LOW, "request denied"),
    };
    let mut event =
        SecurityEvent::from_record(record, EventKind::Event, category, EventType::Denied, action, reason);
    event.severity = severity;
    event.outcome = EventOutcome::Failure;
    event.mode = Some(mode);
    event
}

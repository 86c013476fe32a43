// The module's documentation is on `BotConfig`: the module is private, its items are
// re-exported at `zt_core::observe`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::record::HeaderFacts;

/// Bot detection settings.
///
/// Bot signals for human-facing routes: automation user agents, machine-regular timing,
/// and browser user agents without the headers every browser sends.
///
/// # The automation score (every route)
///
/// One number in `[0, 1]` per request, the noisy-OR `1 - Π(1 - wᵢ)` of the signals present:
///
/// | signal | weight |
/// |---|---|
/// | a headless browser or browser-automation framework in the user agent (HeadlessChrome, PhantomJS, Puppeteer, Playwright, Selenium) | 0.5 |
/// | no user agent | 0.4 |
/// | an HTTP library or command-line tool (curl, python-requests, Go-http-client, okhttp, axios, ...) | 0.3 |
/// | a browser user agent without `accept-language` | 0.3 |
/// | a browser user agent without `accept-encoding`, or without `accept` | 0.2 |
/// | a browser user agent with fewer than 5 header lines (browsers send 8 or more) | 0.15 |
/// | machine-regular timing: the caller's intervals have a coefficient of variation at or below `timing_max_cv` (over at least `timing_min_samples`, averaging at most `timing_max_mean`) | 0.3 |
///
/// At or above [`BotConfig::automation_threshold`] (0.6) the rule fires once per caller and
/// window. A program calling an API is normal (an integration with python-requests and a
/// one-second poll scores 0.51); a headless browser hiding as a person without the headers
/// a person's browser sends scores 0.65 before any timing is known. The score alone only
/// raises an alert: its action (default `throttle`) is taken only when another rule of the
/// caller (request rate, enumeration, error ratio, GraphQL abuse, ...) fires in the same
/// request. Header order is not among the signals: the adapters hand over presence and a
/// count, not the order.
///
/// These are signals, not verdicts: each feeds the anomaly score with its own rule
/// ([`Rule::BotUserAgent`](super::Rule::BotUserAgent), [`Rule::BotTiming`](super::Rule::BotTiming),
/// [`Rule::BotHeaders`](super::Rule::BotHeaders)) and the configured action. They are only
/// evaluated on routes listed in [`BotConfig::human_facing`]: an API client is expected to
/// be a program.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// Route templates served to people (login pages, checkout, sign-up): bot signals are
    /// evaluated only on these. Default: none.
    pub human_facing: Vec<String>,
    /// Inter-arrival times kept per caller (ring). Default 16.
    pub timing_samples: usize,
    /// Fewest intervals before timing is judged. Default 10.
    pub timing_min_samples: usize,
    /// Coefficient of variation (standard deviation / mean) of the intervals at or below
    /// which timing counts as machine-regular. People are irregular (typically > 0.5).
    /// Default 0.1.
    pub timing_max_cv: f64,
    /// Only intervals averaging at most this count (a human reading a page every few
    /// minutes is not a scraper). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub timing_max_mean: Duration,
    /// The automation score at or above which [`Rule::Automation`](super::Rule::Automation)
    /// fires, on every route (see [`BotConfig`]). Default 0.6.
    pub automation_threshold: f64,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            human_facing: Vec::new(),
            timing_samples: 16,
            timing_min_samples: 10,
            timing_max_cv: 0.1,
            timing_max_mean: Duration::from_secs(30),
            automation_threshold: 0.6,
        }
    }
}

/// Substrings (lower case) of user agents of HTTP libraries, command-line tools, crawlers
/// frameworks and headless browsers, with the label reported.
const AUTOMATION: &[(&str, &str)] = &[
    ("curl/", "curl"),
    ("wget/", "wget"),
    ("python-requests", "python-requests"),
    ("python-urllib", "python-urllib"),
    ("python-httpx", "python-httpx"),
    ("aiohttp", "aiohttp"),
    ("go-http-client", "go-http-client"),
    ("headlesschrome", "headless-chrome"),
    ("phantomjs", "phantomjs"),
    ("puppeteer", "puppeteer"),
    ("playwright", "playwright"),
    ("selenium", "selenium"),
    ("scrapy", "scrapy"),
    ("okhttp", "okhttp"),
    ("java/", "java"),
    ("apache-httpclient", "apache-httpclient"),
    ("libwww-perl", "libwww-perl"),
    ("node-fetch", "node-fetch"),
    ("axios/", "axios"),
    ("httpie", "httpie"),
    ("postmanruntime", "postman"),
    ("insomnia", "insomnia"),
    ("reqwest", "reqwest"),
    ("hyper/", "hyper"),
];

/// Headless browsers and browser-automation frameworks (a stronger signal than a plain
/// HTTP library: they exist to pass as a person).
const HEADLESS: &[&str] = &["headless-chrome", "phantomjs", "puppeteer", "playwright", "selenium"];

/// One request's automation score (see [`BotConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AutomationScore {
    pub(crate) value: f64,
    /// The strongest signal's label.
    pub(crate) strongest: &'static str,
    /// How many signals were present.
    pub(crate) signals: u8,
}

/// Scores one request: its user agent and header facts, and whether the caller's timing is
/// machine-regular.
pub(crate) fn automation_score(
    user_agent: Option<&str>,
    headers: &HeaderFacts,
    regular: bool,
) -> AutomationScore {
    let mut signals: [(f64, &'static str); 4] = [(0.0, ""); 4];
    signals[0] = match automation_label(user_agent) {
        Some("missing") => (0.4, "missing user agent"),
        Some(label) if HEADLESS.contains(&label) => (0.5, label),
        Some(label) => (0.3, label),
        None => (0.0, ""),
    };
    if let Some(missing) = header_anomaly(user_agent, headers) {
        let w = if missing == "missing accept-language" { 0.3 } else { 0.2 };
        signals[1] = (w, missing);
    }
    if user_agent.is_some_and(|ua| ua.starts_with("Mozilla/")) && headers.count > 0 && headers.count < 5 {
        signals[2] = (0.15, "few headers");
    }
    if regular {
        signals[3] = (0.3, "regular timing");
    }
    let keep: f64 = signals.iter().map(|(w, _)| 1.0 - w).product();
    let strongest = signals.iter().max_by(|a, b| a.0.total_cmp(&b.0)).map_or("", |s| s.1);
    let count = signals.iter().filter(|(w, _)| *w > 0.0).count() as u8;
    AutomationScore { value: 1.0 - keep, strongest, signals: count }
}

/// What a user agent says about automation: `Some(label)` for a missing/empty agent
/// (`missing`) or a known automation client, `None` otherwise.
pub(crate) fn automation_label(user_agent: Option<&str>) -> Option<&'static str> {
    let ua = match user_agent.map(str::trim) {
        None | Some("") => return Some("missing"),
        Some(ua) => ua,
    };
    // Only the first 256 bytes: agents are short, and this bounds the work on hostile input.
    let head = super::kinds::cut(ua, 256);
    let mut lower = [0u8; 256];
    let lower = &mut lower[..head.len()];
    lower.copy_from_slice(head.as_bytes());
    lower.make_ascii_lowercase();
    AUTOMATION.iter().find(|(needle, _)| contains(lower, needle.as_bytes())).map(|(_, label)| *label)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which browser header is missing from a request whose agent claims to be a browser
/// (`Mozilla/...`): `Some(label)` or `None` when it looks consistent.
pub(crate) fn header_anomaly(user_agent: Option<&str>, headers: &HeaderFacts) -> Option<&'static str> {
    let ua = user_agent?;
    if !ua.starts_with("Mozilla/") {
        return None;
    }
    if !headers.accept_language {
        Some("missing accept-language")
    } else if !headers.accept_encoding {
        Some("missing accept-encoding")
    } else if !headers.accept {
        Some("missing accept")
    } else {
        None
    }
}

/// Inter-arrival times of one caller on human-facing routes (a small ring).
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    last_at: u64,
    intervals_ms: Vec<u32>,
    next: usize,
}

impl Timing {
    pub(crate) fn new(now: u64) -> Timing {
        Timing { last_at: now, intervals_ms: Vec::new(), next: 0 }
    }

    /// Adds the interval since the previous request.
    pub(crate) fn push(&mut self, now: u64, capacity: usize) {
        let ms = u32::try_from(now.saturating_sub(self.last_at) / 1_000).unwrap_or(u32::MAX);
        self.last_at = now;
        if self.intervals_ms.len() < capacity.max(2) {
            self.intervals_ms.push(ms);
        } else if let Some(slot) = self.intervals_ms.get_mut(self.next) {
            *slot = ms;
            self.next = (self.next + 1) % capacity.max(2);
        }
    }

    /// `(mean interval in seconds, coefficient of variation)` once enough samples exist.
    pub(crate) fn regularity(&self, min_samples: usize) -> Option<(f64, f64)> {
        let n = self.intervals_ms.len();
        if n < min_samples.max(2) {
            return None;
        }
        let mean = self.intervals_ms.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        if mean <= 0.0 {
            // A burst of simultaneous requests: as regular as it gets.
            return Some((0.0, 0.0));
        }
        let var = self.intervals_ms.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n as f64;
        Some((mean / 1_000.0, var.sqrt() / mean))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automation_agents() {
        for (ua, label) in [
            ("curl/8.5.0", "curl"),
            ("python-requests/2.31.0", "python-requests"),
            ("Go-http-client/1.1", "go-http-client"),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
                "headless-chrome",
            ),
            ("", "missing"),
            ("   ", "missing"),
        ] {
            assert_eq!(automation_label(Some(ua)), Some(label), "{ua}");
        }
        assert_eq!(automation_label(None), Some("missing"));
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(automation_label(Some(firefox)), None);
        // Non-ASCII and very long agents are handled without allocation or panics.
        let long = format!("{}curl/1", "é".repeat(400));
        assert_eq!(automation_label(Some(&long)), None, "the marker is past the 256-byte head");
    }

    #[test]
    fn browser_without_browser_headers() {
        let firefox = Some("Mozilla/5.0 Firefox/121.0");
        assert_eq!(header_anomaly(firefox, &HeaderFacts::browser_like()), None);
        let bare = HeaderFacts { accept: true, accept_language: false, accept_encoding: true, count: 3 };
        assert_eq!(header_anomaly(firefox, &bare), Some("missing accept-language"));
        assert_eq!(header_anomaly(Some("curl/8"), &bare), None, "not claiming to be a browser");
    }

    #[test]
    fn automation_score_separates_programs_from_disguised_bots() {
        let browser = HeaderFacts::browser_like();
        let firefox = Some("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0");
        assert_eq!(automation_score(firefox, &browser, false).value, 0.0);
        // An integration: a library agent polling like clockwork stays below 0.6.
        let api = HeaderFacts { accept: true, accept_language: false, accept_encoding: true, count: 6 };
        let integration = automation_score(Some("python-requests/2.31.0"), &api, true);
        assert!((integration.value - 0.51).abs() < 1e-9, "{integration:?}");
        // A headless browser without accept-language: 0.65 before any timing.
        let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36";
        let bot = automation_score(Some(headless), &api, false);
        assert!((bot.value - 0.65).abs() < 1e-9, "{bot:?}");
        assert_eq!((bot.strongest, bot.signals), ("headless-chrome", 2));
        assert!(automation_score(Some(headless), &api, true).value > bot.value);
        assert!((automation_score(None, &HeaderFacts::default(), false).value - 0.4).abs() < 1e-9);
    }

    #[test]
    fn timing_regularity() {
        let mut t = Timing::new(0);
        let mut now = 0;
        for _ in 0..12 {
            now += 2_000_000;
            t.push(now, 16);
        }
        let (mean, cv) = t.regularity(10).unwrap();
        assert_eq!(mean, 2.0);
        assert_eq!(cv, 0.0);
        let mut human = Timing::new(0);
        let mut now = 0;
        for gap in [1, 9, 3, 25, 2, 14, 6, 40, 5, 11, 3, 30u64] {
            now += gap * 1_000_000;
            human.push(now, 16);
        }
        let (_, cv) = human.regularity(10).unwrap();
        assert!(cv > 0.5, "{cv}");
        // The ring keeps at most `capacity` samples.
        for _ in 0..100 {
            now += 1_000_000;
            human.push(now, 16);
        }
        assert_eq!(human.intervals_ms.len(), 16);
        assert_eq!(human.regularity(10).unwrap().1, 0.0);
    }
}

//! Which operations get an inventory entry of their own (issue 14, finding 10).
//!
//! Operation names (and documents, for anonymous operations) are chosen by callers: keyed
//! on them as sent, one caller could fill the inventory's cap with invented names, after
//! which real new operations would only be counted as `{other}`. An operation is named in
//! the inventory and baselines when the endpoint knows it: its document is registered or
//! safelisted, or its name was learned from a verified caller within that caller's budget
//! ([`GraphqlConfig::inventory_names_per_principal`](super::GraphqlConfig::inventory_names_per_principal),
//! [`inventory_max_names`](super::GraphqlConfig::inventory_max_names) in all). Everything
//! else is recorded under [`OTHER_OPERATIONS`](super::OTHER_OPERATIONS). Both tables are bounded.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The label of every operation the endpoint does not know.
pub(super) use super::OTHER_OPERATIONS as OTHER;

/// The most principals whose budgets are tracked; beyond, new principals teach no names.
const MAX_PRINCIPALS: usize = 10_000;

/// Learned operation labels and what each principal has taught.
#[derive(Debug, Default)]
pub(super) struct Names {
    inner: Mutex<Learned>,
}

#[derive(Debug, Default)]
struct Learned {
    labels: HashSet<String>,
    taught: HashMap<String, usize>,
}

impl Names {
    /// The inventory label for `label` (a name or `#hash`): itself when `registered`, when
    /// already learned, or when `principal` may still teach one (then it is learned);
    /// otherwise [`OTHER`].
    pub(super) fn label(
        &self,
        label: String,
        registered: bool,
        principal: Option<&str>,
        per_principal: usize,
        max: usize,
    ) -> String {
        if registered {
            return label;
        }
        let Ok(mut learned) = self.inner.lock() else { return OTHER.to_string() };
        if learned.labels.contains(&label) {
            return label;
        }
        let Some(principal) = principal else { return OTHER.to_string() };
        if learned.labels.len() >= max {
            return OTHER.to_string();
        }
        let tracked = learned.taught.len();
        let count = match learned.taught.get_mut(principal) {
            Some(count) => count,
            None if tracked >= MAX_PRINCIPALS => return OTHER.to_string(),
            None => learned.taught.entry(principal.to_string()).or_default(),
        };
        if *count >= per_principal {
            return OTHER.to_string();
        }
        *count += 1;
        learned.labels.insert(label.clone());
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_bound_what_callers_teach() {
        let names = Names::default();
        let label = |l: &str, registered, who| names.label(l.to_string(), registered, who, 2, 3);
        assert_eq!(label("Mine", false, Some("a")), "Mine");
        assert_eq!(label("Two", false, Some("a")), "Two");
        // a's budget is spent: its new names aggregate, names already known stay named.
        assert_eq!(label("Three", false, Some("a")), OTHER);
        assert_eq!(label("Mine", false, Some("a")), "Mine");
        assert_eq!(label("Mine", false, None), "Mine");
        // Anonymous callers teach nothing; registered documents need no teaching.
        assert_eq!(label("Anon", false, None), OTHER);
        assert_eq!(label("Registered", true, None), "Registered");
        // The table is bounded whoever asks.
        assert_eq!(label("B1", false, Some("b")), "B1");
        assert_eq!(label("B2", false, Some("b")), OTHER);
    }
}

//! Quotas per GraphQL root field or operation (`[[limits.graphql]]`), and the route quota
//! counting each mutation root field: what an admitted GraphQL request owes once its
//! operations are known (the body has been checked).

use std::collections::HashMap;
use std::sync::Arc;

use super::RouteRules;
use super::config::{GraphqlLimitConfig, Per, QuotaConfig};
use super::quota::QuotaRule;
use crate::PolicyError;
use crate::graphql::{OperationInfo, OperationKind};

/// What a `[[limits.graphql]]` entry counts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// Selections of a root field (`Mutation.createOrder`).
    Field(String),
    /// Operations of this name.
    Operation(String),
}

/// One compiled `[[limits.graphql]]` entry.
pub(super) struct GraphqlRule {
    selector: Selector,
    rule: Arc<QuotaRule>,
    per: Per,
}

impl GraphqlRule {
    /// Checks and compiles an entry; `compile` builds (and registers) an own quota.
    pub(super) fn compile(
        entry: &GraphqlLimitConfig,
        at: &str,
        routes: &HashMap<String, HashMap<String, RouteRules>>,
        names: &mut Vec<String>,
        compile: impl FnOnce(&str, &QuotaConfig, &str) -> Result<Arc<QuotaRule>, PolicyError>,
    ) -> Result<GraphqlRule, PolicyError> {
        if !entry.path.starts_with('/') {
            return Err(PolicyError::invalid(format!("{at}.path"), "a route template starts with `/`"));
        }
        let selector = match (&entry.field, &entry.operation) {
            (Some(field), None) => {
                let valid = field.split_once('.').is_some_and(|(ty, name)| is_name(ty) && is_name(name));
                if !valid {
                    return Err(PolicyError::invalid(
                        format!("{at}.field"),
                        "a root field's schema coordinate, like `Mutation.createOrder`",
                    ));
                }
                Selector::Field(field.clone())
            }
            (None, Some(operation)) if is_name(operation) => Selector::Operation(operation.clone()),
            (None, Some(_)) => {
                return Err(PolicyError::invalid(format!("{at}.operation"), "a GraphQL operation name"));
            }
            _ => return Err(PolicyError::invalid(at, "set exactly one of `field` and `operation`")),
        };
        let rule = match (&entry.rate, &entry.shares) {
            (Some(rate), None) => {
                let name = match &entry.name {
                    Some(name) => name.clone(),
                    None => derived_name(&selector),
                };
                super::check_policy_name(&name, at, names)?;
                let rule =
                    compile(&name, &QuotaConfig { rate: *rate, burst: entry.burst }, &format!("{at}.rate"))?;
                names.push(name);
                rule
            }
            (None, Some(shared)) => {
                if entry.burst.is_some() || entry.name.is_some() {
                    return Err(PolicyError::invalid(
                        at,
                        "`burst` and `name` belong to the shared route's quota, not here",
                    ));
                }
                let (method, path) = shared.split_once(' ').unwrap_or((shared, ""));
                let slot = routes.get(&method.to_ascii_uppercase()).and_then(|r| r.get(path));
                let rule = slot.and_then(|s| match entry.per {
                    Per::Identity => s.identity.clone(),
                    Per::Address => s.address.clone(),
                });
                match rule {
                    Some(rule) => rule,
                    None => {
                        return Err(PolicyError::invalid(
                            format!("{at}.shares"),
                            format!("no `[[limits.routes]]` quota for `{shared}` with this `per`"),
                        ));
                    }
                }
            }
            _ => return Err(PolicyError::invalid(at, "set exactly one of `rate` and `shares`")),
        };
        Ok(GraphqlRule { selector, rule, per: entry.per })
    }
}

/// `Mutation.createOrder` -> `graphql_mutation_createorder`.
fn derived_name(selector: &Selector) -> String {
    let text = match selector {
        Selector::Field(field) => field.as_str(),
        Selector::Operation(operation) => operation.as_str(),
    };
    let mut name = String::from("graphql_");
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' };
        name.push(c);
    }
    name.chars().take(64).collect()
}

/// `[_A-Za-z][_0-9A-Za-z]*`
fn is_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    matches!(bytes.next(), Some(b'_' | b'a'..=b'z' | b'A'..=b'Z'))
        && bytes.all(|b| matches!(b, b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'))
}

/// One charge an admitted GraphQL request owes ([`Limiter::graphql_charges`](super::Limiter::graphql_charges)).
#[derive(Clone)]
pub struct GraphqlCharge {
    rule: Arc<QuotaRule>,
    per: Per,
    units: u64,
}

impl std::fmt::Debug for GraphqlCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphqlCharge")
            .field("policy", &self.rule.name())
            .field("per", &self.per)
            .field("units", &self.units)
            .finish()
    }
}

impl GraphqlCharge {
    /// The quota charged.
    pub fn rule(&self) -> &QuotaRule {
        &self.rule
    }

    pub(super) fn rule_arc(&self) -> &Arc<QuotaRule> {
        &self.rule
    }

    /// What the charge is keyed by: the verified identity (the client address when the
    /// call is anonymous), or the client address.
    pub fn per(&self) -> Per {
        self.per
    }

    /// How many units (requests' worth) it takes.
    pub fn units(&self) -> u64 {
        self.units
    }
}

/// The charges of `operations` (an admitted request: one operation, or a batch).
pub(super) fn charges(
    rules: &[GraphqlRule],
    route_rule: Option<&Arc<QuotaRule>>,
    operations: &[OperationInfo],
) -> Vec<GraphqlCharge> {
    let mut out: Vec<GraphqlCharge> = Vec::new();
    let mut add = |rule: &Arc<QuotaRule>, per: Per, units: u64| {
        if units == 0 {
            return;
        }
        // Two entries sharing one quota (or a quota shared with the route) take one sum.
        match out.iter_mut().find(|c| Arc::ptr_eq(&c.rule, rule) && c.per == per) {
            Some(charge) => charge.units = charge.units.saturating_add(units),
            None => out.push(GraphqlCharge { rule: rule.clone(), per, units }),
        }
    };
    for entry in rules {
        let units = operations.iter().fold(0u64, |sum, op| {
            let here = match &entry.selector {
                Selector::Field(field) => {
                    op.root_selections.iter().filter(|(f, _)| f == field).map(|(_, n)| *n).sum()
                }
                Selector::Operation(name) => u64::from(op.name.as_deref() == Some(name.as_str())),
            };
            sum.saturating_add(here)
        });
        add(&entry.rule, entry.per, units);
    }
    // The route's quota: one unit per operation, one per mutation root field; the quota
    // stage already took one.
    if let Some(rule) = route_rule {
        let units = operations.iter().fold(0u64, |sum, op| {
            let here = match op.kind {
                OperationKind::Mutation => op.root_selections.iter().map(|(_, n)| *n).sum::<u64>().max(1),
                OperationKind::Query | OperationKind::Subscription => 1,
            };
            sum.saturating_add(here)
        });
        add(rule, Per::Identity, units.saturating_sub(1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{LimitCheck, LimitConfig, LimitKey, Limiter};
    use crate::graphql::{OperationInfo, OperationKind};

    fn op(kind: OperationKind, name: Option<&str>, roots: &[(&str, u64)]) -> OperationInfo {
        OperationInfo {
            name: name.map(str::to_string),
            kind,
            hash: String::new(),
            cost: 1,
            depth: 1,
            aliases: 0,
            root_fields: roots.iter().map(|(_, n)| n).sum(),
            introspection: false,
            persisted: false,
            safelisted: None,
            label: String::new(),
            root_selections: roots.iter().map(|(f, n)| (f.to_string(), *n)).collect(),
        }
    }

    fn limiter(toml: &str) -> Result<Limiter, crate::PolicyError> {
        Limiter::new(&LimitConfig::from_toml_str(toml)?)
    }

    const BASE: &str = "[[routes]]\nmethod = \"POST\"\npath = \"/orders\"\nrate = \"10/s\"\nburst = 20\n";

    #[test]
    fn entries_are_checked_at_start_up() {
        for bad in [
            "[[graphql]]\npath = \"/graphql\"\nrate = \"1/s\"",
            "[[graphql]]\npath = \"/graphql\"\nfield = \"createOrder\"\nrate = \"1/s\"",
            "[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"\noperation = \"A\"\nrate = \"1/s\"",
            "[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"",
            "[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"\nshares = \"POST /nowhere\"",
            "[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"\nshares = \"POST /orders\"\nper = \"address\"",
            "[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"\nshares = \"POST /orders\"\nburst = 3",
            "[[graphql]]\npath = \"graphql\"\nfield = \"Mutation.createOrder\"\nrate = \"1/s\"",
            "[[graphql]]\npath = \"/graphql\"\noperation = \"a b\"\nrate = \"1/s\"",
        ] {
            let toml = format!("{BASE}{bad}\n");
            assert!(limiter(&toml).is_err(), "{bad}");
        }
        let ok = format!(
            "{BASE}[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"\nshares = \"POST /orders\"\n"
        );
        assert!(limiter(&ok).is_ok());
    }

    #[test]
    fn charges_count_selections_operations_and_mutation_fields() {
        let toml = format!(
            "{BASE}[[graphql]]\npath = \"/graphql\"\nfield = \"Mutation.createOrder\"\nshares = \"POST /orders\"\n\
             [[graphql]]\npath = \"/graphql\"\noperation = \"Export\"\nrate = \"1/m\"\nburst = 2\n"
        );
        let limiter = limiter(&toml).unwrap();
        let batch = [
            op(OperationKind::Mutation, None, &[("Mutation.createOrder", 10)]),
            op(OperationKind::Query, Some("Export"), &[("Query.orders", 1)]),
            op(OperationKind::Query, Some("Export"), &[("Query.orders", 1)]),
        ];
        let charges = limiter.graphql_charges("POST", "/graphql", &batch);
        let units: Vec<(&str, u64)> = charges.iter().map(|c| (c.rule().name(), c.units())).collect();
        // createOrder x10 on POST /orders' quota; two Export operations; the route's
        // (default identity) quota: 10 + 1 + 1 units, one already taken by the quota stage.
        assert_eq!(units, [("post_orders", 10), ("graphql_export", 2), ("default", 11)]);
        // A charge beyond the burst is refused whole, without touching the bucket.
        let big = [op(OperationKind::Mutation, None, &[("Mutation.createOrder", 21)])];
        let charge = &limiter.graphql_charges("POST", "/graphql", &big)[0];
        let LimitCheck::Ready(decision) = limiter.charge(charge, LimitKey::Identity("iss|sub:a")) else {
            panic!()
        };
        assert!(!decision.allowed);
        let fits = [op(OperationKind::Mutation, None, &[("Mutation.createOrder", 20)])];
        let charge = &limiter.graphql_charges("POST", "/graphql", &fits)[0];
        let LimitCheck::Ready(decision) = limiter.charge(charge, LimitKey::Identity("iss|sub:a")) else {
            panic!()
        };
        assert!(decision.allowed);
        let LimitCheck::Ready(decision) = limiter.charge(charge, LimitKey::Identity("iss|sub:a")) else {
            panic!()
        };
        assert!(!decision.allowed, "the bucket is spent");
    }
}

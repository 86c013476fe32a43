//! Problem `type` URIs (RFC 9457): the vocabulary every denial body shares. A leaf module,
//! so the Guard's denials, GraphQL's and the observer's blocks name it without naming each
//! other.

/// The base of every problem `type` URI zt emits. Stable: clients may match on it.
pub const PROBLEM_TYPE_BASE: &str = "urn:zt:problem:";

//! Nothing can be added to a finished zt app behind zt's back: each file in `tests/ui` adds
//! a route, a fallback, a merged or nested router, or reaches for the inner `axum::Router`,
//! and must fail to compile with the error recorded beside it.

#[test]
fn routes_cannot_be_added_after_into_axum() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

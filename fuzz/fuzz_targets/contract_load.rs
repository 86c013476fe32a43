//! OpenAPI loading: arbitrary bytes (lossy UTF-8) as a JSON or YAML document through
//! `Contract::from_text` (no base directory: file `$ref`s must be refused, never read).
//!
//! Properties: returns `Ok` or `Err`, never panics, overflows its stack or hangs (libFuzzer's
//! `-timeout`); a contract that compiles answers `lookup`, `check_media_type`,
//! `validate_request` and `validate_response` for each of its operations without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt::contract::{Contract, ContractOptions, ContractRequest, Lookup};
use zt::request::HeaderList;

/// A concrete path for a template: every `{param}` becomes `1`.
fn instantiate(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match (c, in_param) {
            ('{', false) => in_param = true,
            ('}', true) => {
                in_param = false;
                out.push('1');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(contract) = Contract::from_text(&text, None, ContractOptions::default()) else { return };
    let headers = HeaderList::default().with("content-type", "application/json");
    for (index, operation) in contract.operations().iter().enumerate().take(16) {
        let path = instantiate(&operation.template);
        let path_params = match contract.lookup(&operation.method, &path) {
            Lookup::Found { path_params, .. } => path_params,
            Lookup::NotFound | Lookup::MethodNotAllowed { .. } => Vec::new(),
        };
        let _ = contract.check_media_type(index, &headers);
        for (query, body) in [(None, None), (Some("a=1&a=2&limit=x"), Some(&b"{\"a\":[1,{\"b\":null}]}"[..]))]
        {
            let request = ContractRequest { path_params: &path_params, query, headers: &headers, body };
            let _ = contract.validate_request(index, &request);
        }
        let _ = contract.validate_response(index, 200, Some("application/json"), b"{\"id\":1,\"x\":[true]}");
    }
});

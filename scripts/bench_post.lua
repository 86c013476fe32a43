-- wrk script for scripts/bench_peers.sh: POST /orders with valid JSON orders, three bodies in
-- turn. Authorization and Content-Type come from wrk's -H options.
wrk.method = "POST"
local bodies = {
    '{"item":"book","quantity":2}',
    '{"item":"pen","quantity":10,"note":"blue ink"}',
    '{"item":"caf\\u00e9 beans","quantity":1000}',
}
local i = 0
request = function()
    i = i + 1
    return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end

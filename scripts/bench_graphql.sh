#!/usr/bin/env bash
# GraphQL check benchmarks (issue 9): the demo schema, a generated 500-type schema, and
# GitHub's public schema (fetched once from the npm registry, @octokit/graphql-schema, MIT).
#
# Usage: scripts/bench_graphql.sh [criterion filter, e.g. graphql/orders]
set -euo pipefail
cd "$(dirname "$0")/.."

# 15.26.1, the newest, declares two fields of EnterpriseOwnerInfo twice: invalid SDL, which
# apollo-compiler (rightly) refuses. 15.25.0 is the newest valid one.
VERSION=15.25.0
data=target/bench-data
schema="$data/github-schema-$VERSION.graphql"
if [[ ! -s $schema ]]; then
    mkdir -p "$data"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "@octokit/graphql-schema@$VERSION" >/dev/null && tar xzf ./*.tgz)
    cp "$tmp/package/schema.graphql" "$schema"
fi
echo "GitHub schema: $schema ($(wc -c <"$schema") bytes)" >&2
ZT_GITHUB_SCHEMA="$schema" cargo bench --bench graphql -- "${1:-graphql/}"

#!/usr/bin/env python3
"""Soak load generator for the zt orders demos (issue 8), driven by scripts/soak.sh.

Python 3 standard library only: asyncio over raw sockets, HTTP/1.1 keep-alive. Sends a mixed
load to every demo at once, for a fixed duration and at most a fixed number of requests,
to 127.0.0.1 only:

- valid:   alice's reads, writes and lookups of her own orders (both of her dev tokens), and
           an admin delete at most once a second, each from one of many client addresses
           (X-Forwarded-For, believed from 127.0.0.1 only because the demos run with
           ZT_TRUSTED_PROXIES=127.0.0.1/32; the addresses are documentation ranges, only ever
           written into the header);
- invalid: contract violations (bodies, parameters, media types, sizes, method override),
           missing scopes, path confusion, unknown routes and methods, repeated credentials;
- attack:  order id enumeration with the admin token (a stolen credential: the observer
           blocks it, so admin deletes answer 403 from then on); garbage, unsigned (alg
           none), tampered-scope, bad-signature and oversized tokens from guessing addresses;
- flood:   bursts of anonymous and garbage-token calls from a few addresses.

The demo prints three tokens only (alice read, alice read+write, admin), so "many identities"
means three subjects behind many client addresses.

Samples each demo's RSS from /proc/<pid>/status every 10 s. Prints a summary per demo and
exits non-zero when a demo answered any 5xx, accepted an invalid or attack request (2xx),
showed another subject's order, died, or grew its RSS past the bound after warm-up.

Usage: soak.py --duration SECONDS --target NAME=HOST:PORT:PID:BANNER_FILE ... [options]
"""

import argparse
import asyncio
import base64
import collections
import json
import random
import re
import sys
import time

# Documentation address ranges (RFC 5737, RFC 3849): header values only, never contacted.
# Clients, flooders, enumerators and token guessers sit in distinct networks (/24, /64), so
# that the observer's per-network blocks of attackers do not also block the valid clients.
CLIENTS = (
    [f"192.0.2.{i}" for i in range(1, 255)]
    + [f"198.51.100.{i}" for i in range(1, 255)]
    + [f"203.0.113.{i}" for i in range(1, 255)]
    + [f"2001:db8:{i:x}::1" for i in range(1, 64)]
)
FLOODERS = [f"2001:db8:f100:{i}::1" for i in range(1, 5)]
ENUMERATORS = [f"2001:db8:e100:{i}::1" for i in range(1, 3)]
GUESSERS = [f"2001:db8:a100:{i}::{j}" for i in range(1, 9) for j in range(1, 9)]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Demo:
    """One demo under load: where it is, its tokens, and what it answered."""

    def __init__(self, name, host, port, pid, banner_file):
        self.name, self.host, self.port, self.pid = name, host, int(port), int(pid)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"{name}: refusing non-loopback host {host}")
        with open(banner_file, encoding="utf-8", errors="replace") as f:
            tokens = re.findall(r"^TOKEN=(\S+)$", f.read(), re.M)
        if len(tokens) < 3:
            raise SystemExit(f"{name}: expected 3 TOKEN= lines in {banner_file}, found {len(tokens)}")
        # alice: orders:read; alice: orders:read orders:write; admin: read, write, admin.
        self.read, self.write, self.admin = tokens[:3]
        self.subject = {self.read: "alice", self.write: "alice", self.admin: "admin"}
        self.status = collections.Counter()  # (category, status) -> count
        self.by_case = collections.Counter()  # (category, case, status) -> count
        self.transport = collections.Counter()  # (category, case, error) -> count
        self.invalid_accepted = collections.Counter()  # case -> count
        self.bola = 0
        self.reasons = collections.Counter()  # (category, status, problem type) -> count
        self.owners = {}  # order id -> subject, bounded
        self.stable = {}  # subject -> its first order ids
        self.last_delete = 0.0
        self.owner_order = collections.deque()
        self.latencies = []  # sampled seconds
        self.rss = []  # (elapsed s, KiB)
        self.sent = 0

    def remember(self, order_id, subject):
        self.owners[order_id] = subject
        self.owner_order.append(order_id)
        stable = self.stable.setdefault(subject, [])
        if len(stable) < 16:
            stable.append(order_id)
        while len(self.owner_order) > 20000:
            self.owners.pop(self.owner_order.popleft(), None)

    def stable_ids(self, subject):
        """The first 16 orders of a subject: the ones its valid traffic reads (a real client
        looks at a few orders of its own, it does not walk hundreds of ids a minute)."""
        return self.stable.get(subject) or [1]

    def deletable_id(self):
        """A recent order outside every subject's stable set."""
        keep = {i for ids in self.stable.values() for i in ids}
        for oid in reversed(self.owner_order):
            if oid not in keep:
                return oid
        return None


def tampered(token):
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "orders:read orders:write orders:admin zt:admin"
    return f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"


def unsigned(token):
    payload = token.split(".")[1]
    header = b64url(b'{"alg":"none","typ":"JWT"}')
    return f"{header}.{payload}."


def bad_signature(token):
    head, payload, sig = token.split(".")
    flipped = ("A" if sig[5] != "A" else "B")
    return f"{head}.{payload}.{sig[:5]}{flipped}{sig[6:]}"


def garbage_token(rng):
    return b64url(rng.randbytes(rng.randint(1, 60))) + "." + b64url(rng.randbytes(rng.randint(0, 80))) + "." + b64url(rng.randbytes(rng.randint(0, 70)))


class Req:
    __slots__ = ("category", "case", "method", "path", "headers", "body", "token", "expect")

    def __init__(self, category, case, method, path, token=None, body=None, headers=None, expect="4xx"):
        self.category, self.case, self.method, self.path = category, case, method, path
        self.token, self.body, self.headers, self.expect = token, body, headers or [], expect


def json_body(obj):
    return json.dumps(obj).encode()


def valid_request(demo, rng):
    """alice's everyday traffic (both of her tokens), and an admin delete at most once a
    second. The admin token is the enumerating attacker's (see attack_request): once the
    observer blocks it, the deletes answer 403 too."""
    r = rng.random()
    # Lists are rare: alice's list grows to the demo's 10 000-order cap (about 1 MB of JSON).
    if r < 0.1:
        query = rng.choice(["", "?limit=10", "?limit=100&cursor=abc", "?cursor=x%20y"])
        return Req("valid", "list", "GET", "/orders" + query, rng.choice([demo.read, demo.write]), expect="ok")
    if r < 0.35:
        order = {"item": rng.choice(["book", "pen", "caf\u00e9", "x" * 64]), "quantity": rng.randint(1, 1000)}
        if rng.random() < 0.3:
            order["note"] = "n" * rng.randint(0, 256)
        return Req("valid", "create", "POST", "/orders", demo.write, json_body(order),
                   [("content-type", "application/json")], expect="ok")
    if r < 0.45:
        # GraphQL over the same orders: a small page (alice's list is large), or a mutation.
        if rng.random() < 0.7:
            query = {"query": "query Recent($n: Int) { orders(limit: $n) { id item quantity } }", "variables": {"n": rng.randint(1, 5)}}
            token = rng.choice([demo.read, demo.write])
        else:
            query = {"query": 'mutation { createOrder(item: "gql", quantity: 3) { id owner } }'}
            token = demo.write
        return Req("valid", "graphql", "POST", "/graphql", token, json_body(query),
                   [("content-type", "application/json")], expect="ok")
    if r < 0.8:
        oid = rng.choice(demo.stable_ids("alice"))
        return Req("valid", "get-own", "GET", f"/orders/{oid}", rng.choice([demo.read, demo.write]),
                   expect="ok-or-404")
    now = time.monotonic()
    oid = demo.deletable_id()
    if oid is not None and now - demo.last_delete >= 1.0:
        demo.last_delete = now
        return Req("valid", "delete", "DELETE", f"/orders/{oid}", demo.admin, expect="ok-or-404")
    return Req("valid", "health", "GET", "/health", expect="ok")


def invalid_request(demo, rng):
    w = demo.write
    ct = [("content-type", "application/json")]
    cases = [
        ("quantity-0", "POST", "/orders", w, json_body({"item": "a", "quantity": 0}), ct),
        ("quantity-big", "POST", "/orders", w, json_body({"item": "a", "quantity": 5000}), ct),
        ("quantity-frac", "POST", "/orders", w, b'{"item":"a","quantity":1.5}', ct),
        ("mass-assignment", "POST", "/orders", w, json_body({"item": "a", "quantity": 1, "owner": "admin", "id": 7}), ct),
        ("item-long", "POST", "/orders", w, json_body({"item": "x" * 65, "quantity": 1}), ct),
        ("item-empty", "POST", "/orders", w, json_body({"item": "", "quantity": 1}), ct),
        ("duplicate-key", "POST", "/orders", w, b'{"item":"a","quantity":1,"quantity":9999}', ct),
        ("bad-json", "POST", "/orders", w, b'{"item":"a","quantity":', ct),
        ("deep-json", "POST", "/orders", w, b"[" * 200 + b"]" * 200, ct),
        ("no-body", "POST", "/orders", w, None, ct),
        ("media-type", "POST", "/orders", w, b"item=a&quantity=1", [("content-type", "application/x-www-form-urlencoded")]),
        ("no-media-type", "POST", "/orders", w, json_body({"item": "a", "quantity": 1}), []),
        ("too-large", "POST", "/orders", w, json_body({"item": "a", "quantity": 1, "note": "n" * 17000}), ct),
        ("limit-0", "GET", "/orders?limit=0", w, None, []),
        ("limit-text", "GET", "/orders?limit=abc", w, None, []),
        ("limit-twice", "GET", "/orders?limit=1&limit=2", w, None, []),
        ("unknown-param", "GET", "/orders?debug=true", w, None, []),
        ("cursor-long", "GET", "/orders?cursor=" + "c" * 65, w, None, []),
        ("id-pattern", "GET", "/orders/abc", w, None, []),
        ("id-long", "GET", "/orders/1234567890123", w, None, []),
        ("method-override", "POST", "/orders", w, json_body({"item": "a", "quantity": 1}), ct + [("x-http-method-override", "DELETE")]),
        ("method-override-query", "GET", "/orders?_method=DELETE", demo.admin, None, []),
        ("scope-write", "POST", "/orders", demo.read, json_body({"item": "a", "quantity": 1}), ct),
        ("scope-admin", "DELETE", "/orders/1", w, None, []),
        ("scope-inventory", "GET", "/zt/inventory", w, None, []),
        ("scope-controls", "POST", "/zt/controls/blocks", w, json_body({"kind": "subject", "value": "alice", "seconds": 60}), ct),
        ("dot-segments", "GET", "/orders/../zt/inventory", w, None, []),
        ("encoded-slash", "GET", "/orders%2f1", w, None, []),
        ("encoded-dots", "GET", "/orders/%2e%2e/health", w, None, []),
        ("double-slash", "GET", "//orders", w, None, []),
        ("matrix", "GET", "/orders;jsessionid=1", w, None, []),
        ("backslash", "GET", "/orders\\1", w, None, []),
        ("case", "GET", "/ORDERS", w, None, []),
        ("trailing-slash", "GET", "/orders/", w, None, []),
        ("unknown-route", "GET", "/admin", w, None, []),
        ("wrong-method", "PUT", "/orders", w, json_body({"item": "a", "quantity": 1}), ct),
        ("head", "HEAD", "/orders", w, None, []),
        ("two-auth", "GET", "/orders", None, None, [("authorization", f"Bearer {w}"), ("authorization", f"Bearer {w}")]),
        ("basic-auth", "GET", "/orders", None, None, [("authorization", "Basic YWxpY2U6c2VjcmV0")]),
    ]
    gql = [
        ("gql-unknown-field", {"query": "{ orders { id creditCard } }"}),
        ("gql-forbidden-field", {"query": "{ orders { id internalNote } }"}),
        ("gql-introspection", {"query": "{ __schema { types { name } } }"}),
        ("gql-deep", {"query": "{ orders { customer { orders { customer { orders { customer { orders { customer { id } } } } } } } } }"}),
        ("gql-alias-bomb", {"query": "{ orders(limit: 1) { " + " ".join(f"a{i}: id" for i in range(30)) + " } }"}),
        ("gql-fragment-cycle", {"query": "{ orders { ...A } } fragment A on Order { customer { orders { ...A } } }"}),
        ("gql-directive-flood", {"query": "{ orders { id" + " @skip(if: false)" * 8 + " } }"}),
        ("gql-bad-variable", {"query": "query Q($n: Int) { orders(limit: $n) { id } }", "variables": {"n": "ten"}}),
        ("gql-batch", [{"query": "{ orders { id } }"}] * 6),
        ("gql-parse-error", {"query": "{ orders { id "}),
    ]
    if rng.random() < 0.25:
        case, request = rng.choice(gql)
        return Req("invalid", case, "POST", "/graphql", w, json_body(request), ct)
    if rng.random() < 0.05:
        mutation = "mutation%20%7B%20createOrder(item%3A%20%22x%22%2C%20quantity%3A%201)%20%7B%20id%20%7D%20%7D"
        return Req("invalid", "gql-mutation-over-get", "GET", "/graphql?query=" + mutation, w)
    case, method, path, token, body, headers = rng.choice(cases)
    return Req("invalid", case, method, path, token, body, headers)


def attack_request(demo, rng, counter):
    r = rng.random()
    if r < 0.5:
        # Enumeration: a stolen admin token walks order ids from two addresses. Others'
        # orders must stay invisible (404: orders are only visible to their owner); the
        # observer blocks the token's subject and the addresses once it sees the pattern.
        counter["enum"] += 1
        oid = 1 + counter["enum"] % 20000
        return Req("attack", "enumerate", "GET", f"/orders/{oid}", demo.admin,
                   headers=[("x-forwarded-for", rng.choice(ENUMERATORS))], expect="own-or-4xx")
    cases = [
        ("garbage-token", garbage_token(rng)),
        ("unsigned-token", unsigned(demo.admin)),
        ("tampered-scope", tampered(demo.read)),
        ("bad-signature", bad_signature(demo.admin)),
        ("empty-bearer", ""),
        ("huge-token", "a" * 9000),
    ]
    case, token = rng.choice(cases)
    method, path = rng.choice([("GET", "/orders"), ("DELETE", "/orders/1"), ("GET", "/zt/inventory")])
    return Req("attack", case, method, path,
               headers=[("authorization", f"Bearer {token}"), ("x-forwarded-for", rng.choice(GUESSERS))])


def flood_request(demo, rng):
    addr = rng.choice(FLOODERS)
    if rng.random() < 0.5:
        return Req("flood", "anonymous", "GET", "/orders", headers=[("x-forwarded-for", addr)])
    return Req("flood", "garbage-token", "GET", "/orders",
               headers=[("x-forwarded-for", addr), ("authorization", f"Bearer {garbage_token(rng)}")])


def build(demo, rng, counter):
    r = rng.random()
    if r < 0.5:
        req = valid_request(demo, rng)
    elif r < 0.7:
        req = invalid_request(demo, rng)
    elif r < 0.85:
        req = attack_request(demo, rng, counter)
    else:
        req = flood_request(demo, rng)
    if not any(name == "x-forwarded-for" for name, _ in req.headers):
        req.headers.append(("x-forwarded-for", rng.choice(CLIENTS)))
    return req


class Connection:
    def __init__(self, demo):
        self.demo = demo
        self.reader = self.writer = None

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (OSError, asyncio.IncompleteReadError):
                pass
        self.reader = self.writer = None

    async def request(self, req, timeout):
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.demo.host, self.demo.port), timeout)
        lines = [f"{req.method} {req.path} HTTP/1.1", f"host: {self.demo.host}:{self.demo.port}",
                 "user-agent: zt-soak/1", "accept: application/json"]
        if req.token is not None:
            lines.append(f"authorization: Bearer {req.token}")
        lines += [f"{k}: {v}" for k, v in req.headers]
        body = req.body or b""
        if req.body is not None or req.method in ("POST", "PUT"):
            lines.append(f"content-length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        return await asyncio.wait_for(self.read_response(req.method), timeout)

    async def read_response(self, method):
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body


def judge(demo, req, status, body):
    demo.status[(req.category, status)] += 1
    demo.by_case[(req.category, req.case, status)] += 1
    ok = 200 <= status < 300
    if status >= 400 and body[:1] == b"{":
        try:
            doc = json.loads(body)
            # GraphQL denials carry the problem type in errors[0].extensions.type.
            kind = doc.get("type") or (doc.get("errors") or [{}])[0].get("extensions", {}).get("type", "?")
            reason = str(kind).removeprefix("urn:zt:problem:")
        except (ValueError, AttributeError, IndexError, TypeError):
            reason = "?"
        demo.reasons[(req.category, status, reason)] += 1
    if req.expect == "own-or-4xx" and status == 200:
        try:
            owner = json.loads(body).get("owner")
        except (ValueError, AttributeError):
            owner = None
        if owner != demo.subject[req.token]:
            demo.bola += 1
    elif req.expect == "4xx" and ok:
        demo.invalid_accepted[f"{req.category}/{req.case}"] += 1
    if req.case == "get-own" and status == 404:
        # Evicted by the demo's 10 000-order cap (or deleted): read newer ones from now on.
        oid = int(req.path.rsplit("/", 1)[1])
        stable = demo.stable.get(demo.subject[req.token], [])
        if oid in stable:
            stable.remove(oid)
    if req.case == "create" and status == 201:
        try:
            order = json.loads(body)
            demo.remember(order["id"], order["owner"])
        except (ValueError, KeyError, TypeError):
            pass


async def worker(demo, rng, deadline, budget, timeout):
    conn = Connection(demo)
    counter = collections.Counter()
    try:
        while time.monotonic() < deadline and budget[demo.name] > 0:
            budget[demo.name] -= 1
            req = build(demo, rng, counter)
            started = time.monotonic()
            try:
                status, body = await conn.request(req, timeout)
            except asyncio.TimeoutError:
                demo.transport[(req.category, req.case, "timeout")] += 1
                await conn.close()
                continue
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as e:
                demo.transport[(req.category, req.case, type(e).__name__)] += 1
                await conn.close()
                continue
            demo.sent += 1
            if rng.random() < 0.02:
                demo.latencies.append(time.monotonic() - started)
            judge(demo, req, status, body)
    finally:
        await conn.close()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def sampler(demos, started, deadline, interval):
    while True:
        elapsed = time.monotonic() - started
        parts = []
        for d in demos:
            kib = rss_kib(d.pid)
            d.rss.append((round(elapsed), kib))
            parts.append(f"{d.name} rss {kib / 1024 if kib else float('nan'):7.1f} MiB, {d.sent:8d} answered")
        print(f"[{elapsed:6.0f}s] " + " | ".join(parts), flush=True)
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def summarize(demo, duration, warmup, bound_mib):
    problems = []
    print(f"\n=== {demo.name} (pid {demo.pid}, 127.0.0.1:{demo.port})")
    classes = collections.Counter()
    for (_, status), n in demo.status.items():
        classes[f"{status // 100}xx"] += n
    total = sum(classes.values())
    print(f"answered {total} requests in {duration:.0f}s ({total / duration:.0f}/s); "
          f"p50 {percentile(demo.latencies, 50) * 1000:.1f} ms, p99 {percentile(demo.latencies, 99) * 1000:.1f} ms (client-side, sampled)")
    print("by class: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    for category in ("valid", "invalid", "attack", "flood"):
        row = sorted((s, n) for (c, s), n in demo.status.items() if c == category)
        print(f"  {category:8s} " + ", ".join(f"{s}: {n}" for s, n in row))
    for category in ("valid", "invalid", "attack", "flood"):
        top = sorted(((n, s, r) for (c, s, r), n in demo.reasons.items() if c == category), reverse=True)[:6]
        if top:
            print(f"  {category:8s} denials by reason: " + ", ".join(f"{s} {r}: {n}" for n, s, r in top))
    fivexx = {k: n for k, n in demo.by_case.items() if k[2] >= 500}
    print(f"5xx: {sum(fivexx.values())}" + (f"  {fivexx}" if fivexx else ""))
    if fivexx:
        problems.append("5xx answers")
    accepted = sum(demo.invalid_accepted.values())
    print(f"invalid/attack requests answered 2xx: {accepted}" + (f"  {dict(demo.invalid_accepted)}" if accepted else ""))
    if accepted:
        problems.append("invalid requests accepted")
    print(f"other subjects' orders shown (BOLA): {demo.bola}")
    if demo.bola:
        problems.append("BOLA")
    transport = sum(demo.transport.values())
    print(f"transport errors (connection closed/reset, timeouts): {transport}"
          + (f"  {dict(demo.transport)}" if transport else ""))
    timeouts = sum(n for k, n in demo.transport.items() if k[2] == "timeout")
    if timeouts:
        problems.append(f"{timeouts} timeouts")
    series = [(t, k) for t, k in demo.rss if k is not None]
    if len(series) != len(demo.rss) or not series:
        problems.append("process gone (no RSS)")
    print("RSS MiB every 10 s: " + " ".join(f"{k / 1024:.0f}" for _, k in series))
    after = [k for t, k in series if t >= warmup]
    if after:
        base = after[0]
        growth = (max(after) - base) / 1024
        print(f"RSS after warm-up ({warmup:.0f}s): start {base / 1024:.1f} MiB, max {max(after) / 1024:.1f} MiB, "
              f"end {after[-1] / 1024:.1f} MiB, max growth {growth:.1f} MiB (bound {bound_mib} MiB)")
        if growth > bound_mib:
            problems.append(f"RSS grew {growth:.1f} MiB > {bound_mib} MiB")
    print("result: " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
    return problems


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, required=True, help="seconds of load")
    ap.add_argument("--target", action="append", required=True, help="NAME=HOST:PORT:PID:BANNER_FILE")
    ap.add_argument("--connections", type=int, default=24, help="connections per demo (default 24)")
    ap.add_argument("--max-requests", type=int, default=5_000_000, help="request budget per demo")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    ap.add_argument("--interval", type=float, default=10.0, help="RSS sampling interval")
    ap.add_argument("--warmup", type=float, default=None, help="seconds before RSS growth counts (default min(60, duration/4))")
    ap.add_argument("--rss-bound-mib", type=float, default=64.0, help="allowed RSS growth after warm-up")
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args()
    if args.duration <= 0 or args.duration > 24 * 3600:
        raise SystemExit("--duration must be in (0, 86400]")
    demos = []
    for spec in args.target:
        name, rest = spec.split("=", 1)
        host, port, pid, banner = rest.split(":", 3)
        demos.append(Demo(name, host, port, pid, banner))
    warmup = args.warmup if args.warmup is not None else min(60.0, args.duration / 4)
    started = time.monotonic()
    deadline = started + args.duration
    budget = {d.name: args.max_requests for d in demos}
    rng = random.Random(args.seed)
    tasks = [asyncio.create_task(sampler(demos, started, deadline, args.interval))]
    for d in demos:
        for _ in range(args.connections):
            tasks.append(asyncio.create_task(worker(d, random.Random(rng.random()), deadline, budget, args.timeout)))
    await asyncio.gather(*tasks)
    duration = time.monotonic() - started
    problems = []
    for d in demos:
        problems += summarize(d, duration, warmup, args.rss_bound_mib)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

#!/usr/bin/env python3
"""Lists the file-to-file dependencies inside zt-core and prints their cycles.

A dependency is a path a file names that leads into another file of the crate:
`use crate::..`, `use super::..`, `use self::..`, `use child::..` (a child module of
the file), and inline paths that start with `crate::`, `super::` or `self::`
(`crate::policy::Mode` in a field type). With `--strict`, also inline paths that start
with a bare name (`compile::compile(..)` in a parent calling its child module): a parent
`mod.rs` whose children reach back for its shared helpers is then a cycle too. Each path
is resolved the way rustc resolves it: module by module, and through `use` re-exports, to
the file that *defines* the named item. So `use super::Target` in `observe/event.rs`
points at `observe/controls.rs` when `observe/mod.rs` only re-exports it, and at
`observe/mod.rs` when the item is defined there. Walking through a module on the way
(`crate::observe::controls::Target`) is not a dependency on that module's file.

Not counted: comments and doc comments (intra-doc links), string literals, and code
compiled only for tests (`#[cfg(test)]` items and the files they declare), because test
code may reach anywhere without shaping the crate's layering. `mod child;` itself is not
a dependency either (a parent may declare and re-export its children).

Output: every edge (with `--edges`), then every strongly connected component of more than
one file and, inside it, the pairs of files that name each other. Exit status 1 when any
cycle remains once the edges between `guard.rs` and `observed.rs` (the request lifecycle,
rewritten separately) are set aside; 0 otherwise.

Usage: scripts/import_cycles.py [--edges] [--why] [--strict] [path/to/zt-core/src]
  --edges  print every dependency first
  --why    under each cycle, the paths behind each of its edges
  --strict also count inline paths that start with a bare name (see above)
"""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict

ALLOWED_PAIR = frozenset({"guard.rs", "observed.rs"})

ITEM_KINDS = r"(?:struct|enum|union|trait|type|fn|const|static|mod|macro_rules!)"
ITEM_RE = re.compile(
    r"^(?:pub(?:\([^)]*\))?\s+)?(?:unsafe\s+|async\s+|const\s+(?=fn))*"
    + ITEM_KINDS
    + r"\s+([A-Za-z_][A-Za-z0-9_]*)",
    re.M,
)
# Inline paths `crate::..`, `super::..`, `self::..` (and `$crate::..` in macros).
INLINE_PATH_RE = re.compile(r"(?<![A-Za-z0-9_:.])\$?(crate|super|self)((?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")
# With --strict: any inline path `a::b..`, so also a name the module declares or imports
# (`compile::compile(..)` for a child module, `Target::Subject(..)`); external paths
# resolve to nothing.
STRICT_PATH_RE = re.compile(r"(?<![A-Za-z0-9_:.])\$?([A-Za-z_][A-Za-z0-9_]*)((?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")


def strip_comments_and_strings(src: str) -> str:
    """Blanks comments, string and char literals (keeps newlines and lengths)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', src[i:])) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"' or (c == "b" and src.startswith('b"', i) and (i == 0 or not src[i - 1].isalnum())):
            j = i + (2 if c == "b" else 1)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime/label ('a, 'static).
            m = re.match(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", src[i:])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(src: str, start: int) -> int:
    """The end of the item starting at `start`: its closing brace or semicolon."""
    depth = 0
    i = start
    while i < len(src):
        c = src[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and c == "}":
                return i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return len(src)


def drop_test_code(src: str) -> tuple[str, set[str]]:
    """Blanks every `#[cfg(test)]` item; returns the text and the test-only child modules."""
    test_children = set()
    # `cfg(test)` and `cfg(all(test, ..))`: compiled only for tests.
    cfg = re.compile(r"#\[cfg\((?:test|all\(\s*test\s*,[^\]]*\))\)\]")
    while m := cfg.search(src):
        rest = src[m.end() :]
        lead = len(rest) - len(rest.lstrip())
        body_start = m.end() + lead
        # Further attributes belong to the same item.
        while src.startswith("#[", body_start):
            body_start = item_end(src, body_start)
            rest = src[body_start:]
            body_start += len(rest) - len(rest.lstrip())
        decl = re.match(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", src[body_start:])
        if decl:
            test_children.add(decl.group(1))
        end = item_end(src, body_start)
        src = src[: m.start()] + re.sub(r"[^\n]", " ", src[m.start() : end]) + src[end:]
    return src, test_children


def inline_modules_as_self(src: str) -> str:
    """Inside an inline `mod x { .. }`, `super` is the file's own module: spell it `self `
    (same length) so paths resolve from the file; nested inline modules are not used."""
    top = top_level(src)
    for m in re.finditer(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{", src):
        if top[m.start()] == " ":
            continue
        end = item_end(src, m.start())
        block = re.sub(r"\bsuper(?=\s*::)", "self ", src[m.end() : end])
        src = src[: m.end()] + block + src[end:]
    return src


def top_level(src: str) -> str:
    """Only the text at brace depth 0 (items of the module itself)."""
    out, depth = [], 0
    for c in src:
        if c == "{":
            depth += 1
            out.append(" ")
        elif c == "}":
            depth -= 1
            out.append(" ")
        else:
            out.append(c if depth == 0 or c == "\n" else " ")
    return "".join(out)


def expand_use_tree(tree: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::{d as e}, self}` -> [(path segments, alias or None)]."""
    tree = re.sub(r"\s+", " ", tree).strip()

    def split_top(s: str) -> list[str]:
        parts, depth, cur = [], 0, []
        for c in s:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if c == "," and depth == 0:
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(c)
        parts.append("".join(cur))
        return [p.strip() for p in parts if p.strip()]

    def walk(prefix: list[str], s: str) -> list[tuple[list[str], str | None]]:
        s = s.strip()
        brace = s.find("{")
        if brace >= 0:
            head = [p.strip() for p in s[:brace].split("::") if p.strip()]
            inner = s[brace + 1 : s.rfind("}")]
            result = []
            for part in split_top(inner):
                result.extend(walk(prefix + head, part))
            return result
        alias = None
        m = re.match(r"(.*?)\s+as\s+([A-Za-z_][A-Za-z0-9_]*)$", s)
        if m:
            s, alias = m.group(1), m.group(2)
        segs = prefix + [p.strip() for p in s.split("::") if p.strip()]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        return [(segs, alias)]

    return walk([], tree)


USE_RE = re.compile(r"(?<![A-Za-z0-9_])use\s+([^;]+);")


class Module:
    def __init__(self, path: tuple[str, ...], file: str, text: str, children: set[str]):
        self.path = path
        self.file = file
        self.text = text
        self.children = children
        top = top_level(text)
        self.items = set(ITEM_RE.findall(re.sub(r"#\[[^\]]*\]", "", top)))
        self.aliases: dict[str, list[str]] = {}
        self.globs: list[list[str]] = []
        for m in USE_RE.finditer(text):
            if top[m.start()] == " ":
                continue  # inside a block: not an item of the module

            for segs, alias in expand_use_tree(m.group(1)):
                if not segs:
                    continue
                if segs[-1] == "*":
                    self.globs.append(segs[:-1])
                else:
                    self.aliases[alias or segs[-1]] = segs


def load(src_root: str) -> dict[tuple[str, ...], Module]:
    modules: dict[tuple[str, ...], Module] = {}

    def visit(path: tuple[str, ...], file: str) -> None:
        with open(os.path.join(src_root, file), encoding="utf-8") as f:
            raw = f.read()
        text, test_children = drop_test_code(strip_comments_and_strings(raw))
        text = inline_modules_as_self(text)
        declared = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", text, re.M))
        children = declared - test_children
        modules[path] = Module(path, file, text, children)
        base = os.path.dirname(file) if os.path.basename(file) in ("lib.rs", "mod.rs") else file[: -len(".rs")]
        for child in sorted(declared - test_children):
            for candidate in (os.path.join(base, child + ".rs"), os.path.join(base, child, "mod.rs")):
                if os.path.exists(os.path.join(src_root, candidate)):
                    visit(path + (child,), os.path.normpath(candidate))
                    break

    visit((), "lib.rs")
    return modules


def resolve(modules, here: tuple[str, ...], segs: list[str], depth: int = 0) -> str | None:
    """The file defining the item named by `segs` as seen from module `here`."""
    if depth > 20 or not segs:
        return None
    first, rest = segs[0].lstrip("$"), segs[1:]
    if first == "crate":
        mod = ()
    elif first == "super":
        mod = here[:-1]
        while rest and rest[0] == "super":
            mod, rest = mod[:-1], rest[1:]
    elif first == "self":
        mod = here
    elif here in modules and (
        first in modules[here].children or first in modules[here].aliases or first in modules[here].items
    ):
        mod, rest = here, segs
    else:
        return None  # an external crate or a std path
    while rest:
        name = rest[0]
        m = modules.get(mod)
        if m is None:
            return None
        if mod + (name,) in modules:
            mod, rest = mod + (name,), rest[1:]
            continue
        if name in m.aliases and name not in m.items:
            return resolve(modules, mod, m.aliases[name] + rest[1:], depth + 1)
        if name in m.items:
            return m.file
        for glob in m.globs:
            target = resolve(modules, mod, glob + [name] + rest[1:], depth + 1)
            if target:
                return target
        return m.file
    return modules[mod].file if mod in modules else None


def edges(modules, why: dict | None = None, strict: bool = False) -> dict[str, set[str]]:
    """File -> files it depends on; `why` (if given) collects the paths behind each edge."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path, m in modules.items():
        graph.setdefault(m.file, set())
        refs: list[list[str]] = []
        for u in USE_RE.finditer(m.text):
            for segs, _ in expand_use_tree(u.group(1)):
                if segs and segs[-1] == "*":
                    target_mod = resolve_module(modules, path, segs[:-1])
                    if target_mod is not None and modules[target_mod].file != m.file:
                        graph[m.file].add(modules[target_mod].file)
                        if why is not None:
                            why[(m.file, modules[target_mod].file)].add("::".join(segs))
                    continue
                refs.append(segs)
        text_without_uses = USE_RE.sub(lambda x: " " * len(x.group(0)), m.text)
        for p in (STRICT_PATH_RE if strict else INLINE_PATH_RE).finditer(text_without_uses):
            refs.append([p.group(1)] + [s.strip() for s in p.group(2).split("::") if s.strip()])
        for segs in refs:
            target = resolve(modules, path, segs)
            if target and target != m.file:
                graph[m.file].add(target)
                if why is not None:
                    why[(m.file, target)].add("::".join(segs))
    return graph


def resolve_module(modules, here, segs):
    if not segs:
        return None
    first, rest = segs[0], segs[1:]
    mod = {"crate": (), "super": here[:-1], "self": here}.get(first)
    if mod is None:
        mod, rest = here, segs
    for name in rest:
        if name == "super":
            mod = mod[:-1]
        elif mod + (name,) in modules:
            mod = mod + (name,)
        else:
            return None
    return mod


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(out)


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show_edges = "--edges" in sys.argv[1:]
    show_why = "--why" in sys.argv[1:]
    strict = "--strict" in sys.argv[1:]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zt-core", "src")
    modules = load(root)
    why: dict = defaultdict(set)
    graph = edges(modules, why, strict)
    if show_edges:
        for f in sorted(graph):
            for t in sorted(graph[f]):
                print(f"{f} -> {t}")
        print()
    components = sccs(graph)
    print(f"{len(modules)} files, {sum(len(v) for v in graph.values())} dependencies, {len(components)} cycle(s)")
    for comp in components:
        print(f"cycle ({len(comp)} files): {', '.join(comp)}")
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a] & members):
                if a < b and a in graph[b]:
                    print(f"  mutual: {a} <-> {b}")
        for a in comp:
            inside = sorted(graph[a] & members)
            print(f"  {a} -> {', '.join(inside)}")
            if show_why:
                for b in inside:
                    print(f"      {b}: {', '.join(sorted(why[(a, b)]))}")
    pruned = {f: {t for t in ts if not {f, t} == ALLOWED_PAIR} for f, ts in graph.items()}
    remaining = sccs(pruned)
    if remaining:
        print(f"FAIL: {len(remaining)} cycle(s) outside guard.rs <-> observed.rs")
        return 1
    print("OK: no cycle outside guard.rs <-> observed.rs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

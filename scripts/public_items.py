#!/usr/bin/env python3
"""Counts zt-core's public API from its rustdoc output.

Method: `cargo doc -p zt-core --no-deps` (default features, or the features given with
`--features`), then every HTML page rustdoc wrote for an item under `doc/zt_core/`: one
page per public module (`index.html`), struct, enum, trait, function, constant, static,
type alias and macro, at the path where users can name it. Redirect pages (rustdoc's
stubs for an item re-exported from a private module) are skipped, so an item reachable at
two paths counts once, where its page lives. Inside those pages it also counts the public
struct fields, enum variants and methods (their anchors), since a public field is API too.

Usage: scripts/public_items.py [--no-build] [--features a,b] [--list]
  CARGO_TARGET_DIR decides where the docs are (default: ./target).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

KINDS = ("struct", "enum", "trait", "fn", "constant", "static", "type", "macro", "union", "derive", "attr")


def main() -> int:
    args = sys.argv[1:]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    features = None
    if "--features" in args:
        features = args[args.index("--features") + 1]
    if "--no-build" not in args:
        cmd = ["cargo", "doc", "-p", "zt-core", "--no-deps", "--quiet"]
        if features:
            cmd += ["--features", features]
        doc_dir = os.path.join(target, "doc", "zt_core")
        if os.path.isdir(doc_dir):
            # Stale pages of items that no longer exist would be counted otherwise.
            subprocess.run(["rm", "-rf", doc_dir], check=True)
        subprocess.run(cmd, cwd=root, check=True)
    doc = os.path.join(target, "doc", "zt_core")
    pages: Counter[str] = Counter()
    members: Counter[str] = Counter()
    listing = []
    for dirpath, _, files in os.walk(doc):
        for name in sorted(files):
            if not name.endswith(".html"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if 'http-equiv="refresh"' in text or "<title>Redirection</title>" in text:
                continue
            rel = os.path.relpath(path, doc)
            if name == "index.html":
                kind = "mod"
            else:
                kind = name.split(".", 1)[0]
                if kind not in KINDS:
                    continue
            pages[kind] += 1
            listing.append(f"{kind:9} {rel}")
            members["field"] += len(re.findall(r'id="structfield\.', text))
            members["variant"] += len(re.findall(r'id="variant\.', text))
            # Inherent methods (trait-impl methods are `class="method trait-impl"`).
            members["inherent method"] += len(re.findall(r'<section id="method\.[^"]*" class="method"', text))
    if "--list" in args:
        print("\n".join(sorted(listing)))
    total = sum(pages.values())
    print(f"public item pages: {total} ({', '.join(f'{k} {v}' for k, v in sorted(pages.items()))})")
    print(f"inside them: {', '.join(f'{k} {v}' for k, v in sorted(members.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The layer check: every path from the library's code into the crate reaches its own
layer or an earlier row of the table, never a later one.

The order is the "Layers" table of docs/ARCHITECTURE.md, read as written there (one list,
in one place: the page explains it, this enforces it). Its second column names the
modules of each row in backticks: `bus/` is a directory, `auth/authority.rs` one file,
`frame` a module either way. A file belongs to the row whose module is the longest prefix
of its own path, so `safety/operator.rs` can sit above the rest of `safety/`.

What is checked, in every file of the library (src/**/*.rs but src/bin/ and src/cli/,
which are the `hive` binary's own crate and reach the library only through its public
API): every `crate::...` path in code, in `use` lines, groups (`crate::{a, b::c}`) and
inline (`crate::ops::queue::QueueConfig` in a type); and `super::...` paths, resolved
from the file. Names the crate root re-exports (`crate::Bus`) count as the module they
come from. Comments, doc comments and string literals are not code and are skipped, so a
doc link may point anywhere. `#[cfg(test)]` modules are not exempt. lib.rs, the crate
root, is.

Not resolved: paths without `crate`/`super` (a module naming its own children, as in
`mod operator; pub use operator::SafetyOperator;`: the module tree is ownership, not
use), `self::`, and `$crate` in macros. `super` inside an inline `mod x { }` is resolved
as if written at the file's top, one level too high, which can only miss a violation
at a row boundary, never report a false one.

Usage: python3 .ci/layers.py [repo root]. Exit status 1 with one line per violation
(file:line, both layers, the path); 2 when the table cannot be read or a file has no row.
"""

import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
SRC = os.path.join(ROOT, "src")
# Not the library: the `hive` binary's crate, where `crate::` means the binary.
OUTSIDE = ("bin", "cli")


def fail(msg):
    print(f"layers: {msg}", file=sys.stderr)
    sys.exit(2)


def read_table():
    """[(rank, name, [module path tuple, ...])] from the Layers table."""
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"^## Layers\s*$(.*?)^## ", text, re.M | re.S)
    if not m:
        fail(f"no '## Layers' section in {DOC}")
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        head = re.match(r"^(\d+)\s+(.+)$", cells[0])
        if not head:
            continue
        mods = []
        for tok in re.findall(r"`([^`]+)`", cells[1]):
            tok = tok.strip()
            if tok.startswith("src/"):
                tok = tok[4:]
            if tok.endswith(".rs"):
                tok = tok[:-3]
            if " " in tok or "." in tok or tok.split("/")[0] in OUTSIDE:
                continue  # prose, the binary and the like
            parts = tuple(p for p in tok.strip("/").split("/") if p)
            if parts and parts[-1] == "mod":
                parts = parts[:-1]
            if parts:
                mods.append(parts)
        rows.append((int(head.group(1)), head.group(2).strip(), mods))
    if not rows:
        fail(f"the Layers table of {DOC} has no rows")
    return rows


def layer_of(path, rows):
    """The row whose module is the longest prefix of `path` (a tuple), or None."""
    best = None
    for rank, name, mods in rows:
        for mod in mods:
            if path[: len(mod)] == mod and (best is None or len(mod) > best[0]):
                best = (len(mod), rank, name)
    return None if best is None else best[1:]


def module_path(rel):
    """src-relative file -> module path: bus/mod.rs -> (bus,), bus/channel.rs ->
    (bus, channel)."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip(text):
    """Comments and string/char literals blanked to spaces; newlines kept, so that
    offsets still give line numbers."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif re.match(r'b?r#*"', text[i:i + 12]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i:j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), else a lifetime or label.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", text[i:])
            if m:
                out.append(blank(m.group(0)))
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def use_tree(text, i):
    """Parses a path tree at `text[i:]` (after `crate::` or `super::`): returns
    ([segment list, ...], end). `a::b`, `a::{b, c::d}`, `a::*`, `{a, b}`, `a as x`."""
    ws = re.compile(r"\s*")
    i = ws.match(text, i).end()
    if i < len(text) and text[i] == "{":
        paths, i = [], i + 1
        while True:
            i = ws.match(text, i).end()
            if i >= len(text) or text[i] == "}":
                return paths, i + 1
            sub, i = use_tree(text, i)
            paths += sub
            i = ws.match(text, i).end()
            if i < len(text) and text[i] == ",":
                i += 1
    m = re.compile(IDENT).match(text, i)
    if not m:
        return [[]], i  # `*` or nothing usable
    seg, i = m.group(0), m.end()
    alias = re.compile(r"\s+as\s+" + IDENT).match(text, i)
    if alias:
        return [[seg]], alias.end()
    j = ws.match(text, i).end()
    if text.startswith("::", j):
        j = ws.match(text, j + 2).end()
        if j < len(text) and (text[j] == "{" or re.compile(IDENT).match(text, j)):
            subs, i = use_tree(text, j)
            return [[seg] + s for s in subs], i
    return [[seg]], i


def reexports():
    """Names lib.rs re-exports at the crate root -> the module they come from."""
    names = {}
    lib = strip(open(os.path.join(SRC, "lib.rs"), encoding="utf-8").read())
    for m in re.finditer(r"pub\s+use\s+(" + IDENT + r")\s*::", lib):
        for path in use_tree(lib, m.end())[0]:
            if path:
                names[path[-1]] = [m.group(1)] + path
    return names


def main():
    rows = read_table()
    roots = reexports()
    violations, files, unplaced, seen = [], 0, [], set()
    for dirpath, _, names in os.walk(SRC):
        for fname in sorted(names):
            if not fname.endswith(".rs"):
                continue
            full = os.path.join(dirpath, fname)
            rel = os.path.relpath(full, SRC)
            if rel.split(os.sep)[0] in OUTSIDE or rel == "lib.rs":
                continue
            me = module_path(rel)
            mine = layer_of(me, rows)
            if mine is None:
                unplaced.append(rel)
                continue
            files += 1
            raw = open(full, encoding="utf-8").read()
            code = strip(raw)
            lines = raw.splitlines()
            for m in re.finditer(r"(?<![$\w])(crate|super)\s*::", code):
                paths, _ = use_tree(code, m.end())
                for path in paths:
                    if m.group(1) == "super":
                        # `super` of a file is its parent module; of a mod.rs, the
                        # parent of the directory's module.
                        base = list(me[:-1])
                        while path and path[0] == "super":
                            base, path = base[:-1], path[1:]
                        target = base + path
                    else:
                        target = path
                    if target and target[0] in roots:
                        target = roots[target[0]] + target[1:]
                    theirs = layer_of(tuple(target), rows)
                    if theirs is None or theirs[0] <= mine[0]:
                        continue
                    line = code.count("\n", 0, m.start()) + 1
                    if (rel, line, tuple(target)) in seen:
                        continue
                    seen.add((rel, line, tuple(target)))
                    violations.append(
                        f"src/{rel}:{line}: layer {mine[0]} ({mine[1]}) uses "
                        f"crate::{'::'.join(target)} of layer {theirs[0]} ({theirs[1]}): "
                        f"{lines[line - 1].strip()}"
                    )
    if unplaced:
        fail("no row of the Layers table (docs/ARCHITECTURE.md) holds "
             + ", ".join("src/" + u for u in unplaced))
    for v in violations:
        print(v)
    if violations:
        print(f"layers: {len(violations)} import(s) from a higher layer; "
              "the order is the Layers table of docs/ARCHITECTURE.md", file=sys.stderr)
        sys.exit(1)
    print(f"layers: {files} files, no path reaches a later row")


if __name__ == "__main__":
    main()

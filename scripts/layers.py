#!/usr/bin/env python3
"""The layering check for engine/src (run by .ci/run).

Reads the `crate::`, `super::` and `self::` paths of every library file (test modules and
test-only files left out), builds the import graph between files, and reports:

- an import that runs from a lower layer up to a higher one (LAYERS below);
- an import circle between files (a parent module using its own children is not one);
- a face (the CLI `app`) importing through a module that is not public, that is, using
  more than the public API;
- a library file over MAX_LINES lines (its `#[cfg(test)]` module not counted).

`python3 scripts/layers.py` prints the layers with their files and edges, then the
problems. Problems listed in scripts/layers.allow (one per line, as printed, without the
line number) are known debts being paid off: they are reported but do not fail. The check
fails (exit 1) on any problem not in that list, and on a listed problem that is gone (take
it off the list, so that it cannot come back). `--quiet` prints only the problems.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "engine", "src")
ALLOW = os.path.join(HERE, "layers.allow")
MAX_LINES = 600

# Bottom to top; a file may import only from its own layer or the layers below it.
LAYERS = [
    ("floor", ["ids", "state", "events", "signal", "error", "limit", "redact", "bounds",
               "log_level", "clock"]),
    ("jobs and workflows", ["job", "context", "registry", "artifact", "workflow", "schedule",
                            "private", "resource"]),
    ("stores, executors, worker", ["store", "executor", "worker", "telemetry", "fleet"]),
    ("runtime", ["orchestrator"]),
    ("faces", ["app", "http", "guide", "executor_conformance", "store_conformance"]),
]
FACES = {"app", "http"}

LAYER_OF = {m: i for i, (_, ms) in enumerate(LAYERS) for m in ms}


def load():
    files = {}
    for d, _, fs in os.walk(ROOT):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib"):
                parts = parts[:-1]
            files[tuple(parts)] = (rel, open(path, encoding="utf-8").read())
    return files


def is_test_file(mod):
    return bool(mod) and (mod[-1] == "tests" or mod[-1].endswith("_tests"))


def library_text(src):
    """The file without comments, string contents and its `#[cfg(test)]` items."""
    cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", src, re.M)
    if cut:
        src = src[: cut.start()]
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(?:[^"\\]|\\.)*"', '""', src)
    return src


def library_lines(src):
    cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", src, re.M)
    return src[: cut.start()].count("\n") if cut else src.count("\n")


def visibility(files):
    """(parent module, child name) -> whether the child module is declared `pub`."""
    vis = {}
    for mod, (_, src) in files.items():
        for m in re.finditer(r"^\s*(pub(?:\(([^)]*)\))?\s+)?mod\s+(\w+)\s*;", src, re.M):
            public = m.group(1) is not None and m.group(2) is None
            vis[(mod, m.group(3))] = public
    return vis


def resolve(files, mod, segs):
    """The file a path leads to, and the modules it passes through."""
    if segs[0] == "crate":
        cur, segs = [], segs[1:]
    elif segs[0] == "super":
        cur, segs = list(mod[:-1]), segs[1:]
    elif segs[0] == "self":
        cur, segs = list(mod), segs[1:]
    else:
        return None, []
    while segs and segs[0] == "super":
        cur, segs = cur[:-1], segs[1:]
    start = tuple(cur)
    passed = []
    for s in segs:
        cand = tuple(cur + [s])
        if cand in files:
            passed.append((tuple(cur), s))
            cur.append(s)
        else:
            break
    return (tuple(cur), passed) if tuple(cur) != start or start in files else (None, [])


def graph(files):
    edges = {m: {} for m in files if not is_test_file(m)}
    for mod in edges:
        src = library_text(files[mod][1])
        for m in re.finditer(r"\b((?:crate|super|self)(?:\s*::\s*(?:super|\w+))+)", src):
            segs = [s.strip() for s in m.group(1).split("::")]
            target, passed = resolve(files, mod, segs)
            if target is None or target == mod or is_test_file(target):
                continue
            line = src[: m.start()].count("\n") + 1
            edges[mod].setdefault(target, (line, passed))
    return edges


def name(mod):
    return "/".join(mod) or "lib"


def top(mod):
    return mod[0] if mod else None


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
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

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    quiet = "--quiet" in sys.argv
    files = load()
    vis = visibility(files)
    edges = graph(files)
    problems = []

    for mod in edges:
        if mod and top(mod) not in LAYER_OF:
            problems.append(f"{files[mod][0]}: module `{top(mod)}` has no layer in scripts/layers.py")

    # Up-going imports.
    for mod, targets in sorted(edges.items()):
        if not mod:
            continue
        for t, (line, _) in sorted(targets.items()):
            if not t or top(t) == top(mod):
                continue
            lm, lt = LAYER_OF.get(top(mod), -1), LAYER_OF.get(top(t), -1)
            if lt > lm:
                problems.append(
                    f"{files[mod][0]}: imports {name(t)} ({LAYERS[lt][0]}) "
                    f"from a lower layer ({LAYERS[lm][0]})"
                )

    # Circles (a parent module using its own children does not make one).
    acyclic = {
        m: {t for t in ts if not (len(t) == len(m) + 1 and t[: len(m)] == m)}
        for m, ts in edges.items()
        if m
    }
    for comp in sccs(sorted(acyclic), acyclic):
        problems.append("import circle: " + " -> ".join(name(m) for m in comp))

    # Faces use only the public API.
    for mod, targets in sorted(edges.items()):
        if top(mod) not in FACES:
            continue
        for t, (line, passed) in sorted(targets.items()):
            if top(t) in FACES or not t:
                continue
            private = [f"{name(p)}::{c}" if p else c for p, c in passed if not vis.get((p, c), False)]
            if private:
                problems.append(
                    f"{files[mod][0]}: reaches {name(t)} through private module "
                    f"`{private[0]}` (use the public API)"
                )

    # Size.
    for mod, (rel, src) in sorted(files.items()):
        if is_test_file(mod):
            continue
        n = library_lines(src)
        if n > MAX_LINES:
            problems.append(f"{rel}: over {MAX_LINES} library lines")

    if not quiet:
        for i, (label, mods) in enumerate(LAYERS):
            print(f"layer {i} ({label}): {', '.join(mods)}")
        print()
        for mod in sorted(m for m in edges if m):
            outs = sorted(name(t) for t in edges[mod] if t and top(t) != top(mod))
            if outs:
                print(f"  {name(mod):32} -> {', '.join(outs)}")
        print()
    allowed = set()
    if os.path.exists(ALLOW):
        for raw in open(ALLOW, encoding="utf-8"):
            raw = raw.strip()
            if raw and not raw.startswith("#"):
                allowed.add(raw)
    found = sorted(set(problems))
    new = [p for p in found if p not in allowed]
    known = [p for p in found if p in allowed]
    gone = sorted(allowed - set(found))
    n_edges = sum(len(t) for t in edges.values())
    print(
        f"layers: {len(files)} files, {n_edges} imports between files; "
        f"{len(new)} new problems, {len(known)} known (scripts/layers.allow), {len(gone)} paid off"
    )
    for p in new:
        print(f"  NEW  {p}")
    for p in gone:
        print(f"  GONE {p}  (take it off scripts/layers.allow)")
    for p in known:
        print(f"  known {p}")
    return 1 if new or gone else 0

if __name__ == "__main__":
    sys.exit(main())

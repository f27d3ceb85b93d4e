#!/usr/bin/env python3
"""The module graph of a crate's `src/`: which modules name which, and the cycles among them.

    scripts/module-graph.py [crates/theater/src]

Prints each module with the modules it uses (`crate::x` or `super::x` paths), then every
strongly connected component of more than one module: a cycle a reader has to hold in mind
whole. `lib.rs` (the composition of re-exports) is left out.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "crates/theater/src")
modules = {}
for path in sorted(root.rglob("*.rs")):
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    name = "/".join(parts)
    if name == "lib":
        continue
    text = path.read_text()
    # Test modules may reach anywhere; they are not part of the layering.
    text = text.split("#[cfg(test)]")[0]
    uses = set()
    for m in re.finditer(r"\b(crate|super)::([a-z_]+)(?:::([a-z_]+))?", text):
        kind, first, second = m.groups()
        if kind == "super" and "/" in name:
            parent = name.rsplit("/", 1)[0]
            sibling = root / parent / f"{first}.rs"
            # `super::item` is the parent module itself unless it names a sibling module.
            target = f"{parent}/{first}" if sibling.exists() else parent
        elif first == "handlers" and second and (root / "handlers" / f"{second}.rs").exists():
            target = f"handlers/{second}"
        else:
            target = first
        uses.add(target)
    # A module uses the submodules it declares (and re-exports from).
    for m in re.finditer(r"^\s*(?:pub(?:\([a-z]+\))? )?mod ([a-z_]+);", text, re.M):
        uses.add(f"{name}/{m.group(1)}")
    modules[name] = uses
for name, uses in modules.items():
    uses = {u for u in uses if u in modules and u != name}
    modules[name] = uses
    print(f"{name}: {' '.join(sorted(uses))}")

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in modules[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on.discard(w)
            scc.append(w)
            if w == v:
                break
        sccs.append(sorted(scc))


sys.setrecursionlimit(10000)
for v in modules:
    if v not in index:
        visit(v)
cycles = [s for s in sccs if len(s) > 1]
print()
if not cycles:
    print("no cycles")
for scc in cycles:
    print(f"cycle of {len(scc)} modules: {' '.join(scc)}")

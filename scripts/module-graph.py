#!/usr/bin/env python3
"""The module graph of `crates/theater/src`: which modules name which, the cycles among them,
and whether every edge keeps to the layers below.

    scripts/module-graph.py [--check] [--root DIR] [--handlers-root DIR]

Prints each module with the modules it uses (`crate::x` or `super::x` paths, comments aside),
then every strongly connected component of more than one module (a cycle a reader has to hold
in mind whole), then the layers of LAYERS and any edge that climbs from a layer to one above
it. It also checks that the handler families of `crates/theater-handlers/src` name no module
of the runtime but `theater::plugin`. With `--check` it exits 1 on such an edge, such a name or
a module no layer lists (the test suite runs it). `lib.rs` (the composition of re-exports) is
left out. `--root` and `--handlers-root` point it at other trees (its own test plants edges in
copies).
"""
import pathlib
import re
import sys

# Bottom to top. A module may use its own layer and those listed before it. Modules within a
# layer may name each other (the scheduler is one such cycle; see docs/architecture.md).
LAYERS = [
    ("models and config", "sync memo payload recordable wit bindings describe supervision "
     "deadlock log_rate family manifest attenuation error"),
    ("chain recorder", "replay_log recording"),
    ("wasm engine", "engine"),
    ("services contract", "services"),
    ("instance and linking", "actor component host"),
    ("scheduler and services", "cell shared lifecycle messaging replay"),
    ("actor-model handler families", "handlers handlers/message_server handlers/root "
     "handlers/runtime handlers/supervisor"),
    ("composition root and public API", "runtime recovery plugin"),
]

args = sys.argv[1:]
check = "--check" in args
repo = pathlib.Path(__file__).resolve().parent.parent


def option(name, default):
    """The path after `name` in the arguments, or `default`."""
    if name in args:
        return pathlib.Path(args[args.index(name) + 1])
    return default


root = option("--root", repo / "crates/theater/src")
handlers_root = option("--handlers-root", repo / "crates/theater-handlers/src")
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
    # Comments may point anywhere (a doc saying who calls this); only code makes an edge.
    text = re.sub(r"//[^\n]*", "", text)
    uses = set()
    # `$crate::` in a macro is the path its callers outside see, not an edge.
    for m in re.finditer(r"(?<!\$)\b(crate|super)::([a-z_]+)(?:::([a-z_]+))?", text):
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

layer_of = {m: i for i, (_, ms) in enumerate(LAYERS) for m in ms.split()}
print()
problems = []
for i, (name, ms) in enumerate(LAYERS):
    print(f"layer {i + 1}, {name}: {ms}")
for name in sorted(modules):
    if name not in layer_of:
        problems.append(f"module {name} is in no layer: add it to LAYERS in {sys.argv[0]}")
        continue
    for used in sorted(modules[name]):
        if used in layer_of and layer_of[used] > layer_of[name]:
            problems.append(
                f"{name} (layer {layer_of[name] + 1}) uses {used} (layer {layer_of[used] + 1}, above it)"
            )

# The handler families outside the runtime use its public plug-in API alone: `theater::plugin`
# and what it re-exports, never another module of the runtime.
for path in sorted(handlers_root.rglob("*.rs")):
    text = re.sub(r"//[^\n]*", "", path.read_text().split("#[cfg(test)]")[0])
    named = set(re.findall(r"(?<![:\w])theater::([A-Za-z_][A-Za-z_0-9]*)", text))
    named |= {"{...}" for _ in re.findall(r"(?<![:\w])theater::\{", text)}
    for item in sorted(named - {"plugin"}):
        problems.append(
            f"{path.relative_to(handlers_root.parent)} names theater::{item}: handler families "
            "use only theater::plugin (grow the plug-in API instead)"
        )

print()
print("\n".join(problems) if problems else "every edge keeps to its own layer or those below")
if check and problems:
    sys.exit(1)

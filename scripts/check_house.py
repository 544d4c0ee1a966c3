#!/usr/bin/env python3
"""Two house rules that rustc and clippy do not check, for every crate in
crates/ (run by `make lint`; exit 1 names what broke them):

1. No module circles inside a crate. Edges are read from `crate::` paths (use
   lines and inline paths, test modules left out); a root re-export
   (`crate::Name`) counts as an edge to the module that defines `Name`. A
   strongly connected component of more than one module is a circle.
2. No declared dependency that the crate's code never names. A
   `[dependencies]` entry must appear as `name::`, `name!` or `use name` in
   src/ (or build.rs). Crates pulled in only for a feature of another one are
   listed in KEPT with the reason.

`--graph CRATE` prints that crate's module graph (how a reviewer checks rule 1).
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (crate dir, dependency): why it is declared though no code names it.
KEPT: dict[tuple[str, str], str] = {}


def module_name(src: str, path: str) -> str:
    parts = os.path.relpath(path, src)[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def rust_files(src: str) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs")]


def defined_names(files: dict[str, str]) -> dict[str, str]:
    """Item name -> the module that defines it (for `crate::Name` re-exports)."""
    names = {}
    item = re.compile(r"^\s*pub(?:\([^)]*\))?\s+(?:async\s+)?(?:fn|struct|enum|trait|type|const|static|mod)\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)
    for module, text in files.items():
        for name in item.findall(text):
            names.setdefault(name, module)
    return names


def module_graph(src: str) -> dict[str, set[str]]:
    files = {}
    for path in rust_files(src):
        text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
        files[module_name(src, path)] = text.split("#[cfg(test)]")[0]
    modules = set(files)
    defined = defined_names(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, text in files.items():
        targets = []
        for group in re.findall(r"crate::\{([^}]*(?:\{[^}]*\}[^}]*)*)\}", text):
            targets += [t.strip() for t in re.split(r",\s*(?![^{]*\})", group)]
        targets += re.findall(r"crate::([A-Za-z_][A-Za-z0-9_:]*)", text)
        for target in targets:
            segments = [s for s in target.split("{")[0].split("::") if s]
            if not segments:
                continue
            found = next(
                ("::".join(segments[:i]) for i in range(len(segments), 0, -1) if "::".join(segments[:i]) in modules),
                defined.get(segments[0]),
            )
            if found and found != module and module != "crate" and found != "crate":
                # A module may use its own children; that is no circle.
                if not found.startswith(module + "::"):
                    graph[module].add(found)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def dependencies(manifest: str) -> list[str]:
    names, section = [], None
    for line in open(manifest, encoding="utf-8"):
        header = re.match(r"^\[(.*)\]\s*$", line)
        if header:
            section = header.group(1)
        elif section == "dependencies":
            entry = re.match(r"^([A-Za-z0-9_-]+)\s*=", line)
            if entry:
                names.append(entry.group(1))
    return names


def unused_dependencies(crate: str) -> list[str]:
    places = [p for p in (os.path.join(crate, "src"), os.path.join(crate, "build.rs")) if os.path.exists(p)]
    unused = []
    for dep in dependencies(os.path.join(crate, "Cargo.toml")):
        if (os.path.basename(crate), dep) in KEPT:
            continue
        name = dep.replace("-", "_")
        pattern = rf"\b{name}(::|!)|use {name}\b"
        if subprocess.run(["grep", "-rqE", pattern, *places]).returncode != 0:
            unused.append(dep)
    return unused


def main() -> int:
    crates = sorted(os.path.join(ROOT, "crates", c) for c in os.listdir(os.path.join(ROOT, "crates")))
    if sys.argv[1:2] == ["--graph"]:
        graph = module_graph(os.path.join(ROOT, "crates", sys.argv[2], "src"))
        for module in sorted(graph):
            if graph[module]:
                print(f"{module} -> {', '.join(sorted(graph[module]))}")
        print("circles:", circles(graph) or "none")
        return 0
    problems = []
    for crate in crates:
        name = os.path.basename(crate)
        for circle in circles(module_graph(os.path.join(crate, "src"))):
            problems.append(f"crates/{name}: modules in a circle: {' <-> '.join(circle)}")
        for dep in unused_dependencies(crate):
            problems.append(f"crates/{name}: dependency `{dep}` is declared but never named in its code")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"house: {len(crates)} crates, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check the package's imports: every edge points down the layers, no module cycle, ROS only in ``ros/``, and
tests that need ROS carry the ``ros`` marker (so ``scripts/test.sh -m "not ros"`` runs without ROS).

Usage: ``python scripts/check_imports.py [REPO]``: one line per finding, then a summary; exit 1 on any finding.
The layer order (``LAYERS``, top to bottom) is data: a module belongs to the longest entry that prefixes its
dotted path inside the package. A module may import its own entry's modules and those of lower layers; entries
in one layer are siblings and import neither each other nor upwards. Every import counts, also function-local and
``TYPE_CHECKING`` ones: a cycle hidden from the interpreter is still a cycle in the design. docs/architecture.md
draws the same order.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "semantic_depth_ros"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # the console entry point; loads commands by name
    ("commands",),  # one module per sub-command
    ("ros",),  # the only users of rclpy and ROS message types
    ("replay",),  # infer-bag: bags in, the node's outputs out
    ("pipeline",),  # per camera: estimator outputs -> stages -> message fields, for the node and replay
    ("training",),
    ("evaluation",),
    ("temporal", "roadscale"),  # per-camera stages after the estimator (ROS-free)
    ("pipeline.stages",),  # the stage contract (FrameStage, FrameContext) that the stages implement
    ("data", "inference"),  # datasets, rosbags, file formats; the estimator (neither imports the other)
    ("messages",),  # the message core: output message fields, input image decoding
    ("geometry",),  # camera models, letterbox, lens distortion, back-projection
    ("model",),  # networks, bins, checkpoints
    ("devices", "config_io", "resources", "files", "cache", "labels", "cameras", "limits"),
    ("errors", "__init__"),  # ``__init__``: the package's own ``__init__.py`` (its version)
)
ROS_MODULES = ("rclpy", "rosidl_runtime_py", "tf2_ros", "cv_bridge", "message_filters", "image_geometry",
               "launch_ros", "launch_testing")
ROS_SUFFIXES = ("_msgs", "_interfaces")  # ROS message packages: sensor_msgs, rcl_interfaces, ...
ROS_TEST_MARKER = "ros"


@dataclass(frozen=True)
class Import:
    """One import statement's target module (absolute dotted name) and its line."""

    target: str
    line: int


def module_name(path: Path, root: Path) -> str:
    """``root/semantic_depth_ros/a/b.py`` -> ``semantic_depth_ros.a.b`` (a package's ``__init__`` -> the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(tree: ast.AST, name: str, is_package: bool, known: frozenset[str]) -> list[Import]:
    """Every import in ``tree`` (module ``name``) as absolute module names; ``from pkg import sub`` names the
    submodule ``pkg.sub`` when ``known`` has it, else ``pkg``."""
    base = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                module = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.append(Import(candidate if candidate in known else module, node.lineno))
    return sorted(found, key=lambda item: item.line)


def is_ros_module(target: str) -> bool:
    """Whether ``target`` is rclpy, a ROS library or a ROS message/interface package."""
    top = target.split(".")[0]
    return top in ROS_MODULES or top.endswith(ROS_SUFFIXES)


def layer_entry(relative: str) -> str | None:
    """The ``LAYERS`` entry of a module path inside the package (``geometry.undistort``), or None."""
    entries = [entry for layer in LAYERS for entry in layer
               if relative == entry or relative.startswith(entry + ".")]
    return max(entries, key=len) if entries else None


def layer_index(entry: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if entry in layer)


def _relative(module: str) -> str:
    """``semantic_depth_ros.a.b`` -> ``a.b``; the package itself -> ``__init__``."""
    return "__init__" if module == PACKAGE else module[len(PACKAGE) + 1:]


def _inside(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + ".")


def package_modules(root: Path) -> dict[str, Path]:
    """Every module of the package below ``root``: dotted name -> file."""
    return {module_name(path, root): path for path in sorted((root / PACKAGE).rglob("*.py"))}


def package_edges(root: Path) -> tuple[dict[str, list[Import]], list[str]]:
    """Imports of package modules that stay inside the package, and findings for ROS imports outside ``ros/``."""
    modules = package_modules(root)
    known = frozenset(modules)
    edges: dict[str, list[Import]] = {}
    findings: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = imports_of(tree, name, _is_package(path), known)
        edges[name] = _unique(item for item in found if _inside(item.target))
        if layer_entry(_relative(name)) != "ros":
            findings.extend(f"ROS outside ros/: {path.relative_to(root)}:{item.line} imports {item.target}"
                            for item in found if is_ros_module(item.target))
    return edges, findings


def layer_findings(root: Path, edges: dict[str, list[Import]]) -> list[str]:
    """Modules outside ``LAYERS`` and imports that point up or sideways."""
    modules = package_modules(root)
    findings: list[str] = []
    for name, imports in edges.items():
        path = modules[name].relative_to(root)
        entry = layer_entry(_relative(name))
        if entry is None:
            findings.append(f"unplaced: {path} is in no entry of LAYERS (scripts/check_imports.py)")
            continue
        for item in imports:
            target_entry = layer_entry(_relative(item.target))
            if target_entry is None or target_entry == entry:
                continue
            if layer_index(target_entry) < layer_index(entry):
                findings.append(f"upward import: {path}:{item.line} imports {item.target} "
                                f"({entry} is below {target_entry})")
            elif layer_index(target_entry) == layer_index(entry):
                findings.append(f"sibling import: {path}:{item.line} imports {item.target} "
                                f"({entry} and {target_entry} share a layer)")
    return findings


def cycles(edges: dict[str, Iterable[str]]) -> list[list[str]]:
    """The module cycles: strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(edges.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in edges:
                    continue
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges.get(successor, ()))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def _marks_ros(decorators: Iterable[ast.expr]) -> bool:
    """Whether a decorator list or a ``pytestmark`` value names ``pytest.mark.ros``."""
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and sub.attr == ROS_TEST_MARKER and isinstance(sub.value, ast.Attribute) \
                    and sub.value.attr == "mark":
                return True
    return False


def _module_marked(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return _marks_ros([node.value])
    return False


def _needs_ros(target: str) -> bool:
    return is_ros_module(target) or target == f"{PACKAGE}.ros" or target.startswith(f"{PACKAGE}.ros.")


def test_findings(root: Path) -> list[str]:
    """Test modules that import ROS (rclpy, message types, ``semantic_depth_ros.ros``) without the ``ros`` marker,
    and test modules that import another test module (or ``conftest``) for its helpers.

    An import inside a ``test_*`` function or ``Test*`` class needs the marker on it or on the module
    (``pytestmark``); one anywhere else (module level, helpers, fixtures) needs it on the module.
    """
    folder = root / "test"
    if not folder.is_dir():
        return []
    tests = {path.stem for path in folder.glob("test_*.py")} | {"conftest"}
    findings: list[str] = []
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        relative = path.relative_to(root)
        for item in _unique(imports_of(tree, path.stem, False, frozenset())):
            if item.target.split(".")[0] in tests - {path.stem}:
                findings.append(f"test helper import: {relative}:{item.line} imports {item.target}; put shared "
                                "helpers in a helper module or conftest.py fixtures")
        if not path.stem.startswith("test_") or _module_marked(tree):
            continue
        module_wide: list[Import] = []
        for node in tree.body:
            needs = [item for item in imports_of(node, path.stem, False, frozenset()) if _needs_ros(item.target)]
            is_test = (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
                       or isinstance(node, ast.ClassDef) and node.name.startswith("Test"))
            if not needs or is_test and _marks_ros(node.decorator_list):
                continue
            if is_test:
                findings.append(f"unmarked ROS test: {relative}:{needs[0].line} {node.name} imports {needs[0].target};"
                                f" mark it (or the module) with pytest.mark.{ROS_TEST_MARKER}")
            else:
                module_wide += needs
        if module_wide:
            findings.append(f"unmarked ROS test module: {relative}:{module_wide[0].line} imports "
                            f"{module_wide[0].target} outside its tests; set pytestmark = pytest.mark.{ROS_TEST_MARKER}")
    return findings


def _unique(imports: Iterable[Import]) -> list[Import]:
    """One entry per (line, target): ``from a import b, c`` names ``a`` once."""
    return sorted(set(imports), key=lambda item: (item.line, item.target))


def check(root: Path) -> tuple[list[str], dict[str, int]]:
    """Every finding for the repository at ``root`` and the counts behind the summary line."""
    edges, findings = package_edges(root)
    findings += layer_findings(root, edges)
    graph = {name: [item.target for item in imports if item.target != name] for name, imports in edges.items()}
    findings += [f"cycle: {' <-> '.join(component)}" for component in cycles(graph)]
    findings += test_findings(root)
    counts = {"modules": len(edges), "imports": sum(len(set(targets)) for targets in graph.values()),
              "layers": len(LAYERS)}
    return findings, counts


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    findings, counts = check(root)
    for line in findings:
        print(line)
    print(f"{len(findings)} finding(s); {counts['modules']} modules, {counts['imports']} internal imports, "
          f"{counts['layers']} layers")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Check the package's imports: every edge points down the layers, no module cycle, ROS only in ``ros/``, and
tests that need ROS carry the ``ros`` marker (so ``scripts/test.sh -m "not ros"`` runs without ROS).

Usage: ``python scripts/check_imports.py [REPO]``: one line per finding, then a summary; exit 1 on any finding.

The layer order (``LAYERS``, top to bottom) is data: a module belongs to the longest entry that prefixes its
dotted path inside the package. A module may import its own entry's modules and those of lower layers; entries
in one layer are siblings and import neither each other nor upwards. Every import counts, also function-local and
``TYPE_CHECKING`` ones: a cycle hidden from the interpreter is still a cycle in the design. docs/architecture.md
draws the same order.

A package module *needs ROS* when importing it imports rclpy or a ROS message package, directly or through the
package's own modules (module-level imports only: a function-local import runs later, if at all). A test that
imports such a module (or ROS itself) must be marked: inside a ``test_*`` function or ``Test*`` class, the test or
its module; anywhere else (module level, helpers, fixtures), the module (``pytestmark``). conftest.py checks at
run time what this cannot see (an unmarked test that ends up importing rclpy through a command).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "semantic_depth_ros"
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # the console entry point; loads commands by name
    ("commands",),  # one module per sub-command
    ("fleet",),  # fleet validation: infer-bag runs of many drives scheduled on Ray
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
    """One import: its target module (absolute dotted name), its line, and whether it runs when the module is
    imported (``eager``: not inside a function, not under ``if TYPE_CHECKING``)."""

    target: str
    line: int
    eager: bool = True


def module_name(path: Path, root: Path) -> str:
    """``root/semantic_depth_ros/a/b.py`` -> ``semantic_depth_ros.a.b`` (a package's ``__init__`` -> the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or \
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def imports_of(tree: ast.AST, name: str, is_package: bool, known: Iterable[str] = ()) -> list[Import]:
    """Every import in ``tree`` (module ``name``) as absolute module names, in line order; ``from pkg import sub``
    names the submodule ``pkg.sub`` when ``known`` has it, else ``pkg``. One entry per (line, target)."""
    base = name if is_package else name.rpartition(".")[0]
    known = frozenset(known)
    found: set[Import] = set()

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.update(Import(alias.name, child.lineno, eager) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:
                    parts = base.split(".")
                    module = ".".join(parts[: len(parts) - (child.level - 1)] + ([module] if module else []))
                for alias in child.names:
                    candidate = f"{module}.{alias.name}"
                    found.add(Import(candidate if candidate in known else module, child.lineno, eager))
            lazy = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or _is_type_checking(child)
            visit(child, eager and not lazy)

    visit(tree, True)
    return sorted(found, key=lambda item: (item.line, item.target, not item.eager))


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


@dataclass
class Package:
    """The package's modules (dotted name -> file) and every import of each."""

    root: Path
    files: dict[str, Path]
    imports: dict[str, list[Import]]

    @classmethod
    def read(cls, root: Path) -> Package:
        files = {module_name(path, root): path for path in sorted((root / PACKAGE).rglob("*.py"))}
        imports = {name: imports_of(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), name,
                                    path.name == "__init__.py", files)
                   for name, path in files.items()}
        return cls(root, files, imports)

    def internal(self, name: str) -> list[Import]:
        return [item for item in self.imports[name] if _inside(item.target) and item.target in self.files]

    def needing_ros(self) -> set[str]:
        """Modules whose import imports ROS: an eager ROS import, or an eager import of such a module."""
        needing = {name for name, imports in self.imports.items()
                   if any(item.eager and is_ros_module(item.target) for item in imports)}
        changed = True
        while changed:
            changed = False
            for name in self.files:
                if name not in needing and any(item.eager and item.target in needing for item in self.internal(name)):
                    needing.add(name)
                    changed = True
        return needing


def ros_findings(package: Package) -> list[str]:
    """ROS imports of modules outside ``ros/``."""
    return [f"ROS outside ros/: {package.files[name].relative_to(package.root)}:{item.line} imports {item.target}"
            for name, imports in package.imports.items() if layer_entry(_relative(name)) != "ros"
            for item in imports if is_ros_module(item.target)]


def layer_findings(package: Package) -> list[str]:
    """Modules outside ``LAYERS`` and imports that point up or sideways."""
    findings: list[str] = []
    for name in package.files:
        path = package.files[name].relative_to(package.root)
        entry = layer_entry(_relative(name))
        if entry is None:
            findings.append(f"unplaced: {path} is in no entry of LAYERS (scripts/check_imports.py)")
            continue
        for item in package.internal(name):
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
    """The module cycles: strongly connected components of more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def enter(node: str) -> Iterator[str]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        return iter(edges.get(node, ()))

    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, enter(start))]
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in edges:
                    continue
                if successor not in index:
                    work.append((successor, enter(successor)))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def _marks_ros(nodes: Iterable[ast.expr]) -> bool:
    """Whether decorators or a ``pytestmark`` value name ``pytest.mark.ros``."""
    return any(isinstance(sub, ast.Attribute) and sub.attr == ROS_TEST_MARKER and isinstance(sub.value, ast.Attribute)
               and sub.value.attr == "mark" for node in nodes for sub in ast.walk(node))


def _module_marked(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                    for t in node.targets) and _marks_ros([node.value])
               for node in tree.body)


def _is_test(node: ast.stmt) -> bool:
    return (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
            or isinstance(node, ast.ClassDef) and node.name.startswith("Test"))


def _is_autouse(node: ast.stmt) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
        isinstance(sub, ast.keyword) and sub.arg == "autouse" for deco in node.decorator_list for sub in ast.walk(deco))


def _names_used(node: ast.stmt) -> set[str]:
    """Names a definition refers to: loaded names, and its arguments (the fixtures a test or fixture asks for)."""
    used = {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}
    used |= {arg.arg for sub in ast.walk(node) if isinstance(sub, ast.arguments)
             for arg in (*sub.posonlyargs, *sub.args, *sub.kwonlyargs)}
    return used


def _module_ros_needs(tree: ast.Module, stem: str, needs_ros: Callable[[str], bool], known: Iterable[str]
                      ) -> tuple[list[Import], dict[str, tuple[Import, str]]]:
    """ROS imports of one test module: those of its module-level code (and autouse fixtures), and per top-level
    definition the first ROS import it reaches, directly or through the helpers and fixtures it uses (with the
    helper's name, or "" for its own)."""
    def ros_imports(node: ast.stmt) -> list[Import]:
        return [item for item in imports_of(ast.Module(body=[node], type_ignores=[]), stem, False, known)
                if needs_ros(item.target)]

    definitions = {node.name: node for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    module_wide = [item for node in tree.body if node not in definitions.values() or _is_autouse(node)
                   for item in ros_imports(node)]
    reached = {name: (found[0], "") for name, node in definitions.items() if (found := ros_imports(node))}
    uses = {name: _names_used(node) & set(definitions) - {name} for name, node in definitions.items()}
    changed = True
    while changed:
        changed = False
        for name in definitions:
            if name in reached:
                continue
            helper = next((used for used in sorted(uses[name]) if used in reached), None)
            if helper is not None:
                reached[name] = (reached[helper][0], reached[helper][1] or helper)
                changed = True
    return module_wide, reached


def test_findings(root: Path, needing_ros: set[str], known: Iterable[str]) -> list[str]:
    """Test modules that need ROS without the ``ros`` marker (module docstring), and test modules that import
    another test module (or ``conftest``) for its helpers."""
    folder = root / "test"
    if not folder.is_dir():
        return []
    tests = {path.stem for path in folder.glob("test_*.py")} | {"conftest"}

    def needs_ros(target: str) -> bool:
        return is_ros_module(target) or target in needing_ros

    findings: list[str] = []
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        relative = path.relative_to(root)
        findings += [f"test helper import: {relative}:{item.line} imports {item.target}; put shared helpers in a "
                     "helper module or conftest.py fixtures"
                     for item in imports_of(tree, path.stem, False)
                     if item.target.split(".")[0] in tests - {path.stem}]
        if not path.stem.startswith("test_") or _module_marked(tree):
            continue
        module_wide, reached = _module_ros_needs(tree, path.stem, needs_ros, known)
        if module_wide:
            first = module_wide[0]
            findings.append(f"unmarked ROS test module: {relative}:{first.line} imports {first.target} outside its "
                            f"tests; set pytestmark = pytest.mark.{ROS_TEST_MARKER}")
            continue
        for node in tree.body:
            if _is_test(node) and node.name in reached and not _marks_ros(node.decorator_list):
                item, helper = reached[node.name]
                through = f" (through {helper})" if helper else ""
                findings.append(f"unmarked ROS test: {relative}:{node.lineno} {node.name} imports {item.target}"
                                f"{through}; mark it (or the module) with pytest.mark.{ROS_TEST_MARKER}")
    return findings


def check(root: Path) -> tuple[list[str], dict[str, int]]:
    """Every finding for the repository at ``root`` and the counts behind the summary line."""
    package = Package.read(root)
    graph = {name: sorted({item.target for item in package.internal(name)} - {name}) for name in package.files}
    findings = ros_findings(package) + layer_findings(package)
    findings += [f"cycle: {' <-> '.join(component)}" for component in cycles(graph)]
    findings += test_findings(root, package.needing_ros(), package.files)
    counts = {"modules": len(graph), "imports": sum(len(targets) for targets in graph.values()),
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

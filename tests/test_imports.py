"""vizlib read as one package: no import circle, no module reaching into another's private names, and every
name imported from the module that defines it (the package's own `vizlib.X` shortcuts aside).

Both rules are read from the source with `ast`, so imports inside functions count
as much as those at the top of a module (a circle hidden in a function still ties
two modules together, it only fails later).
"""

import ast
import functools
import json

import pytest

from vizlib.config import REPO_ROOT

PACKAGE = "vizlib"
CHECKED_DIRS = (REPO_ROOT / "vizlib", REPO_ROOT / "benchmarks")
IMPORTING_DIRS = CHECKED_DIRS + (REPO_ROOT / "tests", REPO_ROOT / "solutions")


def module_name(path, root=REPO_ROOT):
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def vizlib_modules():
    """{dotted name: path} of every module of the package, subpackages included."""
    return {module_name(path): path for path in sorted((REPO_ROOT / PACKAGE).rglob("*.py"))}


def imported_names(tree, importer, is_package=False):
    """(module, name or None, local name, line) for every import at any depth; relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, alias.asname or alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = importer.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([module] if module else []))
            for alias in node.names:
                yield module, alias.name, alias.asname or alias.name, node.lineno


def import_edges(modules):
    """{module: {vizlib modules it imports}}: `from vizlib.a import b` counts as vizlib.a.b when b is a module."""
    graph = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text())
        for module, imported, _, _ in imported_names(tree, name, path.name == "__init__.py"):
            if module != PACKAGE and not module.startswith(PACKAGE + "."):
                continue
            submodule = f"{module}.{imported}" if imported else None
            targets.add(submodule if submodule in modules else module)
        graph[name] = targets - {name}
    return graph


def find_cycle(graph):
    """One import circle as a list [a, b, ..., a], or None. Depth-first search with three colours."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_circles_and_only_circles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None   # a diamond is no circle
    assert find_cycle({"x": {"y"}, "y": set(), "p": {"q"}, "q": {"p"}}) == ["p", "q", "p"]


def test_imports_inside_functions_and_relative_imports_are_seen(tmp_path):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from vizlib.b import g\n    return g\n")
    (package / "b.py").write_text("from . import a\nfrom .a import f\n")
    modules = {module_name(p, tmp_path): p for p in sorted(package.glob("*.py"))}
    graph = import_edges(modules)
    assert graph["vizlib.a"] == {"vizlib.b"} and graph["vizlib.b"] == {"vizlib.a"}
    assert find_cycle(graph) == ["vizlib.a", "vizlib.b", "vizlib.a"]


def test_vizlib_has_no_import_circle():
    graph = import_edges(vizlib_modules())
    # the graph is the real one: the wrapper sits below hooks and models, a function-level import is seen
    assert "vizlib.wrapper" in graph["vizlib.hooks"] and "vizlib.wrapper" in graph["vizlib.models"]
    assert "vizlib.models" in graph["vizlib.filters"]          # imported inside untrained_like
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def private_uses(path, modules):
    """'line: what' for each private name of another vizlib module that this file uses."""
    name = module_name(path) if path.is_relative_to(REPO_ROOT / PACKAGE) else None
    tree = ast.parse(path.read_text())
    found, aliases = [], {}  # aliases: local name -> vizlib module it stands for

    def private(attribute):
        return attribute.startswith("_") and not (attribute.startswith("__") and attribute.endswith("__"))

    for module, imported, local, line in imported_names(tree, name or "", path.name == "__init__.py"):
        if module != PACKAGE and not module.startswith(PACKAGE + "."):
            continue
        if imported is None:                     # import vizlib.images [as im]
            aliases[local] = module if local != module.split(".")[0] else local
        elif f"{module}.{imported}" in modules:  # from vizlib import images [as im]
            aliases[local] = f"{module}.{imported}"
        elif private(imported) and module != name:
            found.append(f"{line}: from {module} import {imported}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                owner = ".".join([aliases[value.id]] + chain)
                if owner in modules and owner != name:
                    found.append(f"{node.lineno}: {owner}.{node.attr}")
    return sorted(found, key=lambda entry: int(entry.split(":")[0]))


def test_the_private_name_check_catches_both_forms(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("from vizlib.hooks import get_layer, _hidden\nfrom vizlib import plotting\nimport vizlib.images\n"
                      "plotting._secret(1)\nvizlib.images._RANGE\nplotting.show_images\nplotting.__doc__\n")
    found = private_uses(source, vizlib_modules())
    assert found == ["1: from vizlib.hooks import _hidden", "4: vizlib.plotting._secret", "5: vizlib.images._RANGE"]


@pytest.mark.parametrize(
    "path", [p for d in CHECKED_DIRS for p in sorted(d.rglob("*.py"))], ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_no_module_uses_another_modules_private_names(path):
    assert private_uses(path, vizlib_modules()) == []


@functools.lru_cache(maxsize=None)      # every importer asks about the same few modules
def defined_names(path):
    """The names a module binds at its top level itself: functions, classes and assignments, not imports."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {leaf.id for target in targets for leaf in ast.walk(target) if isinstance(leaf, ast.Name)}
    return names


def borrowed_names(tree, importer, modules, is_package=False):
    """'line: from M import x' for each vizlib name imported from a module that only imports it itself."""
    found = []
    for module, imported, _, line in imported_names(tree, importer, is_package):
        if module in modules and module != PACKAGE and imported and f"{module}.{imported}" not in modules:
            if imported not in defined_names(modules[module]):
                found.append(f"{line}: from {module} import {imported}")
    return found


def notebook_code(path):
    """A notebook's code cells as one module, shell and magic lines left out."""
    cells = [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    return "\n".join(line for cell in cells for line in "".join(cell["source"]).splitlines()
                     if not line.lstrip().startswith(("%", "!")))


def test_the_borrowed_name_check_catches_a_re_export(tmp_path):
    source = ("from vizlib.hooks import get_layer, forward_to\n"
              "from vizlib.wrapper import get_layer\nfrom vizlib import images\n")
    assert borrowed_names(ast.parse(source), "", vizlib_modules()) == ["1: from vizlib.hooks import get_layer"]


IMPORTERS = ([p for d in IMPORTING_DIRS for p in sorted(d.rglob("*.py"))]
             + sorted((REPO_ROOT / "notebooks").glob("*.ipynb")))


@pytest.mark.parametrize("path", IMPORTERS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_name_is_imported_from_the_module_that_defines_it(path):
    """One home per name: `get_layer` comes from vizlib.wrapper, never through vizlib.hooks, which uses it."""
    if path.suffix == ".ipynb":
        tree, importer, is_package = ast.parse(notebook_code(path)), "", False
    else:
        importer = module_name(path) if path.is_relative_to(REPO_ROOT / PACKAGE) else ""
        tree, is_package = ast.parse(path.read_text()), path.name == "__init__.py"
    assert borrowed_names(tree, importer, vizlib_modules(), is_package) == []

"""The package layout holds: dependency direction from the import graph, module sizes."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hwsearch"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are not used here)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


FORBIDDEN = {
    "model": ("hwsearch.profiling", "hwsearch.cost", "hwsearch.search", "hwsearch.deploy", "hwsearch.cli",
              "hwsearch.workspace", "hwsearch.report"),
    "profiling": ("hwsearch.search", "hwsearch.deploy", "hwsearch.cli", "hwsearch.workspace", "hwsearch.cost"),
    "cost": ("hwsearch.search", "hwsearch.deploy", "hwsearch.cli", "hwsearch.workspace", "hwsearch.report"),
    "report": ("hwsearch.search", "hwsearch.deploy", "hwsearch.cli", "hwsearch.workspace"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package):
    for path in files(PACKAGE / package):
        bad = sorted(name for name in imports_of(path) for prefix in FORBIDDEN[package]
                     if name == prefix or name.startswith(prefix + "."))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_profilers_import_nothing_of_hwsearch():
    for path in files(ROOT / "profilers"):
        bad = sorted(n for n in imports_of(path) if n == "hwsearch" or n.startswith("hwsearch."))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_nothing_below_the_cli_imports_it():
    for path in files(PACKAGE):
        if "cli" in path.relative_to(PACKAGE).parts or path.name == "__main__.py":
            continue
        bad = sorted(n for n in imports_of(path) if n.startswith("hwsearch.cli"))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_module_sizes():
    for path in files(PACKAGE):
        lines = len(path.read_text().splitlines())
        limit = 120 if "cli" in path.relative_to(PACKAGE).parts else 300
        assert lines <= limit, f"{path.relative_to(ROOT)} has {lines} lines (> {limit})"


def test_cli_modules_have_the_command_interface():
    from hwsearch.cli import COMMANDS, build_parser

    build_parser()  # every command module adds its arguments
    for command in COMMANDS:
        text = (PACKAGE / "cli" / f"{command}.py").read_text()
        assert ("def add_arguments(" in text or "add_arguments = " in text) and \
            "def run(args: argparse.Namespace) -> int:" in text
        tree = ast.parse(text)
        for node in ast.walk(tree):  # the parsed arguments are never mutated
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    assert not (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                                and t.value.id == "args"), f"cli/{command}.py assigns to args.{t.attr}"

"""DESIGN.md §2: protocol does no I/O; client and server import only protocol of our packages;
deploy may import server and protocol; the root CLI loads server code only by name."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "protocol": "corridor.protocol",
    "client": "corridor.client",
    "server": "corridor.server",
    "deploy": "corridor.deploy",
}
IO_MODULES = {"trio", "socket", "ssl", "sqlite3", "asyncio", "selectors", "zeroconf", "subprocess", "os", "pathlib"}
ALLOWED = {
    "protocol": {"corridor.protocol"},
    "client": {"corridor.protocol", "corridor.client"},
    "server": {"corridor.protocol", "corridor.server"},
    "deploy": {"corridor.protocol", "corridor.server", "corridor.deploy"},
}


def imports_of(path: Path, folder: str) -> list[tuple[int, str]]:
    """Absolute module names imported by a file (relative imports resolved)."""
    module_parts = [*PACKAGES[folder].split("."), *path.relative_to(ROOT / folder).with_suffix("").parts]
    if module_parts[-1] == "__init__":
        module_parts.pop()
    package = module_parts if path.name == "__init__.py" else module_parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append((node.lineno, name))
    return found


def violations() -> list[str]:
    problems = []
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, name in imports_of(path, folder):
                where = f"{path.relative_to(ROOT)}:{line} imports {name}"
                top = name.split(".")[0]
                if folder == "protocol" and top in IO_MODULES:
                    problems.append(f"{where} (protocol/ does no I/O)")
                if name.startswith("corridor.") and not any(name == a or name.startswith(a + ".") for a in ALLOWED[folder]):
                    problems.append(f"{where} (not allowed from {folder}/)")
    return problems


def test_import_graph_follows_the_layers():
    assert violations() == []


def test_the_checker_catches_a_violation(tmp_path, monkeypatch):
    bad = ROOT / "client" / "_layering_probe.py"
    bad.write_text("from corridor.server import app\n")
    try:
        assert any("_layering_probe.py:1 imports corridor.server" in v for v in violations())
    finally:
        bad.unlink()


@pytest.mark.parametrize(
    "code",
    [
        "import corridor.client.cli.main as m; m.build_parser()",
        "import corridor.client.client, corridor.client.enrollment, corridor.client.discovery",
    ],
)
def test_client_code_loads_no_server_code(code):
    check = f"{code}; import sys; bad = [m for m in sys.modules if m.startswith(('corridor.server', 'corridor.deploy'))]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", check], check=True, cwd=ROOT)


def test_setup_cfg_lists_every_package():
    listed = {line.strip() for line in (ROOT / "setup.cfg").read_text().splitlines() if line.strip().startswith("corridor.")}
    for folder, package in PACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            name = ".".join([package, *init.parent.relative_to(ROOT / folder).parts])
            assert name in listed, f"{name} is missing from setup.cfg [options] packages"

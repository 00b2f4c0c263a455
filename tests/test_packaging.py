"""Packaging: every package folder is installed under its agentenv.* name, and nothing imports the raw folders."""

import ast
import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package name it installs as (pyproject's package-dir)
PACKAGE_ROOTS = {
    "agentenv": "agentenv",
    "envs": "agentenv.envs",
    "policies": "agentenv.policies",
    "trainers": "agentenv.trainers",
    "sandboxes": "agentenv.sandboxes",
}
#: folders that only exist installed as agentenv.*; importing them by their folder name works only in a checkout
RAW_NAMES = {"envs", "trainers", "policies", "sandboxes"}
SKIP_DIRS = {".venv", "venv", ".git", "build", "dist", "node_modules", "__pycache__"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGE_ROOTS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "repos" in parts and "tasks" in parts:
                continue  # the SWE task repositories are task data, not agentenv packages
            found[".".join((package, *parts))] = init.parent
    return found


def _python_files() -> list[Path]:
    """Every .py file of the project, pruning the virtualenv and hidden or build folders while walking."""
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    return files


def test_package_dir_maps_each_source_folder_to_its_agentenv_name():
    assert _setuptools()["package-dir"] == {package: folder for folder, package in PACKAGE_ROOTS.items()}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(_setuptools()["packages"])
    missing = sorted(set(_package_folders()) - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_has_a_folder_with_an_init():
    stale = sorted(set(_setuptools()["packages"]) - set(_package_folders()))
    assert not stale, f"pyproject lists packages with no folder and __init__.py: {stale}"


def test_the_finders_see_the_package_folders():
    assert len(_package_folders()) >= len(PACKAGE_ROOTS)
    assert "agentenv.envs.puzzles" in _package_folders()
    assert len(_python_files()) > 10


def _raw_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] in RAW_NAMES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in RAW_NAMES:
            bad.append(str(node.module))
    return bad


def test_no_module_imports_a_source_folder_by_its_raw_name():
    offenders = {str(p.relative_to(ROOT)): bad for p in _python_files() if (bad := _raw_imports(p))}
    assert not offenders, f"import agentenv.<name> instead of the folder name: {offenders}"


def test_raw_import_finder_catches_both_import_forms(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nimport envs.puzzles\nfrom trainers import loop\nfrom . import policies\n")
    assert _raw_imports(sample) == ["envs.puzzles", "trainers"]

"""The wheel: every package listed, the shipped configs inside it, and a non-editable install that
finds its tasks, tune spaces and demo configs from another directory (issue 10, item 3)."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from setuptools import find_packages

from fixtures import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# What a wheel build reads: the project files, not tests/, runs/ or the venv.
SOURCES = ("pyproject.toml", "README.md", "mast_core", "pipelines", "configs", "tune_spaces")
REQUIRED = (
    "pipelines/_resources/configs/tasks/sc_v2_12.yaml",
    "pipelines/_resources/tune_spaces/sc_v2_12.yaml",
    "pipelines/_resources/tune_spaces/finetune/sc_v2_12.yaml",
    "pipelines/_resources/configs/pretrain/tiny_cpu.yaml",
    "pipelines/_resources/configs/pretrain/paper.yaml",
    "pipelines/_resources/configs/demo/pretrain.yaml",
    "pipelines/_resources/configs/demo/augment.yaml",
    "pipelines/_resources/configs/demo/linear_space.yaml",
    "pipelines/_resources/configs/demo/tasks.yaml",
)
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet")
# Run by the installed copy, from a directory outside the checkout.
PROBE = """
import json, sys
import mast_core, pipelines
from pipelines.common.resources import config_root
from pipelines.demo import DemoSettings, augment_presets, demo_tasks
from pipelines.evaluation.spaces import load_space
from pipelines.evaluation.tasks import load_task, task_names

task = load_task("sc_v2_12")
print(task)
linear, finetune = load_space("sc_v2_12"), load_space("sc_v2_12", protocol="finetune")
DemoSettings(with_ast=True).validate()  # builds every configs/demo/ file as a run would
json.dump({"pipelines": pipelines.__file__, "mast_core": mast_core.__file__, "root": str(config_root()),
           "task": task.name, "tasks": task_names(), "linear": linear.protocol, "finetune": finetune.protocol,
           "augment": list(augment_presets()), "demo_tasks": list(demo_tasks())}, open(sys.argv[1], "w"))
"""


def _repo_files(folder: str, suffix: str) -> list[str]:
    return sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / folder).rglob(f"*{suffix}") if "__pycache__" not in path.parts)


def _wheel_path(repo_path: str) -> str:
    """Where a file of the checkout lands in the wheel, through [tool.setuptools.package-dir]."""
    for package, folder in sorted(SETUPTOOLS["package-dir"].items(), key=lambda item: -len(item[1])):
        if repo_path.startswith(folder + "/"):
            return package.replace(".", "/") + repo_path[len(folder) :]
    return repo_path


def test_every_package_of_the_tree_is_listed_in_pyproject():
    found = set(find_packages(str(REPO_ROOT), include=["pipelines", "pipelines.*", "mast_core", "mast_core.*"]))
    listed = set(SETUPTOOLS["packages"])
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    # the rest of the list are the config folders mapped in as package data, and they exist
    for package in listed - found:
        folder = SETUPTOOLS["package-dir"].get(package)
        assert folder and (REPO_ROOT / folder).is_dir(), f"{package}: listed but neither a package nor a mapped folder"
        assert list((REPO_ROOT / folder).glob("*.yaml")), f"{folder}: no YAML to ship"
        assert SETUPTOOLS["package-data"][package] == ["*.yaml"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """``pip wheel .`` of a copy of the project files (the build writes build/ and *.egg-info,
    which must not land in a checkout others are working in)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    built = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (path,) = (root / "dist").glob("mast-*.whl")
    return root, path


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_every_shipped_config(wheel):
    _, path = wheel
    names = set(zipfile.ZipFile(path).namelist())
    missing = [name for name in REQUIRED if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    configs = _repo_files("configs", ".yaml") + _repo_files("tune_spaces", ".yaml")
    modules = _repo_files("pipelines", ".py") + _repo_files("mast_core", ".py")
    assert len(configs) > 20 and len(modules) > 40
    missing = [name for name in configs + modules if _wheel_path(name) not in names]
    assert not missing, f"in the checkout but not in the wheel: {missing}"
    dist_info = f"mast-{PYPROJECT['project']['version']}.dist-info/"
    stray = sorted(name for name in names if not name.startswith(("pipelines/", "mast_core/", dist_info)))
    assert not stray, f"the wheel ships files outside the packages: {stray}"


@pytest.mark.slow
def test_an_installed_wheel_finds_its_configs_from_another_directory(wheel, tmp_path):
    root, path = wheel
    site = root / "site"
    if not site.is_dir():
        installed = subprocess.run(
            [*PIP, "install", "--no-deps", "--target", str(site), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("MAST_CONFIG_ROOT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)  # ahead of the venv's editable install of the checkout
    report = tmp_path / "probe.json"

    probe = subprocess.run([sys.executable, "-c", PROBE, str(report)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stdout[-3000:] + probe.stderr[-3000:]
    assert "TaskConfig(name='sc_v2_12'" in probe.stdout
    found = json.loads(report.read_text())
    for module in ("pipelines", "mast_core"):
        assert found[module].startswith(str(site) + os.sep), f"{module} imported from {found[module]}, not the installed copy"
    assert found["root"] == str(site / "pipelines" / "_resources")
    assert found["task"] == "sc_v2_12" and "us8k" in found["tasks"]
    assert (found["linear"], found["finetune"]) == ("linear", "finetune")
    assert found["augment"] == ["full", "mixup"] and found["demo_tasks"] == ["synth_keywords", "synth_languages"]

    sweep = subprocess.run(
        [sys.executable, "-m", "pipelines", "sweep", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert sweep.stdout.startswith("usage: mast sweep")

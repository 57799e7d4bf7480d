"""The Lua scripts are files of the package: every one the stores run is there, and an
installed wheel (the Docker images install one) carries them as package data."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path

from worker.jobs.redis_layout import JOB_SCRIPTS, job_script, lua_source

ROOT = Path(__file__).resolve().parents[3]
SWEEP_SCRIPTS = ("sweep_create", "sweep_add_job")
REMEDY_SCRIPTS = ("remedies_link",)  # worker/jobs/remedy_links.py


def test_every_script_is_a_file_next_to_the_package():
    shipped = {p.name for p in (files("worker.jobs") / "lua").iterdir()}
    wanted = {f"{name}.lua" for name in ("prelude", *JOB_SCRIPTS, *SWEEP_SCRIPTS, *REMEDY_SCRIPTS)}
    assert wanted == shipped


def test_job_scripts_run_behind_the_prelude():
    for name in JOB_SCRIPTS:
        script = job_script(name)
        assert script.startswith(lua_source("prelude")) and "local function move(" in script


def test_the_scripts_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "lua/*.lua" in config["tool"]["setuptools"]["package-data"]["worker.jobs"]

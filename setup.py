"""Build step of the wheel: copy the top-level data folders into the package (lakehouse/_resources/).

Everything else is in pyproject.toml; lakehouse.resources finds the copies in an installed package and the
top-level folders in a checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = ("expectations", "schemas", "dbt_project", "infra/log4j2.properties")
SKIP = shutil.ignore_patterns("target", "dbt_packages", "logs", "__pycache__", "*.pyc", ".user.yml")


class BuildPyWithData(build_py):
    """build_py, then lakehouse/_resources/<folder> for every data folder."""

    def run(self) -> None:
        super().run()
        for name in DATA:
            source, dest = ROOT / name, Path(self.build_lib) / "lakehouse" / "_resources" / name
            if dest.is_dir():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=SKIP)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildPyWithData})

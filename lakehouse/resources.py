"""Data folders the code reads: `expectations/`, `schemas/`, `dbt_project/`, `infra/log4j2.properties`.

In the repository they stay top-level; a wheel carries copies inside the package (`lakehouse/_resources/`,
copied by setup.py's build step), so an installed package (a cluster's library) finds them without a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lakehouse.errors import LakehouseError

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGED = ("expectations", "schemas", "dbt_project", "infra/log4j2.properties")


def resource_path(name: str) -> Path:
    """The packaged copy of `name` (one of PACKAGED) when installed from a wheel, else the checkout's."""
    if name not in PACKAGED:
        raise LakehouseError(f"unknown resource {name!r}; resources are {', '.join(PACKAGED)}")
    packaged = Path(str(resources.files("lakehouse") / "_resources" / name))
    if packaged.exists():
        return packaged
    checkout = CHECKOUT / name
    if checkout.exists():
        return checkout
    raise LakehouseError(f"{name} is missing from {packaged} and {checkout}: reinstall the package")

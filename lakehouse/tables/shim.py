"""Build/locate the JVM catalog shim jar (infra/catalog-shim). Placeholder until the shim lands."""

from __future__ import annotations

import logging
from pathlib import Path

from lakehouse.config import Settings

log = logging.getLogger(__name__)


def ensure_shim_jar(settings: Settings) -> Path | None:
    if settings.shim_jar.exists():
        return settings.shim_jar
    log.warning("Delta catalog shim jar not built (%s): catalog tables unavailable", settings.shim_jar)
    return None

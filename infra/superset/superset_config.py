"""Superset's configuration for the lakehouse's local BI (loaded through SUPERSET_CONFIG_PATH).

Everything site-specific comes from the environment that `lakehouse bi start` sets: the secret key (generated once
per home, kept in `$LAKEHOUSE_HOME/superset/secret_key`, mode 600, never in git) and the metadata database (SQLite
in the home)."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_URI"]
# served on 127.0.0.1 only, over plain HTTP: no HTTPS redirects or HSTS
TALISMAN_ENABLED = False
SESSION_COOKIE_SECURE = False
# every chart renders at once (no lazy loading below the fold): what the browser test and a screenshot see
FEATURE_FLAGS = {"DASHBOARD_RBAC": False, "DASHBOARD_VIRTUALIZATION": False}
SQLLAB_TIMEOUT = 120
SUPERSET_WEBSERVER_TIMEOUT = 120

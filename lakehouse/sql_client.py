"""Python DB-API access to the SQL endpoint (PyHive over Thrift): what notebooks and scripts use to read tables by
catalog name, e.g. `query("SELECT * FROM marts.fct_sales_daily")`. On Databricks the same SQL runs on a SQL
warehouse; here the endpoint is `lakehouse sql-endpoint start` on 127.0.0.1."""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING

from lakehouse.config import Settings, get_settings
from lakehouse.errors import ServiceNotRunning
from lakehouse.governance.accounts import credentials
from lakehouse.services.sql_endpoint import BIND_HOST

if TYPE_CHECKING:
    import pandas as pd


def query(sql: str, settings: Settings | None = None, user: str | None = None) -> pd.DataFrame:
    """Run `sql` on the SQL endpoint as `user` (default: LAKEHOUSE_SQL_USER, else the local analyst; see
    lakehouse.governance.accounts); the rows as a DataFrame with the result's column names."""
    import pandas as pd
    from pyhive import hive
    from thrift.transport.TTransport import TTransportException

    settings = settings or get_settings()
    login = credentials(settings, user)
    try:
        connection = hive.connect(host=BIND_HOST, port=settings.sql_port, username=login.user,
                                  password=login.password, auth="CUSTOM")
    except TTransportException as exc:
        raise ServiceNotRunning(f"no SQL endpoint on {BIND_HOST}:{settings.sql_port} ({exc}); start it: "
                                "`lakehouse sql-endpoint start`") from exc
    with closing(connection), closing(connection.cursor()) as cursor:
        cursor.execute(sql)
        columns = [c[0].split(".")[-1] for c in cursor.description or []]
        return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)

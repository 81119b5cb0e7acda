"""Errors that the CLI reports as one clear line (and a non-zero exit) instead of a stack trace."""


class LakehouseError(Exception):
    """A problem the user can fix: bad configuration, a service that is not running, an unknown name."""


class ServiceNotRunning(LakehouseError):
    """A local service (broker, SQL endpoint, ...) the command needs is not up."""


class TableNotFound(LakehouseError):
    """A Delta table that was asked for does not exist at its location."""

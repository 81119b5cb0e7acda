"""Small job state files under the tables root (`<tables_root>/_state/...`): local paths or URIs (s3://...).

Job state that decides what runs next must survive a transient cluster, so it lives next to the tables, not on
the driver's disk. Remote locations are read and written with pyarrow's filesystems (credentials from the
environment, as for the landing zone)."""

from __future__ import annotations

from pathlib import Path

from lakehouse.config import Settings, is_remote


def state_path(settings: Settings, *parts: str) -> str:
    """`<tables_root>/_state/<parts...>`."""
    return "/".join([settings.state_root, *parts])


def read_text(location: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if not is_remote(location):
        path = Path(location)
        return path.read_text() if path.is_file() else None
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    if filesystem.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as fh:
        return fh.read().decode()


def write_text(location: str, text: str) -> None:
    """Replace the file's content with `text` (parent folders created)."""
    if not is_remote(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
    with filesystem.open_output_stream(path) as fh:
        fh.write(text.encode())

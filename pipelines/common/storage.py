"""Every location is a URI: a local path, ``file://``, or any pyarrow / fsspec file system.

``s3://bucket/prefix`` (AWS S3 or any S3-compatible store through the standard AWS variables,
``AWS_ENDPOINT_URL`` included), ``gs://``, ``abfs://``, ``hdfs://`` and every scheme fsspec knows.
A local path is made absolute with ``os.path.abspath`` (never ``Path.resolve``, which would turn
``s3://b/x`` into ``./s3:/b/x``). Nothing else in the project parses a location.

    fs, path = filesystem("s3://runs/exp")          # (pyarrow FileSystem, path inside it)
    write_text(join("s3://runs/exp", "plan.json"), "{}")
    check_location("s3://runs/exp", "run.storage")  # a clear error before any work starts
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs


class StorageError(ValueError):
    """A location that cannot be used; the message names it and what to do."""


def is_uri(location: str | os.PathLike) -> bool:
    """Whether ``location`` names a file system by scheme (``s3://...``), not a plain local path."""
    return "://" in str(location)


def is_local(location: str | os.PathLike) -> bool:
    return not is_uri(location) or str(location).startswith("file://")


def absolute(location: str | os.PathLike) -> str:
    """The location as a string that means the same from any working directory."""
    location = str(location)
    if is_uri(location):
        return location.rstrip("/") if location.count("/") > 2 else location
    return os.path.abspath(os.path.expanduser(location))


def local_path(location: str | os.PathLike) -> Path:
    """A local location as a ``Path`` (``file://`` stripped); a remote one is an error."""
    location = str(location)
    if location.startswith("file://"):
        return Path(location[len("file://") :])
    if is_uri(location):
        raise StorageError(f"{location}: a local path is needed here")
    return Path(absolute(location))


def join(location: str | os.PathLike, *parts: str) -> str:
    """``location/part/...`` for a path or a URI."""
    location = absolute(location)
    if is_uri(location):
        return "/".join([location.rstrip("/"), *(part.strip("/") for part in parts)])
    return os.path.join(location, *parts)


def name(location: str | os.PathLike) -> str:
    """The last component of a path or URI."""
    return posixpath.basename(absolute(location).rstrip("/"))


def _s3() -> pafs.S3FileSystem:
    """S3 from the standard AWS variables, made explicit so that the file system keeps them when
    Ray pickles it to workers whose environment lacks them (a local Ray started earlier)."""
    options: dict = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        options.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
        if os.environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    # fail in seconds, not minutes, when the endpoint is down (the default retries for ~15 min)
    options.update(connect_timeout=5, request_timeout=30, retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2))
    return pafs.S3FileSystem(**options)


class _NoFileSystem(Exception):
    """No file system for a scheme (the caller names the location)."""


@functools.lru_cache(maxsize=32)
def _filesystem_for(scheme_and_authority: str) -> pafs.FileSystem:
    if scheme_and_authority.startswith("s3://"):
        return _s3()
    try:
        fs, _ = pafs.FileSystem.from_uri(scheme_and_authority)
        return fs
    except Exception as arrow_error:  # not a pyarrow scheme: try fsspec
        scheme = scheme_and_authority.split("://", 1)[0]
        try:
            import fsspec

            handler = pafs.FSSpecHandler(fsspec.filesystem(scheme))
        except ImportError as error:
            raise _NoFileSystem(
                f"no file system for {scheme}:// is installed ({error}); "
                f"install the fsspec package that provides it (for example s3fs, gcsfs, adlfs)"
            ) from None
        except (ValueError, KeyError):
            raise _NoFileSystem(f"unknown URI scheme {scheme}:// ({arrow_error})") from None
        return pafs.PyFileSystem(handler)


# What a Ray task needs from the driver's environment to reach the same store (a local Ray started
# before these were set, or a cluster whose nodes have none of them, would not have them).
FORWARDED_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def driver_settings() -> dict[str, str]:
    """The storage variables of this process, to hand to tasks (:func:`adopt_settings`)."""
    return {name: os.environ[name] for name in FORWARDED_VARIABLES if name in os.environ}


def adopt_settings(settings: dict[str, str]) -> None:
    """In a task: use the driver's storage variables (from :func:`driver_settings`)."""
    if any(os.environ.get(name) != value for name, value in settings.items()):
        os.environ.update(settings)
        clear_cache()


def clear_cache() -> None:
    """Forget the cached file systems (after changing the AWS variables in this process)."""
    _filesystem_for.cache_clear()


def filesystem(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(file system, path inside it) of a location; file systems are cached per bucket."""
    location = absolute(location)
    if not is_uri(location):
        return pafs.LocalFileSystem(), location
    if location.startswith("file://"):
        return pafs.LocalFileSystem(), location[len("file://") :]
    scheme, rest = location.split("://", 1)
    authority = rest.split("/", 1)[0]
    try:
        fs = _filesystem_for(f"{scheme}://{authority}")
    except _NoFileSystem as error:
        raise StorageError(f"{location}: {error}") from None
    if isinstance(fs, pafs.PyFileSystem):
        return fs, rest
    return fs, rest.rstrip("/")


def train_storage(location: str | os.PathLike) -> dict:
    """``storage_path`` and ``storage_filesystem`` for a Ray Train / Tune ``RunConfig``: a bucket
    as (file system, path) so every worker reaches it with this driver's settings, a local
    folder as its absolute path."""
    fs, path = filesystem(location)
    return {"storage_path": path, "storage_filesystem": None if is_local(location) else fs}


def _info(location: str) -> pafs.FileInfo:
    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path)
    except OSError as error:
        raise StorageError(f"{location}: {error}") from None


def exists(location: str | os.PathLike) -> bool:
    return _info(str(location)).type != pafs.FileType.NotFound


def is_file(location: str | os.PathLike) -> bool:
    return _info(str(location)).type == pafs.FileType.File


def is_dir(location: str | os.PathLike) -> bool:
    return _info(str(location)).type == pafs.FileType.Directory


def read_bytes(location: str | os.PathLike) -> bytes:
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{location} not found") from None


def read_text(location: str | os.PathLike) -> str:
    return read_bytes(location).decode("utf-8")


def write_bytes(location: str | os.PathLike, data: bytes) -> None:
    """Write a whole file (on object stores a single PUT: readers see the old or the new file)."""
    fs, path = filesystem(location)
    parent = posixpath.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def write_text(location: str | os.PathLike, text: str) -> None:
    write_bytes(location, text.encode("utf-8"))


def write_atomic(location: str | os.PathLike, data: bytes) -> None:
    """Write a whole file so that readers never see part of it: a temporary file renamed into place
    on a local disk, one PUT on an object store (which is atomic there)."""
    if is_local(location):
        path = local_path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    else:
        write_bytes(location, data)


def modified(location: str | os.PathLike) -> float:
    """Modification time (seconds), for caches keyed on a file's version."""
    info = _info(str(location))
    return info.mtime.timestamp() if info.mtime is not None else 0.0


def makedirs(location: str | os.PathLike) -> None:
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)


def listdir(location: str | os.PathLike) -> list[str]:
    """Names directly inside a folder (empty if it does not exist)."""
    fs, path = filesystem(location)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos)


def remove_tree(location: str | os.PathLike) -> None:
    fs, path = filesystem(location)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


def copy_tree(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a folder between any two locations (local to bucket, bucket to local, ...)."""
    source_fs, source_path = filesystem(source)
    target_fs, target_path = filesystem(target)
    target_fs.create_dir(target_path, recursive=True)
    pafs.copy_files(source_path, target_path, source_filesystem=source_fs, destination_filesystem=target_fs)


def walk(location: str | os.PathLike) -> list[str]:
    """Every file below a folder (recursively), as locations of the same kind, sorted."""
    location = absolute(location)
    fs, path = filesystem(location)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    scheme = location.split("://", 1)[0] + "://" if is_uri(location) else ""
    return sorted(scheme + info.path for info in infos if info.type == pafs.FileType.File)


def cache_root() -> Path:
    """Where remote folders are copied for reading: ``$MAST_CACHE``, else ``~/.cache/mast``."""
    return Path(os.environ.get("MAST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mast"))


def fetch_folder(location: str | os.PathLike) -> Path:
    """A local folder with the files of ``location``: the folder itself when local, else a copy
    under :func:`cache_root` named by the URI and the files' sizes and times (a changed remote
    folder is fetched again; an unchanged one once per machine)."""
    if is_local(location):
        return local_path(location)
    location = absolute(location)
    fs, path = filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError as error:
        raise StorageError(f"{location}: cannot be listed ({error})") from None
    files = sorted((info.path, info.size, info.mtime.timestamp() if info.mtime else 0) for info in infos if info.type == pafs.FileType.File)
    if not files:
        raise StorageError(f"{location}: not found (no files below it)")
    key = hashlib.sha256(repr((location, files)).encode()).hexdigest()[:16]
    target = cache_root() / "remote" / f"{name(location)}-{key}"
    if not target.is_dir():
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        partial.mkdir(parents=True, exist_ok=True)
        try:
            pafs.copy_files(path, str(partial), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)  # no half-fetched folder left behind
            raise
        try:
            os.replace(partial, target)
        except OSError:  # another process fetched it first
            shutil.rmtree(partial, ignore_errors=True)
    return target


def publish(local: str | os.PathLike, location: str | os.PathLike) -> str:
    """Copy a local file or folder to ``location`` (replacing what is there; a local target
    appears whole, through a rename); returns the absolute location."""
    location = absolute(location)
    local = Path(local)
    if is_local(location):
        target = local_path(location)
        if target == local.absolute():
            return location
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        if local.is_dir():
            shutil.copytree(local, partial)
            shutil.rmtree(target, ignore_errors=True)
        else:
            shutil.copyfile(local, partial)
        os.replace(partial, target)
        return location
    if local.is_dir():
        remove_tree(location)
        copy_tree(str(local), location)
    else:
        write_bytes(location, local.read_bytes())
    return location


@contextlib.contextmanager
def staged(location: str | os.PathLike):
    """A local path to write the file or folder ``location`` to: the location itself when local,
    else a path in a temporary folder that is uploaded when the block ends without an error. The
    temporary folder is removed either way."""
    location = absolute(location)
    if is_local(location):
        yield local_path(location)
        return
    scratch = Path(tempfile.mkdtemp(prefix="mast-staged-"))
    try:
        path = scratch / name(location)
        yield path
        publish(path, location)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_location(location: str | os.PathLike, what: str, *, must_exist: bool = False) -> str:
    """Reach ``location`` once (bucket, credentials, endpoint) before any work starts; returns it
    absolute. ``must_exist``: the location itself must be there (an input)."""
    location = absolute(location)
    try:
        fs, path = filesystem(location)
    except StorageError as error:  # its message starts with the location
        raise StorageError(f"{what} {error}") from None
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            if must_exist:
                raise StorageError(f"{what} {location}: not found")
            if is_uri(location):  # an output: its bucket must exist and take writes
                bucket = path.split("/", 1)[0]
                if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                    raise StorageError(f"{what} {location}: the bucket {bucket!r} does not exist; create it first")
    except StorageError:
        raise
    except Exception as error:
        hint = ""
        if location.startswith("s3://"):
            hint = (
                "; check AWS_ENDPOINT_URL (for MinIO, Ceph or a local server), AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY (or an instance profile) and AWS_DEFAULT_REGION"
            )
        raise StorageError(f"{what} {location}: cannot be reached ({type(error).__name__}: {error}){hint}") from None
    return location

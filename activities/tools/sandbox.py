"""A run's workspace: file operations that cannot leave one folder.

Every operation starts from a directory fd of the workspace root and walks the model's path one
component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)`, so there is no check-then-open by path:
a symlink anywhere in the path (even one swapped in mid-call) makes the open itself fail. The last
component is opened `O_NOFOLLOW | O_NONBLOCK` relative to its parent's fd and fstat-ed, so FIFOs,
devices, directories and hard-linked files are refused without hanging. Writes go to a temp file in
the same directory and are renamed into place relative to that directory's fd.

Every refusal is a `ToolError` with a stable code: `path_denied`, `path_too_long`, `not_found`,
`not_a_file`, `not_a_directory`, `too_large`, `not_text`, `already_exists`, `workspace_not_found`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from activities.tools.registry import ToolContext, ToolError

#: Largest file `read_file` returns, in bytes.
DEFAULT_MAX_READ_BYTES = 1024 * 1024
#: Largest content `write_file` accepts, in bytes (UTF-8).
DEFAULT_MAX_WRITE_BYTES = 1024 * 1024
#: Longest relative path accepted, in characters.
MAX_PATH_CHARS = 1024
#: Longest single name, in UTF-8 bytes (Linux NAME_MAX).
MAX_NAME_BYTES = 255
#: Deepest relative path accepted, in components.
MAX_DEPTH = 32
#: Most entries `list_entries` returns before it says `truncated`.
DEFAULT_MAX_LIST_ENTRIES = 1000

#: In-flight temp files of atomic writes start with this; models may not name files with it.
TEMP_PREFIX = ".aif-tmp-"
#: The journal folder under the workspace root; workspace names cannot start with a dot.
JOURNAL_DIRNAME = ".journal"

_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
# Unicode categories refused in names: controls, invisible format characters (bidi overrides,
# zero-width joiners), surrogates, private use, unassigned, and line/paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Characters that render like a slash or backslash but survive NFKC unchanged.
_SEPARATOR_LOOKALIKES = frozenset("\u2044\u2215\u2216\u2571\u2572\u29f5\u29f8\u29f9\u3033\ufe68")


# Workspace roots that `from_context` accepts besides the settings' root: those a workspace was
# created under by `Workspace.create` in this process (a worker given its own Settings). A
# `ctx.workspace` anywhere else is refused, so an unvalidated name joined by a caller (`/etc`,
# `../x`) cannot turn some other folder into a workspace.
_trusted_roots: set[str] = set()
_trusted_roots_lock = threading.Lock()


def _openat(name: str, flags: int, dir_fd: int, mode: int = 0o644) -> int:
    """The one place this module opens anything relative to a directory (a seam for race tests)."""
    return os.open(name, flags, mode, dir_fd=dir_fd)


def validate_workspace_name(name: str) -> str:
    """Return `name` if it is one safe path component for a workspace folder, else raise."""
    if not isinstance(name, str) or not _WORKSPACE_NAME.fullmatch(name):
        raise ToolError(
            "path_denied",
            "workspace name must be 1-128 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            workspace=ascii(name),
        )
    return name


def parse_relative_path(path: str, *, allow_root: bool = False) -> list[str]:
    """Split a model-given path into validated components (no `..`, no absolute, no tricks).

    `.` and empty components are dropped (POSIX meaning); an empty result names the workspace
    itself, accepted only with `allow_root`.
    """
    if not isinstance(path, str):
        raise ToolError("path_denied", "path must be a string")
    if "\x00" in path:
        raise ToolError("path_denied", "path contains a NUL byte")
    if len(path) > MAX_PATH_CHARS:
        raise ToolError("path_too_long", f"path is longer than {MAX_PATH_CHARS} characters", length=len(path))
    path = unicodedata.normalize("NFC", path)
    if path.startswith("/"):
        raise ToolError(
            "path_denied", "absolute paths are not allowed; give a path relative to the workspace"
        )
    if "\\" in path:
        raise ToolError("path_denied", "backslashes are not allowed in paths; use '/' between names")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts:
        if allow_root:
            return []
        raise ToolError("path_denied", "path is empty: name a file inside the workspace")
    if parts[0].startswith("~"):
        raise ToolError("path_denied", "'~' is not expanded here; give a path relative to the workspace")
    for part in parts:
        _validate_component(part)
    if len(parts) > MAX_DEPTH:
        raise ToolError("path_too_long", f"path is deeper than {MAX_DEPTH} folders", depth=len(parts))
    return parts


def _validate_component(part: str) -> None:
    if part == "..":
        raise ToolError("path_denied", "'..' is not allowed: paths cannot leave the workspace")
    if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ToolError("path_too_long", f"a name in the path is longer than {MAX_NAME_BYTES} bytes")
    for char in part:
        if unicodedata.category(char) in _BAD_CATEGORIES:
            raise ToolError(
                "path_denied",
                f"name contains a control or invisible character U+{ord(char):04X}",
                name=ascii(part),
            )
        if char in _SEPARATOR_LOOKALIKES:
            raise ToolError(
                "path_denied", f"name contains a slash look-alike U+{ord(char):04X}", name=ascii(part)
            )
    if part != part.strip():
        raise ToolError("path_denied", "names may not start or end with whitespace", name=part)
    compat = unicodedata.normalize("NFKC", part)
    if set(part) == {"."} or set(compat) == {"."}:
        raise ToolError("path_denied", "names made only of dots are not allowed", name=part)
    if "/" in compat or "\\" in compat:
        raise ToolError(
            "path_denied", "name contains a character that normalizes to a path separator", name=part
        )
    if part.startswith(TEMP_PREFIX):
        raise ToolError("path_denied", f"names starting with {TEMP_PREFIX!r} are reserved", name=part)


@dataclass(frozen=True)
class FileEntry:
    """One entry found by `Workspace.list_entries`; `path` is relative to the workspace."""

    path: str
    kind: Literal["file", "dir", "symlink", "other"]
    size_bytes: int


@dataclass(frozen=True)
class ReadOutcome:
    """What `Workspace.read_text` returns."""

    path: str
    content: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class WriteOutcome:
    """What `Workspace.write_text` did."""

    path: str
    size_bytes: int
    sha256: str
    created: bool


@dataclass(frozen=True)
class ListOutcome:
    """What `Workspace.list_entries` found: entries in walk order, and whether it stopped early."""

    entries: list[FileEntry]
    truncated: bool
    skipped: int


class Workspace:
    """One run's folder under the workspace root; every path it takes stays inside it."""

    def __init__(
        self,
        name: str,
        root: Path | None = None,
        *,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        max_write_bytes: int = DEFAULT_MAX_WRITE_BYTES,
    ) -> None:
        self.name = validate_workspace_name(name)
        self.root = Path(root) if root is not None else _settings_root()
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes

    @classmethod
    def from_context(cls, ctx: ToolContext) -> Workspace:
        """The workspace a tool call may touch: `ctx.workspace` must sit directly under the
        configured workspace root, with a safe name (an unchecked caller-given name is refused)."""
        given = Path(ctx.workspace)
        shown = ascii(str(given))
        if ".." in given.parts or "\x00" in str(given):
            raise ToolError("path_denied", "workspace path may not contain '..' or NUL", workspace=shown)
        root = os.path.realpath(given.parent)
        with _trusted_roots_lock:
            trusted = root in _trusted_roots
        if not trusted and root != os.path.realpath(_settings_root()):
            raise ToolError(
                "path_denied",
                "workspace is not a folder directly under a workspace root (create it with Workspace.create)",
                workspace=shown,
            )
        return cls(validate_workspace_name(given.name), given.parent)

    @property
    def path(self) -> Path:
        """The workspace folder (for display and logs; operations never resolve it by path)."""
        return self.root / self.name

    @property
    def journal_dir(self) -> Path:
        """Where this workspace's idempotency journal lives: beside the workspace, never inside."""
        return self.root / JOURNAL_DIRNAME / self.name

    def create(self) -> Path:
        """Create the workspace folder if needed (refusing a symlink in its place) and trust its
        root for `from_context`; return the folder's path."""
        self.root.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = self._open_child_dir(root_fd, self.name, create=True, shown=self.name)
            os.close(fd)
        finally:
            os.close(root_fd)
        with _trusted_roots_lock:
            _trusted_roots.add(os.path.realpath(self.root))
        return self.path

    # --- operations -------------------------------------------------------------------------

    def read_text(self, path: str) -> ReadOutcome:
        """Read one regular UTF-8 file of at most `max_read_bytes`."""
        parts = parse_relative_path(path)
        shown = "/".join(parts)
        with self._parent_dir(parts, create=False) as parent_fd:
            try:
                fd = _openat(parts[-1], _READ_FLAGS, parent_fd)
            except OSError as exc:
                raise self._explain(exc, parent_fd, parts[-1], shown) from None
            try:
                info = os.fstat(fd)
                self._require_single_regular_file(info, shown)
                if info.st_size > self.max_read_bytes:
                    raise ToolError(
                        "too_large",
                        f"{shown} is {info.st_size} bytes; the read limit is {self.max_read_bytes}",
                        path=shown,
                        size_bytes=info.st_size,
                    )
                data = _read_at_most(fd, self.max_read_bytes + 1)
            finally:
                os.close(fd)
        if len(data) > self.max_read_bytes:
            raise ToolError("too_large", f"{shown} grew past the read limit while being read", path=shown)
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError("not_text", f"{shown} is not UTF-8 text", path=shown) from None
        return ReadOutcome(shown, content, len(data), hashlib.sha256(data).hexdigest())

    def write_text(self, path: str, content: str, *, overwrite: bool = True) -> WriteOutcome:
        """Atomically replace (or create) one file: temp file in the same folder, fsync, rename.
        Missing parent folders are created. Idempotent: writing the same content twice ends the same."""
        parts = parse_relative_path(path)
        shown = "/".join(parts)
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            raise ToolError("not_text", "content is not valid Unicode text (lone surrogate)") from None
        if len(data) > self.max_write_bytes:
            raise ToolError(
                "too_large",
                f"content is {len(data)} bytes; the write limit is {self.max_write_bytes}",
                size_bytes=len(data),
            )
        name = parts[-1]
        with self._parent_dir(parts, create=True) as parent_fd:
            existing = self._lstat(parent_fd, name)
            if existing is not None:
                self._require_single_regular_file(existing, shown)
                if not overwrite:
                    raise ToolError("already_exists", f"{shown} already exists", path=shown)
            temp = TEMP_PREFIX + secrets.token_hex(8)
            fd = _openat(temp, _TEMP_FLAGS, parent_fd)
            try:
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # Both calls act on directory entries relative to parent_fd and never follow the
                # final name: if it became a symlink since the lstat above, the link itself is
                # replaced (rename) or the call fails (link), and nothing outside is touched.
                if overwrite:
                    os.rename(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
                else:
                    try:
                        os.link(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
                    except FileExistsError:
                        raise ToolError("already_exists", f"{shown} already exists", path=shown) from None
                    os.unlink(temp, dir_fd=parent_fd)
            except BaseException:
                _unlink_quietly(temp, parent_fd)
                raise
            os.fsync(parent_fd)
        return WriteOutcome(shown, len(data), hashlib.sha256(data).hexdigest(), created=existing is None)

    def delete(self, path: str) -> bool:
        """Delete one regular file; True if it existed, False if it was already absent (so a
        retried delete succeeds). Folders, symlinks and hard-linked files are refused."""
        parts = parse_relative_path(path)
        shown = "/".join(parts)
        try:
            with self._parent_dir(parts, create=False) as parent_fd:
                existing = self._lstat(parent_fd, parts[-1])
                if existing is None:
                    return False
                self._require_single_regular_file(existing, shown)
                # unlinkat never follows the final name: a swap after the lstat can only remove
                # that entry inside this folder, never a file elsewhere.
                try:
                    os.unlink(parts[-1], dir_fd=parent_fd)
                except FileNotFoundError:
                    return False
                os.fsync(parent_fd)
                return True
        except ToolError as exc:
            if exc.info.code == "not_found":
                return False
            raise

    def list_entries(
        self, path: str = "", *, recursive: bool = True, max_entries: int = DEFAULT_MAX_LIST_ENTRIES
    ) -> ListOutcome:
        """Entries under a folder of the workspace, sorted, without following symlinks."""
        parts = parse_relative_path(path, allow_root=True)
        entries: list[FileEntry] = []
        skipped = 0
        truncated = False
        with self._dir(parts, create=False) as top_fd:
            pending: list[tuple[int, list[str]]] = [(os.dup(top_fd), parts)]
            try:
                while pending and not truncated:
                    dir_fd, prefix = pending.pop(0)
                    try:
                        for name in sorted(os.listdir(dir_fd)):
                            if name.startswith(TEMP_PREFIX):
                                continue
                            try:
                                _validate_component(name)
                            except ToolError:
                                skipped += 1  # a name the tools could not address anyway
                                continue
                            if unicodedata.normalize("NFC", name) != name:
                                skipped += 1
                                continue
                            info = self._lstat(dir_fd, name)
                            if info is None:
                                continue
                            if len(entries) >= max_entries:
                                truncated = True
                                break
                            rel = prefix + [name]
                            kind = _kind(info.st_mode)
                            size = info.st_size if kind == "file" else 0
                            entries.append(FileEntry("/".join(rel), kind, size))
                            if kind == "dir" and recursive and len(rel) < MAX_DEPTH:
                                try:
                                    pending.append((_openat(name, _DIR_FLAGS, dir_fd), rel))
                                except OSError:
                                    skipped += 1  # swapped or removed since listed: not followed
                    finally:
                        os.close(dir_fd)
            finally:
                for dir_fd, _ in pending:
                    os.close(dir_fd)
        return ListOutcome(entries, truncated, skipped)

    # --- walking ----------------------------------------------------------------------------

    @contextmanager
    def _dir(self, parts: list[str], *, create: bool) -> Iterator[int]:
        """An fd of the folder `parts` names, reached one O_NOFOLLOW component at a time."""
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ToolError("workspace_not_found", "the workspace root does not exist") from exc
        try:
            fd = self._open_child_dir(root_fd, self.name, create=False, shown=self.name)
        except ToolError as exc:
            if exc.info.code == "not_found":
                raise ToolError("workspace_not_found", f"workspace {self.name!r} does not exist") from None
            raise ToolError("path_denied", f"workspace {self.name!r} is not a plain folder") from None
        finally:
            os.close(root_fd)
        try:
            for depth, part in enumerate(parts):
                child = self._open_child_dir(fd, part, create=create, shown="/".join(parts[: depth + 1]))
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _parent_dir(self, parts: list[str], *, create: bool) -> Iterator[int]:
        with self._dir(parts[:-1], create=create) as fd:
            yield fd

    def _open_child_dir(self, dir_fd: int, name: str, *, create: bool, shown: str) -> int:
        try:
            return _openat(name, _DIR_FLAGS, dir_fd)
        except FileNotFoundError:
            if not create:
                raise ToolError("not_found", f"folder {shown} does not exist", path=shown) from None
        except OSError as exc:
            raise self._explain(exc, dir_fd, name, shown, want_dir=True) from None
        try:
            os.mkdir(name, 0o755, dir_fd=dir_fd)
            os.fsync(dir_fd)  # the new folder's entry must be as durable as the file written into it
        except FileExistsError:
            pass  # created concurrently: the open below still refuses anything but a real folder
        try:
            return _openat(name, _DIR_FLAGS, dir_fd)
        except OSError as exc:
            raise self._explain(exc, dir_fd, name, shown, want_dir=True) from None

    def _explain(
        self, exc: OSError, dir_fd: int, name: str, shown: str, *, want_dir: bool = False
    ) -> ToolError:
        """Turn a failed open into a precise refusal (the open already failed: this only words it)."""
        if exc.errno == errno.ENAMETOOLONG:
            return ToolError("path_too_long", f"{shown} is too long", path=shown)
        if exc.errno == errno.ELOOP:
            return ToolError("path_denied", f"{shown} is a symbolic link; links are not followed", path=shown)
        info = self._lstat(dir_fd, name)
        if info is None:
            return ToolError("not_found", f"{shown} does not exist", path=shown)
        if stat.S_ISLNK(info.st_mode):
            return ToolError("path_denied", f"{shown} is a symbolic link; links are not followed", path=shown)
        if want_dir and stat.S_ISREG(info.st_mode):
            return ToolError("not_a_directory", f"{shown} is a file, not a folder", path=shown)
        if want_dir and not stat.S_ISDIR(info.st_mode):
            return ToolError("path_denied", f"{shown} is not a regular folder", path=shown)
        return ToolError("path_denied", f"{shown} cannot be opened ({exc.strerror})", path=shown)

    @staticmethod
    def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise ToolError("path_too_long", f"{name!r} is too long") from None
            raise

    @staticmethod
    def _require_single_regular_file(info: os.stat_result, shown: str) -> None:
        if stat.S_ISDIR(info.st_mode):
            raise ToolError("not_a_file", f"{shown} is a folder, not a file", path=shown)
        if stat.S_ISLNK(info.st_mode):
            raise ToolError("path_denied", f"{shown} is a symbolic link; links are not followed", path=shown)
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(
                "path_denied", f"{shown} is not a regular file (device, FIFO or socket)", path=shown
            )
        if info.st_nlink > 1:
            # A second name for this inode may live outside the workspace.
            raise ToolError("path_denied", f"{shown} has more than one hard link; refusing it", path=shown)


def _settings_root() -> Path:
    from settings import get_settings

    return get_settings().resolved_workspace_root()


def _kind(mode: int) -> Literal["file", "dir", "symlink", "other"]:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass

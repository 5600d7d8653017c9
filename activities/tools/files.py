"""The file tools a run may use inside its own workspace: list, read, write, delete.

Importing this module registers them into `default_registry`. Paths are confined by
`activities.tools.sandbox.Workspace`; writes and deletes go through the idempotency journal, so a
retried activity with the same idempotency key acts once and its result says `replayed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from activities.tools.journal import Journal, request_fingerprint
from activities.tools.registry import ToolContext, ToolError, default_registry
from activities.tools.sandbox import (
    DEFAULT_MAX_LIST_ENTRIES,
    DEFAULT_MAX_WRITE_BYTES,
    Workspace,
    parse_relative_path,
)
from contracts.tools import ToolResult

# A hard ceiling for the schema; the sandbox's own limits (1024 characters, 255 bytes a name)
# answer with a precise `path_too_long` below it.
_PATH_SCHEMA_MAX = 4096


class ListFilesArgs(BaseModel):
    """Arguments of `list_files`."""

    path: str = Field(
        default="",
        max_length=_PATH_SCHEMA_MAX,
        description="Folder to list, relative to the workspace; empty for the workspace itself.",
    )
    recursive: bool = Field(default=True, description="Also list everything in subfolders.")
    max_entries: int = Field(
        default=200, ge=1, le=DEFAULT_MAX_LIST_ENTRIES, description="Stop after this many entries."
    )


class FileEntryModel(BaseModel):
    """One listed entry."""

    path: str = Field(description="Path relative to the workspace, usable with read_file.")
    kind: Literal["file", "dir", "symlink", "other"]
    size_bytes: int = 0


class ListFilesResult(BaseModel):
    """What `list_files` found."""

    entries: list[FileEntryModel]
    truncated: bool = Field(description="True when max_entries stopped the listing early.")
    skipped: int = Field(default=0, description="Entries left out because their names are not addressable.")


class ReadFileArgs(BaseModel):
    """Arguments of `read_file`."""

    path: str = Field(max_length=_PATH_SCHEMA_MAX, description="File to read, relative to the workspace.")


class ReadFileResult(BaseModel):
    """A file's text."""

    path: str
    content: str
    size_bytes: int
    sha256: str


class WriteFileArgs(BaseModel):
    """Arguments of `write_file`."""

    path: str = Field(
        max_length=_PATH_SCHEMA_MAX,
        description="File to write, relative to the workspace; missing folders are created.",
    )
    content: str = Field(
        max_length=DEFAULT_MAX_WRITE_BYTES,
        description="The complete new text of the file (UTF-8, at most 1 MiB).",
    )
    overwrite: bool = Field(default=True, description="Replace the file if it exists; false fails instead.")


class WriteFileResult(BaseModel):
    """What `write_file` wrote."""

    path: str
    size_bytes: int
    sha256: str
    created: bool = Field(description="True when the file did not exist before.")


class DeleteFileArgs(BaseModel):
    """Arguments of `delete_file`."""

    path: str = Field(max_length=_PATH_SCHEMA_MAX, description="File to delete, relative to the workspace.")


class DeleteFileResult(BaseModel):
    """What `delete_file` did."""

    path: str
    deleted: bool = Field(description="False when the file was already absent (deleting is idempotent).")


@default_registry.register(
    "list_files",
    description="List files and folders in the run's workspace (paths relative to the workspace).",
    args=ListFilesArgs,
    result=ListFilesResult,
)
async def list_files(ctx: ToolContext, args: ListFilesArgs) -> ListFilesResult:
    """List entries under a workspace folder; symlinks are shown, never followed."""
    workspace = Workspace.from_context(ctx)
    listing = await asyncio.to_thread(
        workspace.list_entries, args.path, recursive=args.recursive, max_entries=args.max_entries
    )
    return ListFilesResult(
        entries=[FileEntryModel(path=e.path, kind=e.kind, size_bytes=e.size_bytes) for e in listing.entries],
        truncated=listing.truncated,
        skipped=listing.skipped,
    )


@default_registry.register(
    "read_file",
    description="Read a UTF-8 text file (at most 1 MiB) from the run's workspace.",
    args=ReadFileArgs,
    result=ReadFileResult,
)
async def read_file(ctx: ToolContext, args: ReadFileArgs) -> ReadFileResult:
    """Read one regular file of the workspace."""
    workspace = Workspace.from_context(ctx)
    got = await asyncio.to_thread(workspace.read_text, args.path)
    return ReadFileResult(path=got.path, content=got.content, size_bytes=got.size_bytes, sha256=got.sha256)


@default_registry.register(
    "write_file",
    description="Create or replace a text file in the run's workspace (atomic; at most 1 MiB).",
    args=WriteFileArgs,
    result=WriteFileResult,
    side_effect=True,
)
async def write_file(ctx: ToolContext, args: WriteFileArgs) -> dict[str, object] | ToolResult:
    """Write one file atomically, once per idempotency key."""
    workspace = Workspace.from_context(ctx)
    parse_relative_path(args.path)  # refuse a bad path before anything is journaled

    def effect() -> dict[str, object]:
        done = workspace.write_text(args.path, args.content, overwrite=args.overwrite)
        return WriteFileResult(
            path=done.path, size_bytes=done.size_bytes, sha256=done.sha256, created=done.created
        ).model_dump(mode="json")

    return await _journaled("write_file", ctx, workspace, args, effect)


@default_registry.register(
    "delete_file",
    description="Delete a file from the run's workspace (succeeds if it is already gone).",
    args=DeleteFileArgs,
    result=DeleteFileResult,
    side_effect=True,
)
async def delete_file(ctx: ToolContext, args: DeleteFileArgs) -> dict[str, object] | ToolResult:
    """Delete one regular file, once per idempotency key."""
    workspace = Workspace.from_context(ctx)
    parts = parse_relative_path(args.path)

    def effect() -> dict[str, object]:
        deleted = workspace.delete(args.path)
        return DeleteFileResult(path="/".join(parts), deleted=deleted).model_dump(mode="json")

    return await _journaled("delete_file", ctx, workspace, args, effect)


async def _journaled(
    tool: str,
    ctx: ToolContext,
    workspace: Workspace,
    args: BaseModel,
    effect: Callable[[], dict[str, object]],
) -> dict[str, object] | ToolResult:
    """Run `effect` through the workspace's journal; a replay comes back marked `replayed`."""
    if ctx.dry_run:  # the registry short-circuits this already; kept so a direct call is safe too
        return ToolResult(status="ok", tool=tool, dry_run=True, output={"dry_run": True, "would_call": tool})
    key = ctx.idempotency_key or (f"{ctx.run_id}:{ctx.step_id}" if ctx.run_id and ctx.step_id else "")
    if not key:
        raise ToolError("missing_idempotency_key", f"{tool} changes files and needs an idempotency key")
    journal = Journal(workspace.journal_dir)
    outcome = await journal.arun_once(key, request_fingerprint(tool, args.model_dump(mode="json")), effect)
    if outcome.replayed:
        return ToolResult(status="ok", tool=tool, output=outcome.result, replayed=True)
    return outcome.result

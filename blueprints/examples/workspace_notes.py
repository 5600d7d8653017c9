"""A file-workspace job: write, list and read files in the run's sandboxed workspace."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from blueprints.base import Blueprint


class NotesInput(BaseModel):
    """A topic to take notes on, and how many note files to write."""

    topic: str = Field(min_length=3, max_length=500, description="What the notes are about")
    sections: list[str] = Field(
        default_factory=lambda: ["overview", "details"],
        min_length=1,
        max_length=6,
        description="One note file per section",
    )


class NoteFile(BaseModel):
    """A file the run wrote."""

    path: str = Field(min_length=1)
    bytes: int = Field(ge=0)


class NotesOutput(BaseModel):
    """What the run left in its workspace."""

    topic: str = Field(min_length=1)
    files: list[NoteFile] = Field(min_length=1)
    index: str = Field(min_length=1, description="A short index of the notes")


def offline_output(run_input: dict[str, Any], task_results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the offline model submits: the files its tool calls actually wrote."""
    files = []
    for task in task_results:
        for obs in (task.get("result") or {}).get("observations", []):
            content = obs.get("content")
            if (
                obs.get("tool") == "write_file"
                and isinstance(content, dict)
                and content.get("status") == "ok"
            ):
                written = content.get("output") or {}
                if "path" in written:
                    files.append({"path": written["path"], "bytes": written.get("size_bytes", 0)})
    if not files:  # a dry run writes nothing: say so rather than invent files
        files = [{"path": "(dry run: nothing written)", "bytes": 0}]
    index = ", ".join(f["path"] for f in files)
    return {"topic": run_input.get("topic", ""), "files": files, "index": f"[offline model] notes: {index}"}


WORKSPACE_NOTES_V1 = Blueprint(
    name="workspace-notes",
    version="1.0.0",
    description="Writes one note file per section into the run's workspace, lists them and reads them back.",
    system_prompt=(
        "You keep tidy notes in a private workspace. Use write_file to save each note as markdown, "
        "list_files to check your work and read_file to verify content. Never touch paths outside "
        "the workspace."
    ),
    input_model=NotesInput,
    output_model=NotesOutput,
    example_input={
        "topic": "Durable execution with Temporal",
        "sections": ["overview", "retries", "signals"],
    },
    allowed_tools=("write_file", "list_files", "read_file"),
    checks=("schema",),
    offline_output=offline_output,
)

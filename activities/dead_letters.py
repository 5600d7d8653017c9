"""Dead letters: where runs that could not finish are kept for an operator to inspect and re-drive.

`DeadLetterStore` is the interface the engine writes through: `LedgerDeadLetterStore` (the SQL
ledger's `dead_letters` table) in workers; `FileDeadLetterStore` (one JSON file per letter) where no
database is wanted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from temporalio import activity

from activities.ledger import DeadLetterRecord, Ledger
from activities.ledger import schema as ledger_schema
from contracts.dead_letters import Checkpoint, DeadLetter, DeadLetterInput
from contracts.errors import ErrorInfo


@runtime_checkable
class DeadLetterStore(Protocol):
    """Write once per id, read, list, and mark re-driven."""

    async def put(self, letter: DeadLetter) -> bool:
        """Store a letter; a letter with the same id already stored is kept (returns False)."""
        ...

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter with this id, or None."""
        ...

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""
        ...

    async def mark_redriven(self, letter_id: str, by_workflow_id: str) -> DeadLetter | None:
        """Record the run that re-drove this letter; None when no such letter."""
        ...


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class FileDeadLetterStore:
    """One JSON file per letter: `<root>/<id>.json`, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, letter_id: str) -> Path:
        if not _SAFE_ID.fullmatch(letter_id):
            raise ValueError(f"invalid dead-letter id {letter_id!r}")
        return self.root / f"{letter_id}.json"

    def _write(self, letter: DeadLetter, *, overwrite: bool) -> bool:
        path = self._path(letter.id)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(letter.model_dump_json(indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # fails if the id is taken: first write wins, a retried activity is harmless
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _read(self, path: Path) -> DeadLetter | None:
        try:
            return DeadLetter.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    async def put(self, letter: DeadLetter) -> bool:
        """Store a letter once."""
        return await asyncio.to_thread(self._write, letter, overwrite=False)

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter, or None."""
        try:
            path = self._path(letter_id)
        except ValueError:
            return None
        return await asyncio.to_thread(self._read, path)

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""

        def read_all() -> list[DeadLetter]:
            if not self.root.exists():
                return []
            letters = [self._read(p) for p in self.root.glob("*.json")]
            found = [letter for letter in letters if letter is not None]
            return sorted(found, key=lambda letter: (letter.created_at, letter.id), reverse=True)[:limit]

        return await asyncio.to_thread(read_all)

    async def mark_redriven(self, letter_id: str, by_workflow_id: str) -> DeadLetter | None:
        """Record the re-driving run's workflow id."""
        letter = await self.get(letter_id)
        if letter is None:
            return None
        letter.redriven_by = by_workflow_id
        await asyncio.to_thread(self._write, letter, overwrite=True)
        return letter


class LedgerDeadLetterStore:
    """Dead letters in the SQL ledger's `dead_letters` table (kind, blueprint and the checkpoint
    travel inside the `last_checkpoint` JSON column)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def put(self, letter: DeadLetter) -> bool:
        """Insert once per id (the ledger ignores a second insert)."""
        checkpoint = letter.last_checkpoint.model_dump(mode="json")
        checkpoint.update({"kind": letter.kind, "blueprint": letter.blueprint})
        return await self._ledger.record_dead_letter(
            DeadLetterRecord(
                id=letter.id,
                workflow_id=letter.workflow_id,
                run_id=letter.run_id,
                failed_state=letter.failed_state,
                error=letter.error.model_dump(mode="json"),
                last_checkpoint=checkpoint,
                attempts=letter.attempts,
                cost_usd=letter.cost_usd,
                created_at=letter.created_at,
                redriven_by=letter.redriven_by,
            )
        )

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter, or None."""
        rows = await self._ledger.rows(ledger_schema.dead_letters, id=letter_id)
        return _from_row(rows[0]) if rows else None

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""
        rows = await self._ledger.rows(ledger_schema.dead_letters)
        letters = sorted((_from_row(r) for r in rows), key=lambda x: (x.created_at, x.id), reverse=True)
        return letters[:limit]

    async def mark_redriven(self, letter_id: str, by_workflow_id: str) -> DeadLetter | None:
        """Record the re-driving run's workflow id."""
        if not await self._ledger.mark_redriven(letter_id, by_workflow_id):
            return None
        return await self.get(letter_id)


def _from_row(row: dict[str, Any]) -> DeadLetter:
    checkpoint = dict(row.get("last_checkpoint") or {})
    kind = checkpoint.pop("kind", "run")
    blueprint = checkpoint.pop("blueprint", "")
    created = row["created_at"]
    if created.tzinfo is None:  # SQLite returns naive datetimes; the ledger writes UTC
        created = created.replace(tzinfo=UTC)
    return DeadLetter(
        id=row["id"],
        kind=kind,
        workflow_id=row["workflow_id"],
        run_id=row["run_id"],
        blueprint=blueprint,
        failed_state=row["failed_state"],
        error=ErrorInfo.model_validate(row["error"]),
        last_checkpoint=Checkpoint.model_validate(checkpoint),
        attempts=row["attempts"],
        cost_usd=row["cost_usd"],
        created_at=created,
        redriven_by=row["redriven_by"],
    )


class DeadLetterActivities:
    """The activity that writes dead letters through a `DeadLetterStore`."""

    def __init__(self, store: DeadLetterStore) -> None:
        self._store = store

    @activity.defn(name="record_dead_letter")
    async def record_dead_letter(self, inp: DeadLetterInput) -> str:
        """Write the letter (idempotent by id) and return its id."""
        created = await self._store.put(inp.letter)
        activity.logger.info(
            "dead letter %s for %s (%s)",
            inp.letter.id,
            inp.letter.workflow_id,
            "new" if created else "existing",
        )
        return inp.letter.id


def dump_letter(letter: DeadLetter) -> str:
    """Pretty JSON of a letter, for the CLI."""
    return json.dumps(letter.model_dump(mode="json"), indent=2)

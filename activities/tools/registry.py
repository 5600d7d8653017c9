"""Register a tool once; get both its model-facing schema and a validated, structured dispatch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.errors import ErrorInfo
from contracts.model import ToolSpec
from contracts.schemas import json_schema
from contracts.tools import ToolResult


@dataclass(frozen=True)
class ToolContext:
    """What a tool implementation may know about the call it serves."""

    run_id: str
    step_id: str
    workspace: Path
    """This run's confined workspace folder (already created)."""
    dry_run: bool
    idempotency_key: str


ToolFunc = Callable[[ToolContext, Any], Awaitable[Any]]
#: Undo a completed side effect: gets the call's context (with the compensation's own idempotency
#: key), its validated arguments and the output it returned. Must be idempotent on that key.
CompensationFunc = Callable[[ToolContext, Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class RegisteredTool:
    """A tool's schema, argument and result models, and implementation."""

    name: str
    description: str
    args_model: type[BaseModel]
    result_model: type[BaseModel] | None
    side_effect: bool
    func: ToolFunc
    compensation: CompensationFunc | None = None
    """The compensating action (refund ↔ charge, delete ↔ create), when the tool declares one."""

    def spec(self) -> ToolSpec:
        """The schema the model sees."""
        return ToolSpec(
            name=self.name,
            description=self.description,
            input_schema=json_schema(self.args_model),
            side_effect=self.side_effect,
            compensable=self.compensation is not None,
        )


class ToolRegistry:
    """Tools by name."""

    def __init__(self) -> None:
        self._tools: dict[str, RegisteredTool] = {}

    def register(
        self,
        name: str,
        *,
        description: str,
        args: type[BaseModel],
        result: type[BaseModel] | None = None,
        side_effect: bool = False,
        compensation: CompensationFunc | None = None,
    ) -> Callable[[ToolFunc], ToolFunc]:
        """Decorator: `@registry.register("read_file", description=..., args=ReadFileArgs)`.

        A side-effecting tool may pass `compensation` (or use `@registry.compensation_for(name)`)."""

        def decorate(func: ToolFunc) -> ToolFunc:
            if name in self._tools:
                raise ValueError(f"tool {name!r} is already registered")
            if compensation is not None and not side_effect:
                raise ValueError(f"tool {name!r}: only a side-effecting tool has a compensation")
            self._tools[name] = RegisteredTool(
                name, description, args, result, side_effect, func, compensation
            )
            return func

        return decorate

    def compensation_for(self, name: str) -> Callable[[CompensationFunc], CompensationFunc]:
        """Decorator: declare the compensating action of the registered side-effecting tool `name`."""

        def decorate(func: CompensationFunc) -> CompensationFunc:
            tool = self._tools.get(name)
            if tool is None or not tool.side_effect:
                raise ValueError(f"{name!r} is not a registered side-effecting tool")
            self._tools[name] = replace(tool, compensation=func)
            return func

        return decorate

    async def compensate(
        self, name: str, ctx: ToolContext, arguments: dict[str, Any], output: Any
    ) -> ToolResult:
        """Run a tool's compensation. Errors come back as results; the caller decides about retries."""
        tool = self._tools.get(name)
        if tool is None or tool.compensation is None:
            return ToolResult(
                status="error",
                tool=name,
                error=ErrorInfo(code="not_compensable", message=f"{name!r} declares no compensating action"),
            )
        try:
            args = tool.args_model.model_validate(arguments)
        except ValidationError as exc:
            return ToolResult(
                status="error",
                tool=name,
                error=ErrorInfo(
                    code="invalid_arguments",
                    message=f"recorded arguments of {name} no longer validate",
                    details={"errors": exc.errors(include_url=False, include_context=False)},
                ),
            )
        try:
            undone = await tool.compensation(ctx, args, output)
        except ToolError as exc:
            return ToolResult(status="error", tool=name, error=exc.info)
        if isinstance(undone, BaseModel):
            undone = undone.model_dump(mode="json")
        return ToolResult(status="ok", tool=name, output=undone)

    def get(self, name: str) -> RegisteredTool | None:
        """The tool called `name`, or None."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Registered tool names."""
        return sorted(self._tools)

    def specs(self, names: list[str]) -> list[ToolSpec]:
        """Model-facing schemas for `names` (unknown names raise KeyError)."""
        return [self._tools[n].spec() for n in names]

    async def run(self, name: str, ctx: ToolContext, arguments: dict[str, Any]) -> ToolResult:
        """Validate arguments, run the tool, validate its result. Never raises for bad input or
        a tool's own failure: those come back as `status="error"` results the model can read."""
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(
                status="error",
                tool=name,
                error=ErrorInfo(
                    code="unknown_tool", message=f"no tool named {name!r}", details={"known": self.names()}
                ),
            )
        try:
            args = tool.args_model.model_validate(arguments)
        except ValidationError as exc:
            return ToolResult(
                status="error",
                tool=name,
                error=ErrorInfo(
                    code="invalid_arguments",
                    message=f"arguments for {name} failed validation",
                    # no `input` echo: it may hold values that are not valid JSON (lone surrogates)
                    details={
                        "errors": exc.errors(include_url=False, include_context=False, include_input=False)
                    },
                ),
            )
        if tool.side_effect and ctx.dry_run:
            return ToolResult(
                status="ok",
                tool=name,
                dry_run=True,
                output={"dry_run": True, "would_call": name, "arguments": args.model_dump(mode="json")},
            )
        try:
            output = await tool.func(ctx, args)
        except ToolError as exc:
            return ToolResult(status="error", tool=name, error=exc.info)
        if isinstance(output, ToolResult):
            return output
        if tool.result_model is not None:
            try:
                output = tool.result_model.model_validate(output)
            except ValidationError as exc:
                return ToolResult(
                    status="error",
                    tool=name,
                    error=ErrorInfo(
                        code="invalid_result",
                        message=f"{name} returned a result that failed its schema",
                        details={
                            "errors": exc.errors(
                                include_url=False, include_context=False, include_input=False
                            )
                        },
                    ),
                )
        if isinstance(output, BaseModel):
            output = output.model_dump(mode="json")
        return ToolResult(status="ok", tool=name, output=output)


class ToolError(Exception):
    """Raise inside a tool to return a structured error to the model (not a crash)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.info = ErrorInfo(code=code, message=message, details=details)


#: The registry the shipped tools register into.
default_registry = ToolRegistry()

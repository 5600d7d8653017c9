"""All settings in one documented model, read from the environment (prefix-free, `.env` allowed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent


class Settings(BaseSettings):
    """Where Temporal is, where data goes, which model runs. Every field maps to an env var."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    temporal_address: str = "localhost:7233"
    """Temporal frontend host:port (the embedded dev server by default)."""
    temporal_namespace: str = "default"
    """Temporal namespace to run in."""
    temporal_tls: bool = False
    """Use TLS to reach Temporal (Temporal Cloud and production clusters)."""
    temporal_api_key: str | None = Field(default=None, repr=False)
    """API key for Temporal Cloud; sent as a bearer token."""
    task_queue: str = "ai-factory"
    """Task queue for workflows and CPU activities."""
    gpu_task_queue: str = "ai-factory-gpu"
    """Task queue served by GPU workers with in-process vLLM."""

    data_dir: Path = ROOT / ".data"
    """Git-ignored folder for the dev server's SQLite file, the ledger, workspaces and artifacts."""
    database_url: str | None = None
    """SQLAlchemy async URL of the ledger; a SQLite file under data_dir when unset."""
    workspace_root: Path | None = None
    """Root under which each run gets its own confined workspace; data_dir/workspaces when unset."""

    model_provider: str = "auto"
    """`auto` (Anthropic if its key is set, then OpenAI, else offline), `offline`, `anthropic`, `openai`."""
    model_name: str | None = None
    """Model to use with the chosen provider; a sensible default per provider when unset."""
    anthropic_api_key: str | None = Field(default=None, repr=False)
    """Anthropic API key."""
    anthropic_base_url: str | None = None
    """Override the Anthropic API endpoint (tests point it at a local server)."""
    openai_api_key: str | None = Field(default=None, repr=False)
    """OpenAI (or compatible endpoint) API key."""
    openai_base_url: str | None = None
    """OpenAI-compatible endpoint: vLLM's server, Ollama, a gateway."""
    provider_timeout_s: float = 120.0
    """Per-request timeout of provider SDK calls (Temporal owns retries)."""

    extension_modules: list[str] = Field(default_factory=list)
    """Python modules imported at start that add blueprints (a `BLUEPRINTS` list) and tools
    (registered with `activities.tools.registry.default_registry`). JSON list in the env var."""

    max_input_bytes: int = 256 * 1024
    """Largest accepted run input, as UTF-8 JSON; bigger inputs are REJECTED."""
    log_level: str = "INFO"
    """structlog level."""
    log_json: bool = False
    """JSON lines instead of console-friendly logs."""

    def resolved_workspace_root(self) -> Path:
        """The workspace root, created on first use."""
        root = self.workspace_root or self.data_dir / "workspaces"
        root.mkdir(parents=True, exist_ok=True)
        return root


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()

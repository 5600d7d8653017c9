"""All settings in one documented model, read from the environment (prefix-free, `.env` allowed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

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

    artifact_dir: Path | None = None
    """Folder of the artifact store (payloads over the threshold travel by reference); data_dir/artifacts when unset."""
    artifact_threshold_bytes: int = 256 * 1024
    """Payloads larger than this go to the artifact store instead of workflow history."""
    dead_letter_dir: Path | None = None
    """Folder of the file-backed dead-letter store (until the SQL ledger takes them); data_dir/dead_letters when unset."""
    batch_concurrency: int = 20
    """Child runs a factory line keeps in flight when the request does not say."""

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
    gpu_model: str | None = None
    """Model a GPU worker serves (a local path or a name); `worker.py --gpu --model` overrides it."""
    gpu_served_model_name: str | None = None
    """The model name routes use for the GPU model; the model path's last part when unset."""
    gpu_max_concurrent_activities: int = 256
    """Activities a GPU worker runs at once: high, so that vLLM batches many requests together."""
    gpu_schedule_to_start_s: float = 30.0
    """How long a step routed to the GPU queue waits for a GPU worker before the next model runs."""
    gpu_drain_timeout_s: float = 600.0
    """On SIGTERM a GPU worker stops polling and gives in-flight generations this long to finish."""
    gpu_heartbeat_interval_s: float = 5.0
    """How often a GPU activity heartbeats while the engine generates."""
    gpu_repair_attempts: int = 1
    """Extra generations a GPU activity tries when guided output fails schema validation."""
    gpu_memory_utilization: float = 0.90
    """Share of GPU memory vLLM may take for weights and KV cache."""
    gpu_max_model_len: int | None = None
    """Context length vLLM allocates for; the model's own when unset."""
    gpu_dtype: str = "auto"
    """Weights dtype for vLLM (`auto`, `bfloat16`, `float16`)."""
    gpu_enforce_eager: bool = False
    """Skip CUDA graph capture: faster start, slower decode (small test models, debugging)."""
    gpu_metrics_log_interval_s: float = 30.0
    """How often a GPU worker logs its throughput, queue depth and latency."""
    gpu_engine_factory: str | None = None
    """Test-only: `module:callable` building the generation engine instead of vLLM (the fake engine)."""

    price_file: Path | None = None
    """Operator price table (JSON or TOML: {version, models: {model: {input, output, cache_read,
    cache_write, context_window}}}) laid over the shipped one; a bad file stops the worker at start."""
    provider_rate_limits: dict[str, float] = Field(default_factory=dict)
    """Provider → most model calls per second. Each listed provider's calls go through its own task
    queue (`<task_queue>-<provider>`) with Temporal's task-queue rate limit, served by `worker.py`."""
    gpu_price_input_per_million: float = 0.02
    """Price of the GPU workers' model per million input tokens (amortized GPU time), when the
    price table has no entry for its served name."""
    gpu_price_output_per_million: float = 0.04
    """Price of the GPU workers' model per million output tokens, when the table has none."""
    circuit_failure_threshold: int = 5
    """Consecutive failures of one provider/model in a worker process that open its circuit."""
    circuit_cooldown_s: float = 30.0
    """How long an open circuit answers `CircuitOpen` at once before letting one call try again."""

    max_input_bytes: int = 256 * 1024
    """Largest accepted run input, as UTF-8 JSON; bigger inputs are REJECTED."""
    log_level: str = "INFO"
    """structlog level."""
    log_json: bool = False
    """JSON lines instead of console-friendly logs."""

    # --- observability (observability/) ---
    service_name: str = "ai-factory"
    """`service.name` of every span and metric this process exports."""
    trace_exporter: Literal["none", "console", "otlp-grpc", "otlp-http"] = "none"
    """Where spans go: nowhere, stdout, or an OTLP collector (gRPC or HTTP/protobuf)."""
    otlp_endpoint: str | None = None
    """OTLP collector endpoint (gRPC `host:4317`, HTTP `http://host:4318`); the exporter's default when unset."""
    otlp_headers: dict[str, str] = Field(default_factory=dict, repr=False)
    """Extra headers for the OTLP exporters (a collector's auth token); never logged."""
    metrics_otlp: bool = False
    """Also push metrics to the OTLP endpoint (the protocol follows `trace_exporter`, gRPC otherwise)."""
    metrics_port: int | None = None
    """Port of the worker's Prometheus `/metrics` endpoint (ours and Temporal's SDK metrics); off when unset."""
    metrics_host: str = "127.0.0.1"
    """Address the Prometheus endpoint binds."""
    trace_content: bool = False
    """Put prompt and completion bodies on model-call spans. Off: spans carry counts and ids only."""
    sensitive_fields: list[str] = Field(
        default_factory=lambda: [
            "api_key",
            "apikey",
            "authorization",
            "x-api-key",
            "password",
            "passwd",
            "secret",
            "client_secret",
            "access_token",
            "refresh_token",
            "token",
            "private_key",
            "cookie",
            "set-cookie",
        ]
    )
    """Field names (case-insensitive, `-`/`_` alike) whose values are redacted in logs, spans, history and the ledger."""
    redact_patterns: list[str] = Field(
        default_factory=lambda: [
            r"sk-ant-[A-Za-z0-9_\-]{8,}",
            r"sk-(?:proj-)?[A-Za-z0-9_\-]{16,}",
            r"(?i)bearer\s+[A-Za-z0-9._~+/\-]{8,}=*",
        ]
    )
    """Regular expressions of secrets to blank wherever they appear in text (API keys, bearer tokens)."""
    payload_encryption_key: str | None = Field(default=None, repr=False)
    """Base64 AES-256 key: when set, every payload entering Temporal history is AES-GCM encrypted."""
    payload_encryption_key_id: str = "default"
    """Id of `payload_encryption_key`, written into each encrypted payload's metadata (for rotation)."""
    payload_compression_min_bytes: int | None = Field(default=None, ge=0)
    """When set, payloads at least this large (up to the artifact threshold) enter Temporal history
    zlib-compressed; the UI then needs the codec server to show them. None: every payload stays
    readable JSON in history (compressed ones already written are still decoded)."""
    codec_server_port: int = 8081
    """Port of the codec server (`python -m observability.codec_server`) the Temporal UI calls to decode."""
    codec_server_cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:8233"])
    """Browser origins allowed to call the codec server (the Temporal UI's)."""
    codec_server_token: str | None = Field(default=None, repr=False)
    """When set, the codec server requires `Authorization: Bearer <token>`."""

    def provider_task_queue(self, provider: str) -> str:
        """The rate-limited task queue of one provider's model calls."""
        return f"{self.task_queue}-{provider}"

    def provider_queues(self) -> dict[str, str]:
        """Provider → its own task queue, for the providers given a rate limit."""
        return {provider: self.provider_task_queue(provider) for provider in self.provider_rate_limits}

    def resolved_artifact_dir(self) -> Path:
        """The artifact store's folder."""
        return self.artifact_dir or self.data_dir / "artifacts"

    def resolved_dead_letter_dir(self) -> Path:
        """The file-backed dead-letter store's folder."""
        return self.dead_letter_dir or self.data_dir / "dead_letters"

    def resolved_workspace_root(self) -> Path:
        """The workspace root, created on first use."""
        root = self.workspace_root or self.data_dir / "workspaces"
        root.mkdir(parents=True, exist_ok=True)
        return root


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()

"""Settings: every environment variable fitfleet reads, declared once, read once."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path


def _home() -> Path:
    return Path(os.environ.get("FITFLEET_HOME", ".fitfleet")).resolve()


def _default_db() -> str:
    return f"sqlite:///{_home() / 'fitfleet.db'}"


def _default_broker() -> str:
    return "filesystem://"


def _default_storage() -> str:
    return (_home() / "store").as_uri()


def _default_file_roots(home: Path) -> str:
    """The home folder, and the examples folder of a source checkout."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    return ",".join(str(p) for p in (home, examples) if p == home or p.is_dir())


@dataclass(frozen=True)
class Settings:
    """Typed configuration. ``env`` names the variable each field comes from."""

    # SQLAlchemy URL; PostgreSQL in production, SQLite for the embedded default.
    database_url: str = field(default_factory=_default_db, metadata={"env": "DATABASE_URL"})
    # Celery broker; redis://... in production, filesystem:// (no server) embedded.
    broker_url: str = field(default_factory=_default_broker, metadata={"env": "CELERY_BROKER_URL"})
    # Where checkpoints and final models go: s3://bucket/prefix or file:///dir.
    storage_url: str = field(
        default_factory=_default_storage, metadata={"env": "FITFLEET_STORAGE_URL"}
    )
    # Folder of the embedded default (SQLite file, local store, file broker).
    home: str = field(default_factory=lambda: str(_home()), metadata={"env": "FITFLEET_HOME"})
    # Seconds a worker's lease lasts without renewal before the reaper requeues the job.
    lease_seconds: float = field(default=10.0, metadata={"env": "FITFLEET_LEASE_SECONDS"})
    # Seconds between lease renewals (heartbeats) of a training worker.
    heartbeat_seconds: float = field(default=2.0, metadata={"env": "FITFLEET_HEARTBEAT_SECONDS"})
    # Seconds between two sweeps of the reaper.
    reaper_interval: float = field(default=2.0, metadata={"env": "FITFLEET_REAPER_INTERVAL"})
    # Default for a job spec's max_attempts.
    max_attempts: int = field(default=3, metadata={"env": "FITFLEET_MAX_ATTEMPTS"})
    # Largest accepted job spec, in bytes.
    max_spec_bytes: int = field(default=2_000_000, metadata={"env": "FITFLEET_MAX_SPEC_BYTES"})
    # Largest accepted number of epochs in a job spec.
    max_epochs: int = field(default=100_000, metadata={"env": "FITFLEET_MAX_EPOCHS"})
    # Seconds between two bulk writes of buffered metric rows.
    metrics_flush_seconds: float = field(
        default=1.0, metadata={"env": "FITFLEET_METRICS_FLUSH_SECONDS"}
    )
    # Seconds between two samples of a training process's CPU, memory and GPUs (stored as
    # the job's "system" metrics); 0 turns sampling off.
    system_metrics_seconds: float = field(
        default=10.0, metadata={"env": "FITFLEET_SYSTEM_METRICS_SECONDS"}
    )
    # "on": webhooks may call private and loopback addresses (never the cloud metadata
    # service); "off" (default) refuses them, as data locations are refused.
    webhook_private: str = field(default="off", metadata={"env": "FITFLEET_WEBHOOK_PRIVATE"})
    # Seconds before the first retry of a failed webhook delivery; each retry doubles it.
    webhook_backoff_seconds: float = field(
        default=5.0, metadata={"env": "FITFLEET_WEBHOOK_BACKOFF_SECONDS"}
    )
    # The longest wait between two tries of one webhook delivery, in seconds.
    webhook_backoff_max_seconds: float = field(
        default=600.0, metadata={"env": "FITFLEET_WEBHOOK_BACKOFF_MAX_SECONDS"}
    )
    # Tries of one webhook delivery before it is logged as failed.
    webhook_max_attempts: int = field(default=15, metadata={"env": "FITFLEET_WEBHOOK_MAX_ATTEMPTS"})
    # Seconds a webhook receiver has to answer one delivery.
    webhook_timeout_seconds: float = field(
        default=10.0, metadata={"env": "FITFLEET_WEBHOOK_TIMEOUT_SECONDS"}
    )
    # Seconds between two passes of the webhook delivery loop (it runs beside the reaper).
    webhook_interval: float = field(default=1.0, metadata={"env": "FITFLEET_WEBHOOK_INTERVAL"})
    # Where the CLI and the Python client find the API.
    api_url: str = field(default="http://127.0.0.1:8000", metadata={"env": "FITFLEET_API_URL"})
    # "on" (default): every /api/v1 route needs a token; "off" turns authentication off.
    auth: str = field(default="on", metadata={"env": "FITFLEET_AUTH"})
    # Seconds a queued job may wait unclaimed before the reaper sends its message again
    # (a broker that lost its messages, e.g. Redis restarted without persistence).
    redispatch_seconds: float = field(
        default=120.0, metadata={"env": "FITFLEET_REDISPATCH_SECONDS"}
    )
    # Split a worker's CPU into N logical devices (N > 1), so that distributed training
    # (a job with "distribute": "mirrored") can run and be tested without GPUs.
    cpu_devices: int = field(default=0, metadata={"env": "FITFLEET_CPU_DEVICES"})
    # Log level of the API, workers and reaper.
    log_level: str = field(default="INFO", metadata={"env": "FITFLEET_LOG_LEVEL"})
    # Largest accepted data upload (POST /api/v1/data, an .npz of a client's arrays), in bytes.
    max_upload_bytes: int = field(
        default=2_000_000_000, metadata={"env": "FITFLEET_MAX_UPLOAD_BYTES"}
    )
    # Bytes of downloaded data a worker machine keeps in FITFLEET_HOME/cache/data (least
    # recently used first out, at each attempt's start); 0: no limit.
    data_cache_bytes: int = field(
        default=50_000_000_000, metadata={"env": "FITFLEET_DATA_CACHE_BYTES"}
    )
    # Seconds a presigned model download link stays valid (S3 stores).
    presign_seconds: int = field(default=300, metadata={"env": "FITFLEET_PRESIGN_SECONDS"})
    # Largest accepted number of layers in a job's model (nested models counted).
    max_layers: int = field(default=1000, metadata={"env": "FITFLEET_MAX_LAYERS"})
    # Largest accepted number of parameters (weights) in a job's model.
    max_params: int = field(default=1_000_000_000, metadata={"env": "FITFLEET_MAX_PARAMS"})
    # Largest accepted fit.batch_size.
    max_batch_size: int = field(default=65_536, metadata={"env": "FITFLEET_MAX_BATCH_SIZE"})
    # Largest accepted data object (train or validation), in bytes.
    max_data_bytes: int = field(default=20_000_000_000, metadata={"env": "FITFLEET_MAX_DATA_BYTES"})
    # Comma-separated URL schemes a job's data may use (of s3, file).
    data_schemes: str = field(default="s3,file", metadata={"env": "FITFLEET_DATA_SCHEMES"})
    # Comma-separated S3 buckets or bucket/prefix entries data may come from; empty: the
    # bucket of FITFLEET_STORAGE_URL only; "*": any bucket.
    data_s3_locations: str = field(default="", metadata={"env": "FITFLEET_DATA_S3_LOCATIONS"})
    # Comma-separated folders file:// data may come from (default: FITFLEET_HOME and examples/).
    data_file_roots: str = field(
        default_factory=lambda: _default_file_roots(_home()),
        metadata={"env": "FITFLEET_DATA_FILE_ROOTS"},
    )
    # Comma-separated extra Keras classes a model may use, as module.ClassName or a
    # registered name package>ClassName (their package must be installed on the workers).
    keras_allow: str = field(default="", metadata={"env": "FITFLEET_KERAS_ALLOW"})
    # Log line format of the API, workers and reaper: "text" or "json" (one object a line).
    log_format: str = field(default="text", metadata={"env": "FITFLEET_LOG_FORMAT"})
    # Port on which each worker process serves its Prometheus metrics; 0 turns it off.
    worker_metrics_port: int = field(default=0, metadata={"env": "FITFLEET_WORKER_METRICS_PORT"})
    # Where the worker parent reads its cgroup's memory.events and memory.max, to tell an
    # out-of-memory kill of a child from another death.
    cgroup_root: str = field(default="/sys/fs/cgroup", metadata={"env": "FITFLEET_CGROUP_ROOT"})
    # Seconds between two retention passes run by the reaper; 0 leaves retention to
    # `fitfleet retention` (a cron job).
    retention_interval: float = field(default=0.0, metadata={"env": "FITFLEET_RETENTION_INTERVAL"})
    # Hours after which a job's batch-level metric rows are compacted to a downsampled set.
    metrics_retention_hours: float = field(
        default=168.0, metadata={"env": "FITFLEET_METRICS_RETENTION_HOURS"}
    )
    # Batch-level metric rows kept per job once its old rows are compacted.
    metrics_retention_points: int = field(
        default=1000, metadata={"env": "FITFLEET_METRICS_RETENTION_POINTS"}
    )
    # Seconds a job must have run (its current attempt) before a job of higher priority may
    # preempt it: it checkpoints, gives its worker back and resumes later, bit-identical.
    preempt_min_seconds: float = field(
        default=5.0, metadata={"env": "FITFLEET_PREEMPT_MIN_SECONDS"}
    )
    # Seconds after a preemption during which the same job is not preempted again.
    preempt_cooldown_seconds: float = field(
        default=60.0, metadata={"env": "FITFLEET_PREEMPT_COOLDOWN_SECONDS"}
    )
    # "on": a project below its weighted fair share may also preempt a job (of equal
    # priority) of a project above its share; "off" (default): only priority preempts.
    fair_share_preemption: str = field(
        default="off", metadata={"env": "FITFLEET_FAIR_SHARE_PREEMPTION"}
    )

    # Most worker processes one job may ask for ("distribute": {"strategy":
    # "multi_worker_mirrored", "workers": N}); a larger N is refused at submit.
    max_job_workers: int = field(default=8, metadata={"env": "FITFLEET_MAX_JOB_WORKERS"})
    # Host the other members of a multi-worker job reach this worker at (a pod IP, a
    # container's service name); empty: this machine's host name.
    worker_host: str = field(default="", metadata={"env": "FITFLEET_WORKER_HOST"})
    # Ports (first-last) a worker may listen on for a multi-worker job's collective traffic.
    worker_ports: str = field(default="29400-29499", metadata={"env": "FITFLEET_WORKER_PORTS"})
    # Seconds a half-formed gang of a multi-worker job waits for its other members before
    # its members give themselves back (so two jobs cannot each hold half of the fleet).
    gang_form_seconds: float = field(default=30.0, metadata={"env": "FITFLEET_GANG_FORM_SECONDS"})
    # Seconds a collective operation of a multi-worker job may wait for a peer before it
    # fails, so that the other members of a gang whose member died stop instead of hanging.
    collective_timeout: float = field(
        default=15.0, metadata={"env": "FITFLEET_COLLECTIVE_TIMEOUT_SECONDS"}
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif f.metadata["env"] in env and env[f.metadata["env"]] != "":
                values[f.name] = _cast(env[f.metadata["env"]], f.type)
        if "home" in values:  # defaults that live under the home folder follow it
            home = Path(values["home"]).resolve()
            values["home"] = str(home)
            values.setdefault("database_url", f"sqlite:///{home / 'fitfleet.db'}")
            values.setdefault("storage_url", (home / "store").as_uri())
            values.setdefault("data_file_roots", _default_file_roots(home))
        return cls(**values)

    @staticmethod
    def variables() -> dict[str, str]:
        """Map of environment variable to field name, for docs and deploy checks."""
        return {f.metadata["env"]: f.name for f in fields(Settings)}


def _cast(raw: str, type_name: str) -> object:
    if type_name == "float":
        return float(raw)
    if type_name == "int":
        return int(raw)
    return raw


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings (tests and the demo change the environment)."""
    global _settings
    _settings = None


def mask_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def _chosen_by(settings: Settings, variable: str) -> str:
    if os.environ.get(variable):
        return f"set by {variable}"
    return f"the default, {variable} being unset; FITFLEET_HOME is {settings.home}"


def database_problem(settings: Settings, exc: BaseException | None = None) -> str:
    """For operator commands: the database URL tried (masked), its setting, the one fix.

    ``exc`` is the driver's error, to tell a server that does not answer from a database
    that answers but has no tables yet.
    """
    url = settings.database_url
    text = str(getattr(exc, "orig", None) or exc or "").lower()
    missing = (
        "no such table" in text
        or "does not exist" in text
        and "relation" in text
        or "undefinedtable" in type(getattr(exc, "orig", None)).__name__.lower()
    )
    if url.startswith("sqlite") or missing:
        fix = "run `fitfleet db upgrade` (it creates the tables)"
    else:
        fix = (
            "start the database server (in a source checkout, `make services` starts "
            "PostgreSQL and Redis) or point DATABASE_URL at yours"
        )
    chosen = _chosen_by(settings, "DATABASE_URL")
    return f"cannot use the database at {mask_url(url)} ({chosen}); {fix}"


def broker_problem(settings: Settings) -> str:
    """For operator commands and logs: the broker URL tried (masked), its setting, the fix."""
    url = settings.broker_url
    if url.startswith("filesystem://"):
        fix = f"check that {Path(settings.home) / 'broker'} can be written"
    else:
        fix = (
            "start the broker (in a source checkout, `make services` starts PostgreSQL and "
            "Redis) or point CELERY_BROKER_URL at yours"
        )
    return (
        f"cannot reach the job queue's broker at {mask_url(url)} "
        f"({_chosen_by(settings, 'CELERY_BROKER_URL')}); {fix}"
    )

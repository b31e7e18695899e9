"""The direct link's settings, read from Django's settings where the process has them (the marketplace's
``config.settings``), else from the environment (a node process), else the embedded defaults."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEFAULT_ENGINE_PYTHON = BASE_DIR / ".venv-spu" / "bin" / "python"


@dataclass(frozen=True)
class DirectConfig:
    host: str  # the address the consumer's node listens on for the one peer of a job (127.0.0.1 embedded)
    advertised_host: str  # the address it tells the peer (a deployment's reachable name for ``host``)
    timeout_seconds: float  # how long a side waits for its peer: to connect, and for each message
    engine_python: Path  # the interpreter of .venv-spu
    work_dir: Path  # where a run's private directory (mode 0700, deleted after) is made


def _setting(name: str, default: str) -> Any:
    try:
        from django.conf import settings  # here: a party process has no Django
        if settings.configured and hasattr(settings, name):
            return getattr(settings, name)
    except ImportError:
        pass
    return os.environ.get(name, default)


def direct_config() -> DirectConfig:
    host = str(_setting("PSI_DIRECT_HOST", "127.0.0.1"))
    return DirectConfig(
        host=host,
        advertised_host=str(_setting("PSI_DIRECT_ADVERTISED_HOST", "") or host),
        timeout_seconds=float(_setting("PSI_DIRECT_TIMEOUT", "600")),
        engine_python=Path(str(_setting("PSI_DIRECT_PYTHON", str(DEFAULT_ENGINE_PYTHON)))),
        work_dir=Path(str(_setting("PSI_DIRECT_WORK_DIR", "") or tempfile.gettempdir())),
    )


def engine_available(config: DirectConfig | None = None) -> bool:
    """Whether this host has the engine's virtualenv (``make test`` installs it; ``make run`` does not need it)."""
    python = (config or direct_config()).engine_python
    return python.is_file() and os.access(python, os.X_OK)

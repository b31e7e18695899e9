"""Django settings of a node process: only what its chain client reads, and no database at all.

A node never connects to the marketplace's database: ``DATABASES`` is empty, so any query would fail
loudly. The chain endpoint and the operator's contract addresses come from the node's own environment.
"""
import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
NODE_HOME = Path(os.environ.get("NODE_HOME", ".")).resolve()

SECRET_KEY = secrets.token_hex(32)  # unused (a node serves no web page); random so nothing can rely on it
DEBUG = False
INSTALLED_APPS = ["audit"]  # its chain client; its models are never queried here
DATABASES: dict = {}
USE_TZ = True
TIME_ZONE = "UTC"

CHAIN_RPC_URL = os.environ.get("CHAIN_RPC_URL", "http://127.0.0.1:8545")
CHAIN_ID = int(os.environ.get("CHAIN_ID", "0")) or None  # the chain this node writes to; None: any
CHAIN_RPC_TIMEOUT = float(os.environ.get("CHAIN_RPC_TIMEOUT", "5"))  # seconds per JSON-RPC call
CHAIN_DEV_FUNDING = os.environ.get("CHAIN_DEV_FUNDING", "1").lower() in {"1", "true", "yes", "on"}
CHAIN_CONFIRMATIONS = int(os.environ.get("CHAIN_CONFIRMATIONS", "1"))
CHAIN_TX_TIMEOUT = float(os.environ.get("CHAIN_TX_TIMEOUT", "30"))
CHAIN_AUTO_DEPLOY = False
CONTRACTS_SOURCE_DIR = BASE_DIR / "contracts"
CONTRACTS_BUILD_DIR = Path(os.environ.get("CONTRACTS_BUILD_DIR", str(BASE_DIR / "var" / "build" / "contracts")))
CHAIN_DEPLOYMENTS_DIR = Path(os.environ.get("CHAIN_DEPLOYMENTS_DIR", str(BASE_DIR / "var" / "deployments")))
SOLC_BINARY = Path(os.environ.get("SOLC_BINARY", str(BASE_DIR / "contracts" / "solc.js")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

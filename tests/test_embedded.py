"""`make run`'s stack on its embedded default: SQLite, the filesystem broker, Ganache as a child process."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from audit.chain.devnode import free_port

pytestmark = pytest.mark.e2e


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local server
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local server
        return response.status, response.read()


def _embedded_env(var_dir: Path, chain_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env |= {"VAR_DIR": str(var_dir), "CHAIN_RPC_URL": f"http://127.0.0.1:{chain_port}",
            "PYTHONUNBUFFERED": "1"}
    return env


def test_it_runs_the_embedded_stack_and_keeps_its_data_across_a_restart(tmp_path):
    var_dir, chain_port, web_port = tmp_path / "var", free_port(), free_port()
    env = _embedded_env(var_dir, chain_port)
    log = open(tmp_path / "run.log", "w+")  # noqa: SIM115 - held while the server runs
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_embedded", "--port", str(web_port)],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        status = None
        while time.monotonic() < deadline and status != 200:
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            try:
                status, body = _get(f"http://127.0.0.1:{web_port}/")
            except OSError:
                time.sleep(1)
        assert status == 200 and b"Data marketplace" in body
        output = (tmp_path / "run.log").read_text()
        token = re.search(r"carol: ([0-9a-f]{40})", output).group(1)
        status, body = _get(f"http://127.0.0.1:{web_port}/api/products/", token)
        assert status == 200
        products = json.loads(body)["results"]
        assert {p["title"] for p in products} == {"Retail customer match", "Telecom subscriber match"}
        addresses = json.loads(next((var_dir / "deployments").glob("*.json")).read_text())
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    again = subprocess.run(
        [sys.executable, "manage.py", "run_embedded", "--no-server"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=180,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Demo data created" not in again.stdout
    assert json.loads(next((var_dir / "deployments").glob("*.json")).read_text()) == addresses

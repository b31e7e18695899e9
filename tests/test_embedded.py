"""`make run`'s stack on its embedded default: SQLite, the filesystem broker, Ganache as a child process."""
from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from nacl.public import PublicKey, SealedBox

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
            "PYTHONUNBUFFERED": "1", "API_RATE_WRITE": "", "API_RATE_READ": ""}
    return env


def _call(opener: urllib.request.OpenerDirector, url: str, *, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 - local server
    with opener.open(request, timeout=30) as response:
        return response.status, response.read()


def _wait(check, *, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(1)


def _a_new_organisation_gets_its_node_and_its_quote(base: str, product_id: str) -> None:
    """Registered while the stack runs: its node is started, enrols, imports and measures a quote."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    _call(browser, f"{base}/register/")
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = {"name": "Late Bank", "slug": "late-bank", "kind": "consumer", "username": "lara",
            "password": "a-long-passphrase", "password_again": "a-long-passphrase", "csrfmiddlewaretoken": csrf}
    status, page = _call(browser, f"{base}/register/", data=urllib.parse.urlencode(form).encode(),
                         headers={"Referer": f"{base}/register/"})
    assert status == 201 and b"being started on this machine" in page
    token = re.search(rb'id="token-secret">([0-9a-f]{40})<', page).group(1).decode()
    api = urllib.request.build_opener()
    auth = {"Authorization": f"Token {token}"}

    node = _wait(lambda: (n := json.loads(_call(api, f"{base}/api/nodes/mine/", headers=auth)[1]))["online"] and n)
    ids = "\n".join(f"C{n:06d}" for n in range(1800, 1900))
    sealed = SealedBox(PublicKey(bytes.fromhex(node["sealing_public_key"]))).encrypt(f"customer_id\n{ids}\n".encode())
    body = json.dumps({"name": "Late applicants", "id_column": "customer_id",
                       "sealed_file": base64.b64encode(sealed).decode()}).encode()
    status, answer = _call(api, f"{base}/api/datasets/import/", data=body,
                           headers=auth | {"Content-Type": "application/json"})
    assert status == 202
    dataset = json.loads(answer)["id"]
    _wait(lambda: json.loads(_call(api, f"{base}/api/datasets/{dataset}/", headers=auth)[1])["status"] == "ready")
    body = json.dumps({"product": product_id, "dataset": dataset, "purpose": "risk_control"}).encode()
    status, answer = _call(api, f"{base}/api/quotes/", data=body, headers=auth | {"Content-Type": "application/json"})
    assert status == 201
    quote = json.loads(answer)["id"]
    priced = _wait(lambda: (q := json.loads(_call(api, f"{base}/api/quotes/{quote}/", headers=auth)[1]))["status"]
                   != "measuring" and q)
    assert priced["status"] == "ready" and priced["coverage"] == 100


def _concurrent_same_key_buys_make_one_order(base: str, token: str, product_id: str) -> None:
    """50 buys at once with one Idempotency-Key on SQLite: one order, and no answer is a 500 ("database
    is locked" was, 11 times out of 50)."""
    api = urllib.request.build_opener()
    auth = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    datasets = json.loads(_call(api, f"{base}/api/datasets/", headers=auth)[1])["results"]
    mine = next(d["id"] for d in datasets if d["name"] == "Loan applicants Q4")
    body = json.dumps({"product": product_id, "dataset": mine, "purpose": "risk_control"}).encode()
    quote = json.loads(_call(api, f"{base}/api/quotes/", data=body, headers=auth)[1])["id"]
    _wait(lambda: json.loads(_call(api, f"{base}/api/quotes/{quote}/", headers=auth)[1])["status"] == "ready")

    def buy(_: int) -> tuple[int, str]:
        try:
            status, answer = _call(api, f"{base}/api/orders/create/", data=json.dumps({"quote": quote}).encode(),
                                   headers=auth | {"Idempotency-Key": f"same-{quote}"})
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())["message"]
        return status, json.loads(answer)["id"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(buy, range(50)))
    assert {status for status, _ in answers} <= {200, 201, 409}, answers
    orders = {order for status, order in answers if status in {200, 201}}
    assert len(orders) == 1, answers
    order = orders.pop()
    done = _wait(lambda: (o := json.loads(_call(api, f"{base}/api/orders/{order}/", headers=auth)[1]))["status"]
                 in {"fulfilled", "failed", "refunded"} and o)
    assert done["status"] == "fulfilled", done
    listed = json.loads(_call(api, f"{base}/api/orders/?limit=100", headers=auth)[1])
    assert [o["id"] for o in listed["results"]].count(order) == 1 and listed["count"] == 1


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
        retail = next(p["id"] for p in products if p["title"] == "Retail customer match")  # acme's C000000-C002999
        _a_new_organisation_gets_its_node_and_its_quote(f"http://127.0.0.1:{web_port}", retail)
        _concurrent_same_key_buys_make_one_order(f"http://127.0.0.1:{web_port}", token, retail)
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

"""Locust load for bench/catalog.py: every simulated user requests one path as fast as it is answered.

BENCH_PATH is the path, BENCH_TOKEN an API token (none: unauthenticated requests, which the catalog
answers 401 without touching the database; the baseline). Started by bench/catalog.py, not by hand.
"""
from __future__ import annotations

import os

from locust import FastHttpUser, task

PATH = os.environ["BENCH_PATH"]
TOKEN = os.environ.get("BENCH_TOKEN", "")
EXPECTED = int(os.environ.get("BENCH_EXPECT_STATUS", "200"))


class CatalogReader(FastHttpUser):
    headers = {"Authorization": f"Token {TOKEN}"} if TOKEN else {}

    @task
    def read(self) -> None:
        with self.client.get(PATH, headers=self.headers, name=PATH, catch_response=True) as response:
            if response.status_code != EXPECTED:
                response.failure(f"status {response.status_code}")
            else:
                response.success()

"""Rate limits of the REST API, per token (per user for session auth, per address otherwise), with
reads and writes counted apart: settings.API_RATE_READ and API_RATE_WRITE ("120/min", "30/min").

Counters live in Django's default cache: per process with the local-memory cache, shared by every
worker when CACHE_URL points at Redis. Over the limit DRF answers 429 with a Retry-After header and
the handler's usual {"message", "extra"} body.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from marketplace.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    def __init__(self) -> None:
        # The scope (read or write) is known only per request; rates are read then, so that a change
        # of settings (tests) takes effect without a restart.
        pass

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = "read" if request.method in SAFE_METHODS else "write"
        self.rate = settings.API_RATE_READ if self.scope == "read" else settings.API_RATE_WRITE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"address:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"

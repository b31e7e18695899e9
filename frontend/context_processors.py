"""What every page's template needs to format amounts: the marketplace's currency."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def locale(request: HttpRequest) -> dict[str, Any]:
    return {"CURRENCY": settings.MARKETPLACE_CURRENCY}

"""A short-lived cache of catalog pages and published products: they are the same for every caller,
so each is built once per few seconds instead of once per request. Any change to a product or its contributions bumps
a version number, so a cached page never outlives the data it shows (the TTL bounds the rest)."""
from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request

VERSION_KEY = "catalog:version"


def catalog_version() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, 1, timeout=None)
        version = cache.get(VERSION_KEY, 1)
    return int(version)


def catalog_changed() -> None:
    """Invalidate every cached catalog page."""
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # not set yet (or evicted): any new value differs from the pages' versions
        cache.set(VERSION_KEY, catalog_version() + 1, timeout=None)


def catalog_page_key(request: Request) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.lists()))
    digest = hashlib.sha256(f"{request.get_host()}|{query}".encode()).hexdigest()
    return f"catalog:page:{catalog_version()}:{digest}"


def catalog_page_get(request: Request) -> Any | None:
    if settings.CATALOG_CACHE_SECONDS <= 0:
        return None
    return cache.get(catalog_page_key(request))


def catalog_page_set(request: Request, data: Any) -> None:
    if settings.CATALOG_CACHE_SECONDS > 0:
        cache.set(catalog_page_key(request), data, timeout=settings.CATALOG_CACHE_SECONDS)


def _product_key(product_id: Any) -> str:
    return f"catalog:product:{catalog_version()}:{product_id}"


def catalog_product_get(product_id: Any) -> Any | None:
    """A published product's cached representation (None on a miss or when caching is off)."""
    if settings.CATALOG_CACHE_SECONDS <= 0:
        return None
    return cache.get(_product_key(product_id))


def catalog_product_set(product_id: Any, data: Any) -> None:
    if settings.CATALOG_CACHE_SECONDS > 0:
        cache.set(_product_key(product_id), data, timeout=settings.CATALOG_CACHE_SECONDS)

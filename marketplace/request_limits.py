"""Hostile input is refused early and cheaply, in one place.

- Size: a body longer than its route allows is answered 413 before anything reads it (the dataset import,
  whose sealed file travels as base64, may carry up to REQUEST_IMPORT_MAX_BYTES; everything else
  REQUEST_MAX_BYTES). The API answers `{"message", "extra"}`; pages a short text.
- Shape: the API's JSON parser refuses a document nested deeper than JSON_MAX_DEPTH or holding more than
  JSON_MAX_ITEMS values before decoding it (a 200 KB document nested 100,000 deep used to crash the
  server), with a 400 in the same shape as every other error.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

IMPORT_PATHS = frozenset({"/api/datasets/import/"})
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # unrolled: linear and fast
_STRUCTURE = re.compile(rb"[\[\]{},]")


def body_limit(path: str) -> int:
    return settings.REQUEST_IMPORT_MAX_BYTES if path in IMPORT_PATHS else settings.REQUEST_MAX_BYTES


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = self._refusal(request)
        return refusal if refusal is not None else self.get_response(request)

    @staticmethod
    def _refusal(request: HttpRequest) -> HttpResponse | None:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        limit = body_limit(request.path)
        try:
            length = int(declared)
        except ValueError:
            length = None
        if length is not None and 0 <= length <= limit:
            return None
        # This runs before the locale middleware: answer in the language the browser asks for.
        with translation.override(translation.get_language_from_request(request)):
            if length is None:
                return _refuse(request, 400, _("The Content-Length header is not a number."), {})
            if length < 0:
                return _refuse(request, 400, _("The Content-Length header is negative."), {})
            return _refuse(request, 413, _("The request body is %(length)s bytes; this route takes at most "
                                           "%(limit)s.") % {"length": f"{length:,}", "limit": f"{limit:,}"},
                           {"limit": limit})


def _refuse(request: HttpRequest, status: int, message: str, extra: dict[str, Any]) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"message": message, "extra": extra}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def json_shape_check(data: bytes) -> None:
    """ParseError when the document nests deeper or holds more values than allowed; linear, no decoding."""
    depth = deepest = items = 0
    for match in _STRUCTURE.finditer(_STRING.sub(b'""', data)):
        char = match.group()
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            items += 1
            if deepest > settings.JSON_MAX_DEPTH:
                raise ParseError(_("The JSON document is nested deeper than %(depth)s levels.") % {
                    "depth": settings.JSON_MAX_DEPTH})
        elif char in (b"]", b"}"):
            depth -= 1
        else:
            items += 1
        if items > settings.JSON_MAX_ITEMS:
            raise ParseError(_("The JSON document holds more than %(items)s values.") % {
                "items": f"{settings.JSON_MAX_ITEMS:,}"})


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser behind the shape check."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        data = stream.read() if stream is not None else b""
        json_shape_check(data)
        try:
            return json.loads(data.decode(self._encoding(parser_context)) if data else "null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": exc}) from exc

    @staticmethod
    def _encoding(parser_context: Mapping[str, Any] | None) -> str:
        return (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)

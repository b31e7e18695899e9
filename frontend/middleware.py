"""A signed-in member's remembered language: the language a member chose with the switcher follows the
member to any browser. A browser's own choice (the language cookie) still wins over it."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


class MemberLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = self._remembered(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)

    @staticmethod
    def _remembered(request: HttpRequest) -> str:
        if settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
            return ""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return ""
        member = getattr(user, "member", None)
        return member.language if member is not None else ""

"""Token authentication of the REST API: `Authorization: Token <secret>`, checked against the digest of
a member's API token. A bad, expired or revoked token, or a disabled account, answers 401 with the
reason; session authentication (the web UI, with CSRF) is configured beside it."""
from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from marketplace.models import ApiToken
from marketplace.services.tokens import TokenRejected, api_token_authenticate

KEYWORD = "Token"
MAX_SECRET_CHARS = 200


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None  # not ours: another authenticator (or none) answers
        if len(parts) != 2:
            raise AuthenticationFailed(_("Invalid Authorization header: send `Authorization: Token <secret>`."))
        try:
            secret = parts[1].decode("ascii")
        except UnicodeDecodeError as error:
            raise AuthenticationFailed(_("Invalid token.")) from error
        if len(secret) > MAX_SECRET_CHARS:
            raise AuthenticationFailed(_("Invalid token."))
        try:
            token = api_token_authenticate(secret=secret)
        except TokenRejected as error:
            raise AuthenticationFailed(error.message) from error
        return token.member.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 to unauthenticated requests.
        return KEYWORD


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token scheme in the OpenAPI schema (`Authorization: Token <secret>`)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=KEYWORD)

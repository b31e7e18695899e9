"""Who is asking: the signed-in user's organisation and the actor name the services record."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from marketplace.exceptions import ApplicationError
from marketplace.models import Organisation
from marketplace.selectors import user_organisation


def member_organisation(request: HttpRequest) -> Organisation:
    """The user's organisation; a signed-in user outside any organisation gets a 403 page."""
    try:
        return user_organisation(request.user)
    except ApplicationError as error:
        raise PermissionDenied(error.message) from error


def actor_of(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def rejected_status(error: ApplicationError) -> int:
    """The 4xx status a page re-rendered with a service's refusal answers with."""
    return error.status if 400 <= error.status < 500 else 400

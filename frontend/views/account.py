"""Accounts in the web UI: registering an organisation with its first member (its owner), and the
API tokens page, where a member creates tokens (the secret is shown once), lists and revokes them;
an owner also sees and revokes the tokens of the organisation's other members."""
from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from compute.jobs.identity import marketplace_public_key
from compute.jobs.services import node_enrol_token_issue
from compute.models import Node
from frontend.views.membership import actor_of, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Member
from marketplace.services.organisations import ORGANISATION_KINDS, RegistrationRefused, organisation_register
from marketplace.services.tokens import (
    TOKEN_DEFAULT_DAYS,
    TOKEN_MAX_DAYS,
    IssuedToken,
    api_token_create,
    api_token_get_manageable,
    api_token_list,
    api_token_list_of_organisation,
    api_token_revoke,
)

KIND_LABELS = {
    "provider": gettext_lazy("Provider: we list data products"),
    "consumer": gettext_lazy("Consumer: we buy the use of data"),
    "both": gettext_lazy("Both"),
}


class RegistrationForm(forms.Form):
    # A refused form comes back with what was typed, but for the passwords (never sent back to the browser).
    name = forms.CharField(label=gettext_lazy("Organisation name"), max_length=200,
                           widget=forms.TextInput(attrs={"autocomplete": "organization"}))
    slug = forms.SlugField(
        label=gettext_lazy("Short id"), max_length=50,
        help_text=gettext_lazy("Lowercase letters, digits and hyphens, e.g. acme-data; it cannot be changed later."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Organisation kind"), choices=[(kind, KIND_LABELS[kind]) for kind in ORGANISATION_KINDS],
        widget=forms.RadioSelect, initial="consumer",
    )
    username = forms.CharField(label=gettext_lazy("Your username"), max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(label=gettext_lazy("Password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text=gettext_lazy("At least 8 characters, not a common password."))
    password_again = forms.CharField(label=gettext_lazy("Password again"), strip=False,
                                     widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password") and data.get("password_again") and data["password"] != data["password_again"]:
            self.add_error("password_again", _("The two passwords differ."))
        return data


class TokenCreateForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100,
                           help_text=gettext_lazy("What the token is for, e.g. nightly listing script."))
    expires_in_days = forms.IntegerField(
        label=gettext_lazy("Valid for (days)"), min_value=1, max_value=TOKEN_MAX_DAYS, initial=TOKEN_DEFAULT_DAYS
    )


def register(request: HttpRequest) -> HttpResponse:
    """Create an organisation (provider, consumer or both) with its node and its first member as owner."""
    if request.user.is_authenticated:
        return redirect("home")
    form = RegistrationForm(request.POST or None)
    if request.method != "POST":
        return render(request, "frontend/account_register.html", {"form": form})
    if not form.is_valid():
        return render(request, "frontend/account_register.html", {"form": form}, status=400)
    values = form.cleaned_data
    try:
        organisation, user, issued = organisation_register(
            slug=values["slug"], name=values["name"], kind=values["kind"],
            username=values["username"], password=values["password"],
        )
    except RegistrationRefused as error:
        for field, problem in error.extra["fields"].items():
            form.add_error(field if field in form.fields else None, problem)
        return render(request, "frontend/account_register.html", {"form": form}, status=400)
    login(request, user)
    context = {"organisation": organisation, "issued": issued, **node_enrolment_context(organisation.node)}
    return render(request, "frontend/account_registered.html", context, status=201)


def node_enrolment_context(node: Node) -> dict[str, object]:
    """How the organisation's node gets started: by the embedded runner on this machine, or by the
    organisation on its own host with a one-time enrolment token (shown here, only its digest kept)."""
    if settings.EMBEDDED_NODES:
        return {"node_embedded": True}
    return {"node_embedded": False, "enrol_token": node_enrol_token_issue(node=node),
            "marketplace_key": marketplace_public_key().hex()}


def _member(request: HttpRequest) -> Member:
    # Auditors have tokens too (to read the audit API); only a user outside any organisation has none.
    member = getattr(request.user, "member", None)
    if member is None:
        raise PermissionDenied(_("Your account does not belong to an organisation."))
    return member


def _tokens_page(
    request: HttpRequest, member: Member, *, form: TokenCreateForm | None = None,
    issued: IssuedToken | None = None, status: int = 200,
) -> HttpResponse:
    others = []
    if member.role == Member.Role.OWNER:
        others = list(api_token_list_of_organisation(member=member).exclude(member=member)[:500])
    context = {
        "member": member,
        "tokens": list(api_token_list(member=member)[:500]),
        "others": others,
        "form": form or TokenCreateForm(),
        "issued": issued,
    }
    return render(request, "frontend/account_tokens.html", context, status=status)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """The member's API tokens; a POST creates one and shows its secret on this answer only."""
    member = _member(request)
    if request.method != "POST":
        return _tokens_page(request, member)
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, member, form=form, status=400)
    try:
        issued = api_token_create(member=member, name=form.cleaned_data["name"],
                                  expires_in_days=form.cleaned_data["expires_in_days"], actor=actor_of(request))
    except ApplicationError as error:
        form.add_error(error.extra.get("field") if error.extra.get("field") in form.fields else None, error.message)
        return _tokens_page(request, member, form=form, status=rejected_status(error))
    return _tokens_page(request, member, issued=issued, status=201)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    member = _member(request)
    try:
        token = api_token_get_manageable(member=member, token_id=token_id)
    except NotFound as error:
        raise Http404(error.message) from error
    try:
        api_token_revoke(token=token, actor=actor_of(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Token “%(name)s” (%(prefix)s…) is revoked.") % {"name": token.name,
                                                                                    "prefix": token.prefix})
    return redirect("account-tokens")

"""REST API of accounts: a member's API tokens, and an organisation's members (managed by owners).

Every member (auditors included) lists, creates and revokes their own tokens; an owner also lists and
revokes every token of the organisation's members, and adds, disables and enables members. A token or
member outside what the caller may manage answers 404, like one that does not exist. Registration is
a web page (`/register/`), not an API: API users get their tokens from the UI or from these endpoints.
"""
from __future__ import annotations

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.exceptions import PermissionDenied
from marketplace.models import ApiToken, Member
from marketplace.permissions import IsOrganisationMember, IsOrganisationOwner
from marketplace.services.organisations import member_create, member_get, member_list, member_set_active
from marketplace.services.tokens import (
    TOKEN_DEFAULT_DAYS,
    TOKEN_MAX_DAYS,
    api_token_create,
    api_token_get_manageable,
    api_token_list,
    api_token_list_of_organisation,
    api_token_revoke,
)


def _actor(request: Request) -> str:
    return f"user:{request.user.get_username()}"


def _caller(request: Request) -> Member:
    """The calling member; the views' permission classes have made sure there is one."""
    member: Member | None = getattr(request.user, "member", None)
    if member is None:
        raise PermissionDenied(gettext_lazy("Your account does not belong to an organisation."))
    return member


class TokenOutput(serializers.ModelSerializer):
    member = serializers.CharField(source="member.user.username")
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "member", "active", "created_at", "expires_at", "revoked_at",
                  "last_used_at"]


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    active = serializers.BooleanField(source="user.is_active")

    class Meta:
        model = Member
        fields = ["id", "username", "role", "active"]


class TokenListApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema(responses=TokenOutput(many=True), summary="Your API tokens, newest first")
    def get(self, request: Request) -> Response:
        return Response(TokenOutput(api_token_list(member=_caller(request))[:500], many=True).data)


class TokenCreateApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema_serializer(component_name="TokenCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        expires_in_days = serializers.IntegerField(min_value=1, max_value=TOKEN_MAX_DAYS, default=TOKEN_DEFAULT_DAYS)

    @extend_schema_serializer(component_name="TokenCreateOutput")
    class OutputSerializer(TokenOutput):
        secret = serializers.SerializerMethodField(help_text="Shown this once; only its digest is stored.")

        class Meta(TokenOutput.Meta):
            fields = [*TokenOutput.Meta.fields, "secret"]

        def get_secret(self, token: ApiToken) -> str:
            return str(self.context["secret"])

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer},
                   summary="Create an API token; its secret is in this answer only")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = api_token_create(member=_caller(request), name=data.validated_data["name"],
                                  expires_in_days=data.validated_data["expires_in_days"], actor=_actor(request))
        body = self.OutputSerializer(issued.token, context={"secret": issued.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema(request=None, responses=TokenOutput,
                   summary="Revoke one of your tokens (owners: any of the organisation's)")
    def post(self, request: Request, token_id: int) -> Response:
        token = api_token_get_manageable(member=_caller(request), token_id=token_id)
        return Response(TokenOutput(api_token_revoke(token=token, actor=_actor(request))).data)


class OrganisationTokenListApi(APIView):
    permission_classes = [IsOrganisationOwner]

    @extend_schema(responses=TokenOutput(many=True), summary="Every API token of your organisation (owners)")
    def get(self, request: Request) -> Response:
        tokens = api_token_list_of_organisation(member=_caller(request))[:1000]
        return Response(TokenOutput(tokens, many=True).data)


class MemberListApi(APIView):
    permission_classes = [IsOrganisationMember]

    @extend_schema(responses=MemberOutput(many=True), summary="Members of your organisation")
    def get(self, request: Request) -> Response:
        members = member_list(organisation=_caller(request).organisation)[:1000]
        return Response(MemberOutput(members, many=True).data)


class MemberCreateApi(APIView):
    permission_classes = [IsOrganisationOwner]

    @extend_schema_serializer(component_name="MemberCreateInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
        role = serializers.ChoiceField(Member.Role.choices, default=Member.Role.MEMBER)

    @extend_schema_serializer(component_name="MemberCreateOutput")
    class OutputSerializer(MemberOutput):
        token = serializers.SerializerMethodField(help_text="The new member's first API token, shown this once.")

        class Meta(MemberOutput.Meta):
            fields = [*MemberOutput.Meta.fields, "token"]

        def get_token(self, member: Member) -> str:
            return str(self.context["secret"])

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer},
                   summary="Add a member to your organisation (owners)")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organisation = _caller(request).organisation
        user, issued = member_create(organisation=organisation, actor=_actor(request), **data.validated_data)
        body = self.OutputSerializer(user.member, context={"secret": issued.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class MemberDisableApi(APIView):
    permission_classes = [IsOrganisationOwner]

    @extend_schema(request=None, responses=MemberOutput,
                   summary="Disable a member: their session and tokens stop working (owners)")
    def post(self, request: Request, member_id: int) -> Response:
        owner = _caller(request)
        member = member_get(organisation=owner.organisation, member_id=member_id)
        return Response(MemberOutput(member_set_active(member=member, active=False, by=owner)).data)


class MemberEnableApi(APIView):
    permission_classes = [IsOrganisationOwner]

    @extend_schema(request=None, responses=MemberOutput, summary="Enable a disabled member again (owners)")
    def post(self, request: Request, member_id: int) -> Response:
        owner = _caller(request)
        member = member_get(organisation=owner.organisation, member_id=member_id)
        return Response(MemberOutput(member_set_active(member=member, active=True, by=owner)).data)

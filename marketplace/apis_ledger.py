"""REST API of the money ledger: the operator's top-up (a payment provider stand-in), each
organisation's statement, as JSON pages or as one CSV file, and funds requests (a buyer asks the operator
to add funds; the operator approves, through the same top-up, or declines with a reason).

Views are thin: validate input, call a selector or a service, serialize. Errors are formatted by
marketplace.exception_handler.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from marketplace import selectors
from marketplace.exceptions import ApplicationError
from marketplace.models import FundsRequest, LedgerEntry, LedgerTransaction
from marketplace.pagination import CappedLimitOffsetPagination, paginated_response, paginated_serializer
from marketplace.permissions import IsMarketplaceMember, IsOperator
from marketplace.selectors_operator import funds_request_list
from marketplace.services.funding import (
    FUNDS_TEXT_MAX,
    funds_request_approve,
    funds_request_create,
    funds_request_decline,
)
from marketplace.services.ledger import TOP_UP_MAX, ledger_top_up

# Every amount of this API is integer cents of the marketplace's one currency (settings.MARKETPLACE_CURRENCY).
CENTS_HELP = ("Integer cents of the marketplace's currency (see `currency`): 12345 is 123.45. "
              "Never a decimal amount.")
TOP_UP_CENTS_HELP = "Integer cents of the marketplace's currency: 12345 is 123.45. Never a decimal amount."

STATEMENT_COLUMNS = ["date", "transaction", "account", "memo", "order", "amount", "running_balance"]


def _actor(request: Request) -> str:
    return f"user:{request.user.get_username()}"


class StatementCsvRenderer(renderers.BaseRenderer):
    """Lets `?format=csv` and `Accept: text/csv` select the CSV export; the view streams the file itself.
    What reaches this renderer is an error body, written as a one-row CSV."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, dict) and "message" in data:
            out = io.StringIO()
            csv.writer(out).writerows([["message"], [_csv_cell(str(data["message"]))]])
            return out.getvalue().encode()
        return b""


def _csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (memos carry product titles chosen by others)."""
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _statement_rows(entries: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(STATEMENT_COLUMNS)
    for entry in entries.iterator(chunk_size=2000):
        record = entry.transaction
        yield writer.writerow([
            record.created_at.isoformat(), record.id, entry.account.kind,
            _csv_cell(record.memo), record.order_id or "", entry.amount, entry.running_balance,
        ])


class StatementEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateTimeField(source="transaction.created_at")
    transaction = serializers.IntegerField(source="transaction.id")
    account = serializers.CharField(source="account.kind", help_text="balance, escrow, or fees (operator only).")
    memo = serializers.CharField(source="transaction.memo")
    order = serializers.UUIDField(source="transaction.order_id", allow_null=True)
    amount = serializers.IntegerField(help_text="Cents; negative when money leaves the account.")
    running_balance = serializers.IntegerField(help_text="The account's balance just after this entry, in cents.")


class StatementApi(APIView):
    """The caller's organisation's statement, newest entry first, paginated; `?format=csv` (or
    `Accept: text/csv`) downloads the whole statement, oldest first, as a CSV attachment."""

    permission_classes = [IsMarketplaceMember]
    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, StatementCsvRenderer]  # type: ignore[list-item]

    class OutputSerializer(serializers.Serializer):
        organisation = serializers.CharField()
        balances = serializers.DictField(child=serializers.IntegerField(),
                                         help_text="Cents on each account: balance, escrow (and fees).")
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = StatementEntryOutput(many=True)

        class Meta:
            ref_name = "StatementPage"

    @extend_schema(
        parameters=[
            *CappedLimitOffsetPagination.parameters(),
            OpenApiParameter("format", str, OpenApiParameter.QUERY, enum=["json", "csv"],
                             description="csv: the whole statement as a CSV attachment (text/csv)."),
        ],
        responses={200: OpenApiResponse(OutputSerializer, description="JSON page, or text/csv with format=csv.")},
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        organisation = selectors.user_organisation(request.user)
        if request.accepted_renderer.format == "csv":
            entries = selectors.ledger_statement(organisation=organisation, newest_first=False)
            response = StreamingHttpResponse(_statement_rows(entries), content_type="text/csv; charset=utf-8")
            filename = f"statement-{organisation.slug}-{timezone.now():%Y%m%d}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        paginator = CappedLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.ledger_statement(organisation=organisation), request, view=self)
        return Response(self.OutputSerializer({
            "organisation": organisation.slug,
            "balances": selectors.ledger_balances(organisation=organisation),
            "count": paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }).data)


TOP_UP_IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
    description="A unique key per top-up; repeating it returns the first transaction, with another body a 422.",
)


class TopUpCreateApi(APIView):
    """Top-up (payment provider stand-in): the platform operator credits an organisation's balance with
    money received outside the marketplace. Operator members only: anyone else gets a 403 whatever the body."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        organisation = serializers.SlugField(max_length=50, help_text="The slug of the organisation to credit.")
        amount = serializers.IntegerField(min_value=1, max_value=TOP_UP_MAX, help_text=TOP_UP_CENTS_HELP)

        class Meta:
            ref_name = "TopUpInput"

    class OutputSerializer(serializers.Serializer):
        transaction = serializers.IntegerField(source="id")
        organisation = serializers.CharField()
        amount = serializers.IntegerField(help_text=TOP_UP_CENTS_HELP)
        memo = serializers.CharField()
        created_at = serializers.DateTimeField()

        class Meta:
            ref_name = "TopUp"

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer},
                   parameters=[TOP_UP_IDEMPOTENCY_HEADER])
    def post(self, request: Request) -> Response:
        operator = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        record, created = ledger_top_up(
            operator=operator,
            organisation_slug=data.validated_data["organisation"],
            amount=data.validated_data["amount"],
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            actor=_actor(request),
        )
        return Response(self.OutputSerializer(_top_up_view(record)).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _top_up_view(record: LedgerTransaction) -> dict[str, Any]:
    credit = LedgerEntry.objects.select_related("account__organisation").get(transaction=record, amount__gt=0)
    organisation = credit.account.organisation
    assert organisation is not None  # a top-up always credits an organisation's balance
    return {"id": record.id, "organisation": organisation.slug, "amount": credit.amount,
            "memo": record.memo, "created_at": record.created_at}


class FundsRequestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    organisation = serializers.CharField(source="organisation.slug", help_text="The slug of the organisation.")
    organisation_name = serializers.CharField(source="organisation.name")
    amount = serializers.IntegerField(help_text=CENTS_HELP)
    currency = serializers.SerializerMethodField(help_text="ISO 4217 code of the marketplace's currency.")
    note = serializers.CharField(help_text="The buyer's note to the operator.")
    status = serializers.ChoiceField(choices=FundsRequest.Status.choices,
                                     help_text="pending, then approved (the funds were added) or declined.")
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True)
    created_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(help_text="Why it was declined (empty otherwise).")
    top_up = serializers.IntegerField(source="top_up_id", allow_null=True,
                                      help_text="The ledger transaction that added the funds, once approved.")

    class Meta:
        ref_name = "FundsRequest"

    @extend_schema_field(OpenApiTypes.STR)
    def get_currency(self, obj: FundsRequest) -> str:
        return str(settings.MARKETPLACE_CURRENCY)


class IsMarketplaceMemberOrOperator(IsMarketplaceMember):
    """A member of a trading organisation (its own requests), or the operator (everyone's), staff included."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return IsOperator().has_permission(request, view) or super().has_permission(request, view)


def _funds_status(request: Request) -> str | None:
    wanted = request.query_params.get("status") or None
    if wanted is not None and wanted not in FundsRequest.Status.values:
        raise ApplicationError(
            _("status must be one of %(choices)s.") % {"choices": ", ".join(FundsRequest.Status.values)},
            {"field": "status"})
    return wanted


class FundsRequestListCreateApi(APIView):
    """GET: funds requests, newest first: the operator sees every organisation's, anyone else their own
    organisation's. POST: a member asks the operator to add funds to its organisation's balance; one pending
    request per organisation at a time (a second is a 409). Amounts are integer cents."""

    permission_classes = [IsMarketplaceMemberOrOperator]

    class InputSerializer(serializers.Serializer):
        amount = serializers.IntegerField(min_value=1, max_value=TOP_UP_MAX, help_text=CENTS_HELP)
        note = serializers.CharField(max_length=FUNDS_TEXT_MAX, required=False, allow_blank=True, default="",
                                     help_text="Optional: what the funds are for, how they will be paid.")

        class Meta:
            ref_name = "FundsRequestInput"

    @extend_schema(
        operation_id="ledger_funds_requests_list",
        parameters=[
            *CappedLimitOffsetPagination.parameters(),
            OpenApiParameter("status", str, OpenApiParameter.QUERY, enum=FundsRequest.Status.values,
                             description="Only the requests of this status."),
        ],
        responses=paginated_serializer(FundsRequestOutput),
    )
    def get(self, request: Request) -> Response:
        wanted = _funds_status(request)
        if IsOperator().has_permission(request, self):
            requests = funds_request_list(status=wanted)
        else:
            requests = funds_request_list(organisation=selectors.user_organisation(request.user), status=wanted)
        return paginated_response(queryset=requests, serializer_class=FundsRequestOutput, request=request, view=self)

    @extend_schema(operation_id="ledger_funds_requests_create", request=InputSerializer,
                   responses={201: FundsRequestOutput})
    def post(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        funds = funds_request_create(organisation=organisation, user=request.user,
                                     amount=data.validated_data["amount"], note=data.validated_data["note"])
        return Response(FundsRequestOutput(funds).data, status=status.HTTP_201_CREATED)


class FundsRequestApproveApi(APIView):
    """The operator approves a pending request: its amount (integer cents) is added to the organisation's
    balance through the top-up (payment provider stand-in). Approving an approved request again changes
    nothing and pays nothing (200, the same body); a declined one is a 409. Operator only (403)."""

    permission_classes = [IsOperator]

    @extend_schema(request=None, responses={200: FundsRequestOutput})
    def post(self, request: Request, funds_request_id: int) -> Response:
        funds = funds_request_approve(request_id=funds_request_id, operator_user=request.user)
        return Response(FundsRequestOutput(funds).data)


class FundsRequestDeclineApi(APIView):
    """The operator declines a pending request with a reason the buyer reads (required). Declining it again
    changes nothing; an approved request is a 409. Operator only (403)."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=FUNDS_TEXT_MAX, help_text="Why: the buyer's members read it.")

        class Meta:
            ref_name = "FundsRequestDeclineInput"

    @extend_schema(request=InputSerializer, responses={200: FundsRequestOutput})
    def post(self, request: Request, funds_request_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        funds = funds_request_decline(request_id=funds_request_id, operator_user=request.user,
                                      reason=data.validated_data["reason"])
        return Response(FundsRequestOutput(funds).data)

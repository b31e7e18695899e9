"""REST API of the money ledger: the operator's top-up (a payment provider stand-in) and each
organisation's statement, as JSON pages or as one CSV file.

Views are thin: validate input, call a selector or a service, serialize. Errors are formatted by
marketplace.exception_handler.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from marketplace import selectors
from marketplace.models import LedgerEntry, LedgerTransaction
from marketplace.pagination import CappedLimitOffsetPagination
from marketplace.permissions import IsMarketplaceMember, IsOperator
from marketplace.services.ledger import TOP_UP_MAX, ledger_top_up

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
        amount = serializers.IntegerField(min_value=1, max_value=TOP_UP_MAX, help_text="Cents.")

        class Meta:
            ref_name = "TopUpInput"

    class OutputSerializer(serializers.Serializer):
        transaction = serializers.IntegerField(source="id")
        organisation = serializers.CharField()
        amount = serializers.IntegerField()
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

"""REST API for providers and consumers: one view per operation, small nested serializers.

Views are thin: validate input, call a selector or a service, serialize. Errors are formatted by
marketplace.exception_handler.
"""
from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compute.models import Job
from compute.protocols.ids import DEFAULT_ID_RULE, ID_RULES
from marketplace import selectors
from marketplace.catalog_cache import catalog_page_get, catalog_page_set, catalog_product_get, catalog_product_set
from marketplace.filters import ProductSearchInput
from marketplace.models import Dataset, Order, Product, Quote
from marketplace.pagination import CappedLimitOffsetPagination, paginated_response, paginated_serializer
from marketplace.permissions import IsConsumerMember, IsMarketplaceMember, IsProviderMember
from marketplace.services.catalog import (
    dataset_import,
    product_contribute,
    product_contribution_decide,
    product_create,
    product_transition,
)
from marketplace.services.modelling import order_predict
from marketplace.services.orders import (
    order_cancel,
    order_grant_revoke,
    order_job_start,
    order_place,
    order_result_latest,
    order_result_request,
)
from marketplace.services.quotes import quote_delivers, quote_release_refusal, quote_request


def _actor(request: Request) -> str:
    return f"user:{request.user.get_username()}"


QUALITY_HELP = (
    "The quality class the provider's node measured at import (compute/quality.py): completeness (filled "
    "cells), uniqueness (distinct ids), validity (values that fit their column's type), consistency (ids whose "
    "rows do not disagree), freshness (0.5 ** (age_days / 365), null without a date column) and age_days, all "
    "scores in [0, 1]; columns: [{name, type (integer|number|date|text), completeness, validity, distinct, "
    "and for dates newest (YYYY-MM) and age_days}]. Tables imported earlier have only completeness and uniqueness."
)


class TableOutput(serializers.Serializer):
    row_count = serializers.IntegerField()
    columns = serializers.JSONField()
    quality = serializers.JSONField(help_text=QUALITY_HELP)
    fingerprint = serializers.CharField()


class DatasetOutput(serializers.ModelSerializer):
    table = TableOutput()
    status = serializers.SerializerMethodField(help_text="Always \"ready\": the node has imported it.")

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "status", "table", "created_at"]

    def get_status(self, dataset: Dataset) -> str:
        return "ready"


class JobOutput(serializers.Serializer):
    id = serializers.UUIDField()
    protocol = serializers.CharField()
    status = serializers.CharField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    progress = serializers.JSONField()
    error = serializers.CharField()
    result_cardinality = serializers.IntegerField(allow_null=True)
    result = serializers.JSONField(help_text="What the job released in public: a count, or a joint model's "
                                             "validation metrics (AUC, KS, log-loss) and feature importances.")
    units = serializers.IntegerField(help_text="Grant units the job consumes per grant (a prediction: one per "
                                               "started batch of VFL_PREDICT_BATCH records).")
    consume_tx_hash = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    seconds = serializers.SerializerMethodField(help_text="From request to release (the latency), once finished.")

    def get_seconds(self, job: Job) -> float | None:
        return round((job.finished_at - job.created_at).total_seconds(), 3) if job.finished_at else None


class ContributionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    accepted = serializers.BooleanField()
    dataset = serializers.UUIDField(source="dataset.id")
    provider = serializers.CharField(source="dataset.organisation.slug")
    row_count = serializers.IntegerField(source="dataset.table.row_count")
    columns = serializers.JSONField(source="dataset.table.columns")
    quality = serializers.JSONField(source="dataset.table.quality", help_text=QUALITY_HELP)
    fingerprint = serializers.CharField(source="dataset.table.fingerprint")


class ProductOutput(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider.slug")
    contributions = ContributionOutput(many=True)

    class Meta:
        model = Product
        fields = [
            "id", "title", "description", "provider", "category", "tags", "compute_types", "id_rule", "purposes",
            "base_price", "price_per_match", "price_policy", "quota_unit", "quota", "validity_days", "min_cohort",
            "privacy_epsilon", "sample_preview", "status", "chain_asset_id", "contributions", "created_at",
        ]


class MeasurementOutput(serializers.Serializer):
    provider = serializers.CharField(source="contribution.dataset.organisation.slug")
    dataset = serializers.UUIDField(source="contribution.dataset_id")
    job = JobOutput()


class QuoteOutput(serializers.ModelSerializer):
    measurements = MeasurementOutput(many=True)
    delivers = serializers.SerializerMethodField(help_text="What buying the quote releases to you, and what not.")
    refusal = serializers.SerializerMethodField(
        help_text="Why the quote cannot be bought (it would release nothing); empty when it can.")

    class Meta:
        model = Quote
        fields = ["id", "product", "buyer_dataset", "purpose", "compute_type", "params", "status", "coverage",
                  "breakdown", "shares", "index", "pricing_inputs", "value_per_auc_point",
                  "price", "error", "valid_until", "delivers", "refusal", "measurements", "created_at"]

    def get_delivers(self, quote: Quote) -> str:
        return quote_delivers(quote)

    def get_refusal(self, quote: Quote) -> str:
        return quote_release_refusal(quote)


class GrantOutput(serializers.Serializer):
    grant_id = serializers.CharField()
    provider = serializers.CharField(source="provider.slug")
    status = serializers.CharField()
    share = serializers.IntegerField()
    revoked = serializers.BooleanField()


class OrderJobOutput(serializers.Serializer):
    run = serializers.IntegerField()
    grant_id = serializers.CharField(source="grant.grant_id")
    job = JobOutput()


class OrderOutput(serializers.ModelSerializer):
    buyer = serializers.CharField(source="buyer.slug")
    provider = serializers.CharField(source="product.provider.slug")
    grants = GrantOutput(many=True)
    jobs = OrderJobOutput(many=True, source="order_jobs")

    class Meta:
        model = Order
        fields = ["id", "buyer", "provider", "product", "quote", "price", "status", "terms", "shares", "grants",
                  "grant_expires_at", "failure_reason", "jobs", "created_at"]


class MeApi(APIView):
    permission_classes = [IsMarketplaceMember]

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        organisation = serializers.CharField()
        balances = serializers.DictField(child=serializers.IntegerField())

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        return Response(self.OutputSerializer({
            "username": request.user.get_username(),
            "organisation": organisation.slug,
            "balances": selectors.balance_of(organisation=organisation),
        }).data)


class DatasetListApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(operation_id="datasets_list", parameters=[*CappedLimitOffsetPagination.parameters()],
                   responses=paginated_serializer(DatasetOutput))
    def get(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        return paginated_response(queryset=selectors.dataset_list(organisation=organisation),
                                  serializer_class=DatasetOutput, request=request, view=self)


class DatasetImportOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    error = serializers.CharField()


class DatasetImportApi(APIView):
    """Import a file into your own node's vault. Seal it first to your node's key (``GET /api/nodes/mine/``,
    libsodium ``crypto_box_seal``): the marketplace relays the sealed bytes and cannot open them. 202: the
    node imports it; ``GET /api/datasets/<id>/`` then shows the dataset, or the node's reason for refusing."""

    permission_classes = [IsMarketplaceMember]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        id_column = serializers.CharField(max_length=100)
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
        sealed_file = serializers.CharField(help_text="base64 of crypto_box_seal(file, node sealing public key)")

        def validate_sealed_file(self, value: str) -> bytes:
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise serializers.ValidationError(_("Not base64.")) from exc

        def to_internal_value(self, data: Any) -> Any:
            if hasattr(data, "get") and data.get("file") is not None and data.get("sealed_file") is None:
                raise serializers.ValidationError({"sealed_file": [
                    _("Seal the file to your node's key and send it as sealed_file: the marketplace does not "
                      "accept data in the clear.")]})
            return super().to_internal_value(data)

    @extend_schema(request=InputSerializer, responses={202: DatasetImportOutput})
    def post(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pending = dataset_import(
            organisation=organisation,
            name=data.validated_data["name"],
            id_column=data.validated_data["id_column"],
            description=data.validated_data["description"],
            sealed_file=data.validated_data["sealed_file"],
            actor=_actor(request),
        )
        return Response(DatasetImportOutput(pending).data, status=status.HTTP_202_ACCEPTED)


class DatasetDetailApi(APIView):
    """A dataset (``status`` "ready"), or an import still on its way ("importing") or refused by the node
    ("failed", with ``error``)."""

    permission_classes = [IsMarketplaceMember]

    @extend_schema(responses=DatasetOutput)
    def get(self, request: Request, dataset_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        pending = selectors.dataset_import_get(organisation=organisation, import_id=dataset_id)
        if pending is not None and pending.status != "imported":
            return Response(DatasetImportOutput(pending).data)
        return Response(DatasetOutput(selectors.dataset_get(organisation=organisation, dataset_id=dataset_id)).data)


class NodeMineApi(APIView):
    """Your organisation's node as the marketplace knows it: its public keys (seal uploads to
    ``sealing_public_key``), chain address and whether it is online."""

    permission_classes = [IsMarketplaceMember]

    class OutputSerializer(serializers.Serializer):
        slug = serializers.CharField()
        status = serializers.CharField()
        online = serializers.BooleanField(source="is_online")
        sealing_public_key = serializers.CharField()
        signing_public_key = serializers.CharField()
        chain_address = serializers.CharField()
        last_seen = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        return Response(self.OutputSerializer(organisation.node).data)


class ProductListApi(APIView):
    """The catalog: published products, searched, filtered, sorted and paginated (`limit` at most 100)."""

    permission_classes = [IsMarketplaceMember]

    FilterSerializer = ProductSearchInput

    @extend_schema(operation_id="products_list",
                   parameters=[FilterSerializer, *CappedLimitOffsetPagination.parameters()],
                   responses=paginated_serializer(ProductOutput))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        cached = catalog_page_get(request)
        if cached is not None:
            return Response(cached)
        response = paginated_response(queryset=selectors.product_search(**filters.validated_data),
                                      serializer_class=ProductOutput, request=request, view=self)
        catalog_page_set(request, response.data)
        return response


class ProductCreateApi(APIView):
    permission_classes = [IsProviderMember]

    class InputSerializer(serializers.Serializer):
        datasets = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
        title = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
        category = serializers.ChoiceField(Product.Category.choices, default=Product.Category.OTHER)
        tags = serializers.ListField(child=serializers.CharField(max_length=40), default=list, max_length=10)
        purposes = serializers.ListField(child=serializers.ChoiceField(Product.Purpose.choices), min_length=1)
        base_price = serializers.IntegerField(min_value=0, max_value=10**9)
        price_per_match = serializers.IntegerField(min_value=0, max_value=10**6)
        quota = serializers.IntegerField(min_value=1, max_value=10**6, default=5)
        validity_days = serializers.IntegerField(min_value=1, max_value=3650, default=30)
        min_cohort = serializers.IntegerField(min_value=1, max_value=10**6, default=3)
        compute_types = serializers.ListField(
            child=serializers.CharField(max_length=32), required=False, max_length=10,
            help_text="The protocols it sells (names from the protocol registry); a PSI by default.")
        id_rule = serializers.ChoiceField(
            list(ID_RULES.items()), default=DEFAULT_ID_RULE,
            help_text="How ids are normalised before matching: nfc (case matters), nfkc_casefold, digits.")
        privacy_epsilon = serializers.DecimalField(
            max_digits=9, decimal_places=3, min_value=Decimal("0.001"), max_value=Decimal(100_000), required=False,
            allow_null=True, default=None,
            help_text="The total ε each buyer may spend on noisy statistics over the product; none: without noise.")
        price_policy = serializers.JSONField(
            required=False, default=dict,
            help_text='How the product is priced (amounts in cents): {"kind": "posted", "amount": 5000}; {"kind": '
                      '"per_match", "base": 500, "per_id": "2.5"}; {"kind": "tiered", "base": 500, "tiers": [[1000, '
                      '"3"], [null, "1"]]} (a later band\'s rate never above an earlier one\'s); {"kind": "noisy", '
                      '"base": 200, "rate": "400", "exponent": "0.5"} (statistics with a privacy budget only: the '
                      'price grows with ε, concavely). Empty: base_price + each matched id × price_per_match × its '
                      "dataset's quality.")
        publish = serializers.BooleanField(default=False)

    @extend_schema(request=InputSerializer, responses={201: ProductOutput})
    def post(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        product = product_create(
            provider=organisation,
            dataset_ids=[str(value) for value in values["datasets"]],
            title=values["title"],
            description=values["description"],
            category=values["category"],
            tags=values["tags"],
            purposes=values["purposes"],
            base_price=values["base_price"],
            price_per_match=values["price_per_match"],
            quota=values["quota"],
            validity_days=values["validity_days"],
            min_cohort=values["min_cohort"],
            compute_types=values.get("compute_types"),
            id_rule=values["id_rule"],
            privacy_epsilon=values["privacy_epsilon"],
            price_policy=values["price_policy"],
            publish=values["publish"],
            actor=_actor(request),
        )
        return Response(ProductOutput(selectors.product_get(product_id=product.id, organisation=organisation)).data,
                        status=status.HTTP_201_CREATED)


class ProductStatusApi(APIView):
    permission_classes = [IsProviderMember]

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(Product.Status.choices)

    @extend_schema(request=InputSerializer, responses=ProductOutput)
    def post(self, request: Request, product_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product = selectors.product_get(product_id=product_id, organisation=organisation)
        product_transition(product=product, organisation=organisation, status=data.validated_data["status"],
                           actor=_actor(request))
        return Response(ProductOutput(selectors.product_get(product_id=product_id, organisation=organisation)).data)


class ProductContributeApi(APIView):
    permission_classes = [IsProviderMember]

    class InputSerializer(serializers.Serializer):
        dataset = serializers.UUIDField()

    @extend_schema(request=InputSerializer, responses={201: ProductOutput})
    def post(self, request: Request, product_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product = selectors.product_open_for_contribution(product_id=product_id)
        product_contribute(product=product, organisation=organisation,
                           dataset_id=str(data.validated_data["dataset"]), actor=_actor(request))
        return Response(ProductOutput(selectors.product_get(product_id=product_id, organisation=organisation)).data,
                        status=status.HTTP_201_CREATED)


class ProductContributionDecideApi(APIView):
    """The lead provider accepts or rejects a partner's proposed dataset for its draft product."""

    permission_classes = [IsProviderMember]

    class InputSerializer(serializers.Serializer):
        accept = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses=ProductOutput)
    def post(self, request: Request, product_id: str, contribution_id: int) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product = selectors.product_led_by(organisation=organisation, product_id=product_id)
        product_contribution_decide(product=product, organisation=organisation, contribution_id=contribution_id,
                                    accept=data.validated_data["accept"], actor=_actor(request))
        return Response(ProductOutput(selectors.product_get(product_id=product_id, organisation=organisation)).data)


class ProductDetailApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(responses=ProductOutput)
    def get(self, request: Request, product_id: str) -> Response:
        cached = catalog_product_get(product_id)
        if cached is not None:  # only published products are cached: they look the same to every member
            return Response(cached)
        organisation = selectors.user_organisation(request.user) if hasattr(request.user, "member") else None
        product = selectors.product_get(product_id=product_id, organisation=organisation)
        data = ProductOutput(product).data
        if product.status == Product.Status.PUBLISHED:
            catalog_product_set(product_id, data)
        return Response(data)


class QuoteCreateApi(APIView):
    permission_classes = [IsConsumerMember]

    class InputSerializer(serializers.Serializer):
        product = serializers.UUIDField()
        dataset = serializers.UUIDField(help_text="One of your own datasets: the ids to enrich.")
        purpose = serializers.ChoiceField(Product.Purpose.choices)
        compute_type = serializers.CharField(
            required=False, allow_blank=True, max_length=32,
            help_text="One of the product's compute types (its first by default).")
        params = serializers.DictField(required=False, help_text="The protocol's parameters, if it takes any.")
        value_per_auc_point = serializers.IntegerField(
            required=False, min_value=0, help_text="Joint modelling priced by utility: cents one point (0.01) of "
                                                   "AUC is worth to you; the price is the uplift your trial measured "
                                                   "× the providers' share × this value, within floor and ceiling.")

    @extend_schema(request=InputSerializer, responses={201: QuoteOutput})
    def post(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        quote = quote_request(
            buyer=organisation,
            product_id=str(data.validated_data["product"]),
            dataset_id=str(data.validated_data["dataset"]),
            purpose=data.validated_data["purpose"],
            compute_type=data.validated_data.get("compute_type", ""),
            params=data.validated_data.get("params") or {},
            value_per_auc_point=data.validated_data.get("value_per_auc_point"),
            actor=_actor(request),
        )
        quote.refresh_from_db()
        return Response(QuoteOutput(quote).data, status=status.HTTP_201_CREATED)


class QuoteDetailApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(responses=QuoteOutput)
    def get(self, request: Request, quote_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        return Response(QuoteOutput(selectors.quote_get(organisation=organisation, quote_id=quote_id)).data)


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
    description="A unique key per purchase; repeating it returns the first order.",
)


class OrderListApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(operation_id="orders_list", parameters=[*CappedLimitOffsetPagination.parameters()],
                   responses=paginated_serializer(OrderOutput))
    def get(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        return paginated_response(queryset=selectors.order_list(organisation=organisation),
                                  serializer_class=OrderOutput, request=request, view=self)


class OrderCreateApi(APIView):
    permission_classes = [IsConsumerMember]

    class InputSerializer(serializers.Serializer):
        quote = serializers.UUIDField()

    @extend_schema(request=InputSerializer, responses={201: OrderOutput, 200: OrderOutput},
                   parameters=[IDEMPOTENCY_HEADER])
    def post(self, request: Request) -> Response:
        organisation = selectors.user_organisation(request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order, created = order_place(
            buyer=organisation,
            quote_id=str(data.validated_data["quote"]),
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            actor=_actor(request),
        )
        order.refresh_from_db()
        return Response(OrderOutput(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderDetailApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(responses=OrderOutput)
    def get(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        return Response(OrderOutput(selectors.order_get(organisation=organisation, order_id=order_id)).data)


class OrderJobCreateApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(request=None, responses={201: JobOutput(many=True)})
    def post(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        order = selectors.order_get_as_buyer(organisation=organisation, order_id=order_id)
        jobs = order_job_start(order=order, organisation=organisation, actor=_actor(request))
        for job in jobs:
            job.refresh_from_db()
        return Response(JobOutput(jobs, many=True).data, status=status.HTTP_201_CREATED)


class OrderPredictionApi(APIView):
    """Score the records of one of the buyer's datasets with the model its joint-modelling order trained: each
    provider's part scores on its own node; the buyer's node releases the scores as a result table (fetch it
    sealed with POST /result/). Consumes one unit of each grant per started batch of records."""

    permission_classes = [IsMarketplaceMember]

    class InputSerializer(serializers.Serializer):
        dataset = serializers.UUIDField(help_text="One of your datasets: the ids to score and your model features.")

    @extend_schema(request=InputSerializer, responses={201: JobOutput})
    def post(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        order = selectors.order_get_as_buyer(organisation=organisation, order_id=order_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = order_predict(order=order, organisation=organisation, dataset_id=data.validated_data["dataset"],
                            actor=_actor(request))
        job.refresh_from_db()
        return Response(JobOutput(job).data, status=status.HTTP_201_CREATED)


class OrderCancelApi(APIView):
    permission_classes = [IsMarketplaceMember]

    @extend_schema(request=None, responses=OrderOutput, parameters=[OpenApiParameter(
        "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
        description="Repeating the key of a cancellation that succeeded returns it again instead of a 409.")])
    def post(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        order = selectors.order_get_as_buyer(organisation=organisation, order_id=order_id)
        order_cancel(order=order, organisation=organisation, actor=_actor(request),
                     idempotency_key=request.headers.get("Idempotency-Key", ""))
        return Response(OrderOutput(selectors.order_get(organisation=organisation, order_id=order_id)).data)


class OrderGrantUsageApi(APIView):
    permission_classes = [IsMarketplaceMember]

    class OutputSerializer(serializers.Serializer):
        grant_id = serializers.CharField()
        provider = serializers.CharField()
        status = serializers.CharField()
        on_chain = serializers.BooleanField()
        quota = serializers.IntegerField()
        used = serializers.IntegerField()
        remaining = serializers.IntegerField()
        revoked = serializers.BooleanField()
        expires_at = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        order = selectors.order_get(organisation=organisation, order_id=order_id)
        return Response(self.OutputSerializer(selectors.order_grants_usage(order=order), many=True).data)


class OrderResultApi(APIView):
    """The result, sealed by the buyer's own node to a key the buyer holds. POST a public key (X25519,
    hex) to ask for it; GET returns ``sealed`` (base64) once the node has sealed it: open it with
    ``crypto_box_seal_open`` and the private key; it holds JSON {"columns", "rows"}. The marketplace
    never holds the result in the clear."""

    permission_classes = [IsMarketplaceMember]

    class InputSerializer(serializers.Serializer):
        public_key = serializers.RegexField(r"^[0-9a-fA-F]{64}$", help_text="X25519 public key, 64 hex characters")

    class OutputSerializer(serializers.Serializer):
        order = serializers.UUIDField()
        status = serializers.CharField()
        public_key = serializers.CharField(allow_blank=True)
        sealed = serializers.CharField(allow_null=True)
        error = serializers.CharField(allow_blank=True)

    def _answer(self, order: Order, code: int = status.HTTP_200_OK) -> Response:
        export = order_result_latest(order=order)
        body = {"order": order.id, "status": "none", "public_key": "", "sealed": None, "error": ""}
        if export is not None:
            body |= {"status": export.status, "public_key": export.public_key, "error": export.error,
                     "sealed": base64.b64encode(bytes(export.sealed)).decode() if export.sealed else None}
        return Response(self.OutputSerializer(body).data, status=code)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        return self._answer(selectors.order_get_as_buyer(organisation=organisation, order_id=order_id))

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer})
    def post(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        order = selectors.order_get_as_buyer(organisation=organisation, order_id=order_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order_result_request(order=order, public_key=data.validated_data["public_key"].lower(), actor=_actor(request))
        return self._answer(order, status.HTTP_202_ACCEPTED)


class OrderRevokeApi(APIView):
    permission_classes = [IsMarketplaceMember]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=500,
                                       help_text="Why the grant is revoked; the buyer reads it in the audit log.")

    @extend_schema(request=InputSerializer, responses=OrderOutput)
    def post(self, request: Request, order_id: str) -> Response:
        organisation = selectors.user_organisation(request.user)
        order = selectors.order_get(organisation=organisation, order_id=order_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order_grant_revoke(order=order, organisation=organisation, actor=_actor(request),
                           reason=data.validated_data.get("reason", ""))
        return Response(OrderOutput(selectors.order_get(organisation=organisation, order_id=order_id)).data)

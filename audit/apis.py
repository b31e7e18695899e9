"""REST API of the audit log: list and read entries a caller may see, verify one against the chain,
list the anchored batches. One view per operation; errors are formatted by the project's handler."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.http import Http404
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEntry
from audit.selectors import audit_batch_list, audit_entry_get, audit_entry_list, audit_entry_search
from audit.services import BUNDLE_MAX_ENTRIES, audit_bundle, audit_entry_verify, audit_proof

MAX_ENTRY_ID = 2**63 - 1  # ids are 64-bit; a longer number in the path is simply not found
BUNDLE_LATEST = 100


def visible_parties(user: Any) -> list[str] | None:
    """The organisation slugs whose entries `user` may read; None means every entry."""
    resolver = import_string(settings.AUDIT_PARTY_RESOLVER)
    parties = resolver(user)
    return None if parties is None else list(parties)


def _visible_entry(request: Request, entry_id: int) -> AuditEntry:
    # An entry the caller may not see is answered exactly like one that does not exist.
    if entry_id > MAX_ENTRY_ID:
        raise Http404
    entry = audit_entry_get(entry_id=entry_id, parties=visible_parties(request.user))
    if entry is None:
        raise Http404
    return entry


class AuditPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class EntryOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "seq", "created_at", "actor", "action", "subject", "parties", "payload",
                  "payload_digest", "prev_hash", "entry_hash", "batch", "leaf_index"]


class EntryPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EntryOutput(many=True)


class EntryFilterSerializer(serializers.Serializer):
    subject = serializers.CharField(required=False, max_length=200, help_text="exactly, e.g. order:<id>")
    action = serializers.CharField(required=False, max_length=100, help_text="exactly, e.g. order.placed")
    product = serializers.UUIDField(required=False, help_text="entries about this product")
    order = serializers.UUIDField(required=False, help_text="entries about this order (and its runs)")
    organisation = serializers.SlugField(required=False, max_length=50,
                                         help_text="entries this organisation (its slug) is a party to")
    since = serializers.DateTimeField(required=False, help_text="recorded at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="recorded before (ISO 8601)")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("product") and attrs.get("order"):
            # Every entry has one subject: both at once could only match nothing.
            raise serializers.ValidationError({"order": [_("Filter by a product or by an order, not both.")]})
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": [_("The end of the range must come after its start.")]})
        return attrs


class EntryListApi(APIView):
    class FilterSerializer(EntryFilterSerializer):
        limit = serializers.IntegerField(required=False, min_value=1, max_value=AuditPagination.max_limit)
        offset = serializers.IntegerField(required=False, min_value=0)

    @extend_schema(parameters=[FilterSerializer], responses=EntryPageOutput,
                   operation_id="audit_entries_list",
                   summary="Audit entries the caller may read, newest first, by subject, action, product, order, "
                           "organisation and time")
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        search = {name: value for name, value in filters.validated_data.items() if name not in {"limit", "offset"}}
        entries = audit_entry_search(parties=visible_parties(request.user), **search)
        paginator = AuditPagination()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(EntryOutput(page, many=True).data)


class EntryDetailApi(APIView):
    @extend_schema(responses=EntryOutput, summary="One audit entry")
    def get(self, request: Request, entry_id: int) -> Response:
        return Response(EntryOutput(_visible_entry(request, entry_id)).data)


class EntryVerifyApi(APIView):
    class OutputSerializer(serializers.Serializer):
        entry_id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=["verified", "tampered", "pending", "missing"])
        problems = serializers.ListField(child=serializers.CharField())
        detail = serializers.CharField(allow_blank=True)
        batch_id = serializers.IntegerField(allow_null=True)
        leaf_index = serializers.IntegerField(allow_null=True)
        proof = serializers.ListField(
            child=serializers.CharField(), help_text="sibling hashes from the leaf up to the root, hex"
        )
        root = serializers.CharField(allow_null=True)  # type: ignore[assignment] # a field, not Field.root
        chain_root = serializers.CharField(allow_null=True, help_text="the root read from AuditAnchor")
        tx_hash = serializers.CharField(allow_null=True)

    @extend_schema(responses=OutputSerializer,
                   summary="Verify an entry: hash chain, batch root, Merkle proof against the chain")
    def get(self, request: Request, entry_id: int) -> Response:
        entry = _visible_entry(request, entry_id)
        return Response(self.OutputSerializer(asdict(audit_entry_verify(entry_id=entry.pk))).data)


class BundleApi(APIView):
    class FilterSerializer(serializers.Serializer):
        subject = serializers.CharField(required=False, max_length=200,
                                        help_text="every entry about it, e.g. order:<id> or product:<id>")
        entry = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ENTRY_ID)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "subject" in attrs and "entry" in attrs:
                raise serializers.ValidationError(_("Give a subject or an entry, not both."))
            return attrs

    @extend_schema(parameters=[FilterSerializer], responses={200: dict},
                   summary="A proof bundle: entries, their Merkle proofs, batch roots, the anchor contract and "
                           "chain id, for `python -m audit.verifier` (docs/audit.md); by default the caller's "
                           f"{BUNDLE_LATEST} newest entries")
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        if "entry" in filters.validated_data:
            entries = [_visible_entry(request, filters.validated_data["entry"])]
        elif "subject" in filters.validated_data:
            found = audit_entry_list(parties=visible_parties(request.user), subject=filters.validated_data["subject"])
            entries = list(found[: BUNDLE_MAX_ENTRIES + 1])
            if len(entries) > BUNDLE_MAX_ENTRIES:
                raise serializers.ValidationError(
                    {"subject": _("More than %(count)s entries: ask for fewer (one entry at a time).") % {
                        "count": BUNDLE_MAX_ENTRIES}})
            if not entries:
                raise Http404
        else:
            entries = list(audit_entry_list(parties=visible_parties(request.user))[:BUNDLE_LATEST])
        return Response(audit_bundle(entries=entries))


class ProofApi(APIView):
    """Where an entry sits and the path to its batch's root, by the entry's hash: public, without any of
    the entry's contents. Whoever holds an entry (a party, an auditor, a bundle) checks it with this and
    the chain alone."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        entry_hash = serializers.CharField()
        batch = serializers.IntegerField()
        leaf_index = serializers.IntegerField()
        size = serializers.IntegerField()
        proof = serializers.ListField(child=serializers.CharField())
        root = serializers.CharField()  # type: ignore[assignment] # a field, not Field.root
        anchor_tx = serializers.CharField(allow_null=True)
        chain_id = serializers.IntegerField()
        anchor_contract = serializers.CharField()

    @extend_schema(responses=OutputSerializer, summary="An anchored entry's inclusion proof, by its hash (public)")
    def get(self, request: Request, entry_hash: str) -> Response:
        valid = len(entry_hash) == 64 and all(char in "0123456789abcdef" for char in entry_hash.lower())
        proof = audit_proof(entry_hash=entry_hash.lower()) if valid else None
        if proof is None:
            raise Http404
        return Response(self.OutputSerializer(proof).data)


class BatchOutput(serializers.Serializer):
    id = serializers.IntegerField()
    root = serializers.CharField()  # type: ignore[assignment] # a field, not Field.root
    size = serializers.IntegerField()
    first_entry_id = serializers.IntegerField()
    last_entry_id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    anchor_status = serializers.CharField(source="outbox.status", default=None)
    tx_hash = serializers.CharField(source="outbox.tx_hash", default=None)
    block_number = serializers.IntegerField(source="outbox.block_number", default=None)


class BatchPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = BatchOutput(many=True)


class BatchListApi(APIView):
    permission_classes = [AllowAny]  # roots, sizes and transactions: public, so that anyone can check a proof

    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(required=False, min_value=1, max_value=AuditPagination.max_limit)
        offset = serializers.IntegerField(required=False, min_value=0)

    @extend_schema(parameters=[FilterSerializer], responses=BatchPageOutput,
                   operation_id="audit_batches_list",
                   summary="Sealed batches and their anchor transactions, newest first")
    def get(self, request: Request) -> Response:
        self.FilterSerializer(data=request.query_params).is_valid(raise_exception=True)
        paginator = AuditPagination()
        page = paginator.paginate_queryset(audit_batch_list(), request, view=self)
        return paginator.get_paginated_response(BatchOutput(page, many=True).data)

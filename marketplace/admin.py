"""Django admin for the platform operator (staff users).

Organisations' flags and members' roles can be changed here; everything created through a service
(organisations with their node, members with their tokens, products registered on chain, orders,
quotes) cannot be added here, and money (the ledger) is read-only: it moves only through
marketplace.services.ledger, whose transactions always sum to zero. API tokens are shown without any
secret (only the digest is stored) and can be revoked with an action.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import ReadOnlyAdmin
from marketplace.exceptions import ApplicationError
from marketplace.models import (
    ApiToken,
    Dataset,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Member,
    Order,
    OrderGrant,
    Organisation,
    Product,
    Quote,
)
from marketplace.services.tokens import api_token_revoke


class NoAddNoDeleteAdmin(admin.ModelAdmin):
    """Rows that only a service may create (they carry a node, keys, chain state) or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MemberInline(admin.TabularInline):
    model = Member
    fields = ["user", "role"]
    readonly_fields = ["user"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organisation)
class OrganisationAdmin(NoAddNoDeleteAdmin):
    list_display = ["slug", "name", "is_provider", "is_consumer", "is_operator", "is_auditor", "created_at"]
    list_filter = ["is_provider", "is_consumer", "is_operator", "is_auditor"]
    search_fields = ["slug", "name"]
    fields = ["slug", "name", "is_provider", "is_consumer", "is_operator", "is_auditor", "node", "created_at"]
    readonly_fields = ["slug", "node", "created_at"]
    inlines = [MemberInline]


@admin.register(Member)
class MemberAdmin(NoAddNoDeleteAdmin):
    list_display = ["user", "organisation", "role", "is_active"]
    list_filter = ["role", "organisation"]
    search_fields = ["user__username", "organisation__slug"]
    fields = ["user", "organisation", "role"]
    readonly_fields = ["user", "organisation"]
    list_select_related = ["user", "organisation"]

    @admin.display(boolean=True, description="active")
    def is_active(self, member: Member) -> bool:
        return member.user.is_active


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "member", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["member__organisation"]
    search_fields = ["name", "prefix", "member__user__username"]
    # The digest is left out: it is not the secret, but nobody needs to read it.
    fields = ["name", "prefix", "member", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_select_related = ["member__user", "member__organisation"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            try:
                api_token_revoke(token=token, actor=f"operator:{request.user.get_username()}")
            except ApplicationError as error:
                self.message_user(request, f"{token}: {error.message}", messages.WARNING)
            else:
                revoked += 1
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "organisation", "created_at"]
    list_filter = ["organisation"]
    search_fields = ["name"]
    list_select_related = ["organisation"]


@admin.register(Product)
class ProductAdmin(NoAddNoDeleteAdmin):
    """Descriptions can be corrected; terms, prices and status move through the catalog services
    (status changes are registered on chain)."""

    list_display = ["title", "provider", "category", "status", "base_price", "price_per_match", "created_at"]
    list_filter = ["status", "category"]
    search_fields = ["title", "description", "provider__slug"]
    list_select_related = ["provider"]
    readonly_fields = ["provider", "compute_types", "purposes", "base_price", "price_per_match", "quota_unit",
                       "quota", "validity_days", "min_cohort", "status", "chain_asset_id", "created_at",
                       "updated_at"]
    fields = ["title", "description", "category", "tags", "sample_preview", *readonly_fields]


class ReadOnlyInline(admin.TabularInline):
    """Rows written by services, shown beside their parent and never edited here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderGrantInline(ReadOnlyInline):
    model = OrderGrant
    fields = readonly_fields = ("grant_id", "provider", "status", "share", "revoked")


@admin.register(Quote)
class QuoteAdmin(ReadOnlyAdmin):
    list_display = ["id", "product", "buyer", "status", "price", "valid_until", "created_at"]
    list_filter = ["status"]
    list_select_related = ["product", "buyer"]


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["id", "product", "buyer", "status", "price", "created_at"]
    list_filter = ["status"]
    search_fields = ["id", "buyer__slug", "product__title"]
    list_select_related = ["product", "buyer"]
    date_hierarchy = "created_at"
    inlines = [OrderGrantInline]


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = readonly_fields = ("account", "amount")


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "organisation", "kind", "balance"]
    list_filter = ["kind"]
    search_fields = ["organisation__slug"]
    list_select_related = ["organisation"]


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ["id", "memo", "order", "created_at"]
    search_fields = ["memo"]
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "transaction", "account", "amount"]
    list_select_related = ["transaction", "account__organisation"]

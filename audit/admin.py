"""Read-only admin of the audit log: append-only rows are shown, never edited or deleted."""
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditBatch, AuditEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "seq", "created_at", "actor", "action", "subject", "batch", "leaf_index"]
    list_filter = ["action"]
    search_fields = ["subject", "actor"]
    list_select_related = ["batch"]
    show_full_result_count = False


@admin.register(AuditBatch)
class AuditBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "size", "first_entry_id", "last_entry_id", "root", "outbox", "created_at"]
    list_select_related = ["outbox"]

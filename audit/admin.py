"""Read-only admin of the audit log and the chain outbox: append-only rows are shown, never edited or
deleted. The one thing an operator may do is ask for stuck chain writes to be processed again."""
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.chain.outbox import outbox_retry, outbox_stuck
from audit.models import AuditBatch, AuditEntry, ChainOutbox


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Acting on stuck work (retrying a chain write, failing a job) is for the platform's superusers;
        other staff only look."""
        return bool(request.user.is_active and request.user.is_superuser)


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


class OutboxStuckFilter(admin.SimpleListFilter):
    """Open rows nobody has touched for a minute (their task was lost or keeps failing), and FAILED rows."""

    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Stuck or failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ChainOutbox]) -> QuerySet[ChainOutbox]:
        return queryset.filter(outbox_stuck()) if self.value() == "yes" else queryset


@admin.register(ChainOutbox)
class ChainOutboxAdmin(ReadOnlyAdmin):
    list_display = ["id", "contract", "function", "subject", "status", "attempts", "nonce", "tx_hash",
                    "short_error", "updated_at", "claimed_until"]
    list_filter = [OutboxStuckFilter, "status", "contract"]
    search_fields = ["subject", "tx_hash"]
    list_select_related = ["account"]
    exclude = ["raw_tx"]  # signed bytes: nothing to read there, the hash identifies them
    actions = ["retry_now"]

    @admin.display(description="last error")
    def short_error(self, row: ChainOutbox) -> str:
        return row.last_error[:120]

    @admin.action(description="Retry now", permissions=["operate"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[ChainOutbox]) -> None:
        """Queue the selected rows again (what audit.chain.outbox.outbox_retry allows: open rows, and
        FAILED rows that failed on a transient error; reverted rows and bad arguments stay FAILED)."""
        actor = f"operator:{request.user.get_username()}"
        queued = [pk for pk in queryset.values_list("pk", flat=True) if outbox_retry(outbox_id=pk, actor=actor)]
        skipped = queryset.exclude(pk__in=queued).count()
        self.message_user(request, f"{len(queued)} row(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} row(s) left as they are: confirmed, or refused by the chain "
                                       "or their arguments (a retry would be refused again).", messages.WARNING)

"""Read-only admin of nodes, stored tables and jobs: they change only through the compute services
(keys, vault files and chain state would drift from an edited row). An operator can find stalled jobs
and fail one now, through the same service the sweep uses (the buyer is refunded, nothing released).

There is no "retry" of a job: a start message sent again is a new message to the nodes (the original's
nonce is not kept, so the node's dedupe by nonce does not apply) and runs the job a second time beside
the first. The chain charge is safe (keyed by grant and job), but the buyer's node finishes twice: the
second finish finds its protocol state gone and reports the job failed, which may reach the marketplace
before the first run's success and refund a buyer who holds the result.
"""
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.admin import ReadOnlyAdmin
from compute.jobs.services import job_fail
from compute.models import Job, JobParty, Node, NodeMessage, ResultExport, StoredTable, TableImport

UNFINISHED = [Job.Status.PENDING, Job.Status.RUNNING]


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "status", "chain_address", "last_seen", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(StoredTable)
class StoredTableAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "node", "row_count", "fingerprint", "created_at"]
    search_fields = ["name", "fingerprint"]
    list_filter = ["node"]
    list_select_related = ["node"]


class JobStalledFilter(admin.SimpleListFilter):
    """Unfinished jobs that have not moved for JOB_STALL_SECONDS (the sweep fails them on its next run)."""

    title = "stalled"
    parameter_name = "stalled"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", f"Not moved for {settings.JOB_STALL_SECONDS} s")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() != "yes":
            return queryset
        cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALL_SECONDS)
        return queryset.filter(status__in=UNFINISHED, updated_at__lt=cutoff)


class JobPartyInline(admin.TabularInline):
    model = JobParty
    fields = ["position", "role", "table", "grant_id"]
    readonly_fields = ["position", "role", "table", "grant_id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "protocol", "caller", "status", "step", "total_steps", "created_at", "updated_at",
                    "finished_at"]
    list_filter = [JobStalledFilter, "status", "protocol", "caller"]
    search_fields = ["parties__grant_id"]
    inlines = [JobPartyInline]
    date_hierarchy = "created_at"
    actions = ["fail_and_refund"]

    @admin.action(description="Fail now and refund", permissions=["operate"])
    def fail_and_refund(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Fail the selected unfinished jobs with the operator's name as the reason; finished jobs are left
        alone. The buyer is refunded as for any failed job (job_finished → the order's settlement)."""
        operator = request.user.get_username()
        failed = 0
        for job_id in queryset.filter(status__in=UNFINISHED).values_list("id", flat=True):
            job_fail(job_id=str(job_id), reason=f"Stopped by the platform operator ({operator}); "
                                                "nothing was released.")
            failed += 1
        self.message_user(request, f"{failed} job(s) failed; the orders they serve are refunded.",
                          messages.SUCCESS)
        if queryset.count() > failed:
            self.message_user(request, f"{queryset.count() - failed} finished job(s) left as they are.",
                              messages.WARNING)


@admin.register(TableImport)
class TableImportAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "node", "status", "error", "created_at"]
    list_filter = ["status", "node"]


@admin.register(ResultExport)
class ResultExportAdmin(ReadOnlyAdmin):
    list_display = ["id", "subject", "node", "status", "created_at"]
    list_filter = ["status"]
    exclude = ["sealed"]


@admin.register(NodeMessage)
class NodeMessageAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "sender", "kind", "job"]
    list_filter = ["kind", "sender"]

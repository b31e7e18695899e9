"""Read-only admin of nodes, stored tables and jobs: they change only through the compute services
(keys, vault files and chain state would drift from an edited row)."""
from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from compute.models import Job, Node, NodeMessage, ResultExport, StoredTable, TableImport


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


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "protocol", "status", "step", "total_steps", "grant_id", "created_at", "finished_at"]
    list_filter = ["status", "protocol"]
    search_fields = ["grant_id"]
    date_hierarchy = "created_at"


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

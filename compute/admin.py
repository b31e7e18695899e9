"""Read-only admin of nodes, stored tables and jobs: they change only through the compute services
(keys, vault files and chain state would drift from an edited row)."""
from django.contrib import admin

from audit.admin import ReadOnlyAdmin
from compute.models import Job, Node, StoredTable


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "chain_account", "created_at"]
    search_fields = ["slug", "name"]
    list_select_related = ["chain_account"]


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

"""Compute services: nodes and their keys, tables in node vaults, jobs between nodes."""
from compute.services.jobs import job_create, job_fail, job_run_step
from compute.services.nodes import node_create
from compute.services.tables import table_import, table_read

__all__ = ["job_create", "job_fail", "job_run_step", "node_create", "table_import", "table_read"]

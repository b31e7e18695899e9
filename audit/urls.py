from django.urls import path

from audit import apis

urlpatterns = [
    path("entries/", apis.EntryListApi.as_view(), name="api-audit-entry-list"),
    path("entries/<int:entry_id>/", apis.EntryDetailApi.as_view(), name="api-audit-entry-detail"),
    path("entries/<int:entry_id>/verify/", apis.EntryVerifyApi.as_view(), name="api-audit-entry-verify"),
    path("batches/", apis.BatchListApi.as_view(), name="api-audit-batch-list"),
    path("bundle/", apis.BundleApi.as_view(), name="api-audit-bundle"),
    path("proofs/<str:entry_hash>/", apis.ProofApi.as_view(), name="api-audit-proof"),
]

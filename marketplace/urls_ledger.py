from django.urls import path

from marketplace import apis_ledger

urlpatterns = [
    path("top-ups/", apis_ledger.TopUpCreateApi.as_view(), name="api-ledger-top-up"),
    path("statement/", apis_ledger.StatementApi.as_view(), name="api-ledger-statement"),
]

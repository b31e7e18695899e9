from django.urls import path

from marketplace import apis_ledger

urlpatterns = [
    path("top-ups/", apis_ledger.TopUpCreateApi.as_view(), name="api-ledger-top-up"),
    path("statement/", apis_ledger.StatementApi.as_view(), name="api-ledger-statement"),
    path("funds-requests/", apis_ledger.FundsRequestListCreateApi.as_view(), name="api-ledger-funds-requests"),
    path("funds-requests/<int:funds_request_id>/approve/", apis_ledger.FundsRequestApproveApi.as_view(),
         name="api-ledger-funds-request-approve"),
    path("funds-requests/<int:funds_request_id>/decline/", apis_ledger.FundsRequestDeclineApi.as_view(),
         name="api-ledger-funds-request-decline"),
]

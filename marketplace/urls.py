from django.urls import include, path

from marketplace import apis

urlpatterns = [
    path("me/", apis.MeApi.as_view(), name="api-me"),
    path("ledger/", include("marketplace.urls_ledger")),
    path("notifications/", include("marketplace.urls_notifications")),
    path("datasets/", apis.DatasetListApi.as_view(), name="api-dataset-list"),
    path("datasets/import/", apis.DatasetImportApi.as_view(), name="api-dataset-import"),
    path("datasets/<uuid:dataset_id>/", apis.DatasetDetailApi.as_view(), name="api-dataset-detail"),
    path("nodes/mine/", apis.NodeMineApi.as_view(), name="api-node-mine"),
    path("products/", apis.ProductListApi.as_view(), name="api-product-list"),
    path("products/create/", apis.ProductCreateApi.as_view(), name="api-product-create"),
    path("products/<uuid:product_id>/", apis.ProductDetailApi.as_view(), name="api-product-detail"),
    path("products/<uuid:product_id>/status/", apis.ProductStatusApi.as_view(), name="api-product-status"),
    path("products/<uuid:product_id>/contributions/", apis.ProductContributeApi.as_view(),
         name="api-product-contribute"),
    path("products/<uuid:product_id>/contributions/<int:contribution_id>/decide/",
         apis.ProductContributionDecideApi.as_view(), name="api-product-contribution-decide"),
    path("quotes/", apis.QuoteCreateApi.as_view(), name="api-quote-create"),
    path("quotes/<uuid:quote_id>/", apis.QuoteDetailApi.as_view(), name="api-quote-detail"),
    path("orders/", apis.OrderListApi.as_view(), name="api-order-list"),
    path("orders/create/", apis.OrderCreateApi.as_view(), name="api-order-create"),
    path("orders/<uuid:order_id>/", apis.OrderDetailApi.as_view(), name="api-order-detail"),
    path("orders/<uuid:order_id>/jobs/", apis.OrderJobCreateApi.as_view(), name="api-order-job-create"),
    path("orders/<uuid:order_id>/predictions/", apis.OrderPredictionApi.as_view(), name="api-order-predictions"),
    path("orders/<uuid:order_id>/result/", apis.OrderResultApi.as_view(), name="api-order-result"),
    path("orders/<uuid:order_id>/revoke/", apis.OrderRevokeApi.as_view(), name="api-order-revoke"),
    path("orders/<uuid:order_id>/cancel/", apis.OrderCancelApi.as_view(), name="api-order-cancel"),
    path("orders/<uuid:order_id>/grants/", apis.OrderGrantUsageApi.as_view(), name="api-order-grants"),
    path("", include("marketplace.urls_access")),
]

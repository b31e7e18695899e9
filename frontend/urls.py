from django.urls import path

from frontend.views import account, audit, catalog, datasets, orders, quotes, session, statements

urlpatterns = [
    path("", catalog.catalog, name="home"),
    path("login/", session.login, name="login"),
    path("logout/", session.logout, name="logout"),
    path("register/", account.register, name="register"),
    path("account/tokens/", account.tokens, name="account-tokens"),
    path("account/tokens/<int:token_id>/revoke/", account.token_revoke, name="account-token-revoke"),
    path("products/", catalog.catalog, name="catalog"),
    path("products/<uuid:product_id>/", catalog.product_detail, name="product-detail"),
    path("products/<uuid:product_id>/quote/", catalog.quote_create, name="quote-create"),
    path("quotes/<uuid:quote_id>/", quotes.quote_detail, name="quote-detail"),
    path("quotes/<uuid:quote_id>/status/", quotes.quote_status, name="quote-status"),
    path("quotes/<uuid:quote_id>/buy/", quotes.quote_buy, name="quote-buy"),
    path("statement/", statements.statement, name="statement"),
    path("orders/", orders.order_index, name="orders"),
    path("orders/<uuid:order_id>/", orders.order_detail, name="order-detail"),
    path("orders/<uuid:order_id>/live/", orders.order_live, name="order-live"),
    path("orders/<uuid:order_id>/jobs/", orders.order_run_again, name="order-run-again"),
    path("orders/<uuid:order_id>/revoke/", orders.order_revoke, name="order-revoke"),
    path("orders/<uuid:order_id>/cancel/", orders.order_cancel_view, name="order-cancel"),
    path("provider/", datasets.console, name="console"),
    path("provider/products/", datasets.product_list_create, name="product-create"),
    path("provider/products/<uuid:product_id>/status/", datasets.product_status, name="product-status"),
    path("provider/products/<uuid:product_id>/contribute/", datasets.product_contribution_create,
         name="product-contribute"),
    path("provider/products/<uuid:product_id>/contributions/<int:contribution_id>/decide/",
         datasets.product_contribution_decide_view, name="product-contribution-decide"),
    path("audit/", audit.audit_index, name="audit"),
    path("audit/entries/<int:entry_id>/verify/", audit.audit_verify, name="audit-verify"),
]

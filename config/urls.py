from django.contrib import admin
from django.urls import include, path, re_path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from frontend.views import errors
from marketplace.apis_root import ApiRootApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("favicon.ico", errors.favicon, name="favicon"),
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["frontend"]), name="javascript-catalog"),
    path("api/", ApiRootApi.as_view(), name="api-root"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("marketplace.urls")),
    path("api/audit/", include("audit.urls")),
    path("", include("frontend.urls")),
    # Last: whatever no pattern above matches gets the site's own 404 (JSON under /api/), even with DEBUG on.
    re_path(r"^(?P<path>.*)$", errors.unknown_url, name=errors.CATCH_ALL),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error

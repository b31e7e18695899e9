"""Sign in and out with Django's own views (signing out is a POST, Django 5), and the language switcher."""
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.utils.translation import check_for_language
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from marketplace.models import Member

login = auth_views.LoginView.as_view(template_name="frontend/login.html", redirect_authenticated_user=True)
logout = auth_views.LogoutView.as_view()


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Django's own switcher (a cookie, then back to `next`), and the choice kept on the member's profile
    so that it follows them to another browser."""
    response = set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language and check_for_language(language):
        Member.objects.filter(user=request.user).update(language=language)
    return response

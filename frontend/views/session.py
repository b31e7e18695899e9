"""Sign in and out with Django's own views; signing out is a POST (Django 5)."""
from django.contrib.auth import views as auth_views

login = auth_views.LoginView.as_view(template_name="frontend/login.html", redirect_authenticated_user=True)
logout = auth_views.LogoutView.as_view()

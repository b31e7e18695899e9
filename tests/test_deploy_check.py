"""QUALITY 7: `manage.py check --deploy` passes on production settings (DEBUG off, a real secret)."""
import os
import secrets
import subprocess
import sys

from django.conf import settings


def test_it_passes_the_deployment_checklist_with_production_settings(tmp_path):
    # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment never would.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "market.example",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_fails_the_checklist_with_the_embedded_defaults(tmp_path):
    env = os.environ | {"DEBUG": "1", "VAR_DIR": str(tmp_path)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "DEBUG" in result.stderr + result.stdout


def test_production_settings_refuse_to_start_on_the_public_default_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "SECRET_KEY"}} | {
        "DEBUG": "0", "ALLOWED_HOSTS": "market.example", "VAR_DIR": str(tmp_path)}
    for secret in (None, settings.EMBEDDED_SECRET_KEY):
        run_env = env | ({"SECRET_KEY": secret} if secret else {})
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy"],
            cwd=settings.BASE_DIR, env=run_env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode != 0
        assert "set SECRET_KEY to a long random value of your own" in result.stderr


def test_production_settings_keep_database_connections_with_health_checks(tmp_path):
    """The catalog reaches its measured throughput only with persistent connections: production gets
    them without reading the benchmark notes; the embedded mode keeps one connection per request."""
    script = ("import django; django.setup(); from django.conf import settings as s; "
              "d = s.DATABASES['default']; print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])")
    base = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "DB_CONN_MAX_AGE"}} | {
        "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/any"}
    production = base | {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "market.example"}
    answers = [subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True,
                              text=True, timeout=60, check=True).stdout.split()
               for env in (production, base | {"DEBUG": "1"})]
    assert answers == [["600", "True"], ["0", "True"]]

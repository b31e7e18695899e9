"""The notifications inbox (/notifications/), its nav link with the unread count, and the REST API
(/api/notifications/): each member sees and marks only their own; another member's id is a 404."""
from __future__ import annotations

import re
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.template import RequestContext, Template
from django.test import Client, RequestFactory
from django.urls import resolve
from django.utils import translation

from audit.models import AuditEntry
from marketplace.models import Notification
from marketplace.services import notifications
from marketplace.services.notifications import notify
from marketplace.services.organisations import member_create, organisation_create
from tests.marketplace.api_flow import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "pw-12345-long"
BADGE = Template("{% load notifications_ui %}{% notifications_link %}")


def _member(organisation: Any, username: str) -> SimpleNamespace:
    user, token = member_create(organisation=organisation, username=username, password=PASSWORD)
    return SimpleNamespace(user=user, token=token.secret)


@pytest.fixture
def people() -> SimpleNamespace:
    """Alice and Amy in one buying organisation, Bob in another; Alice has a ready quote and a failed job."""
    buyer = organisation_create(slug="inbox-buyer", name="Inbox Buyer", is_provider=False, is_consumer=True)
    other = organisation_create(slug="inbox-other", name="Inbox Other", is_provider=False, is_consumer=True)
    alice, amy, bob = _member(buyer, "inbox-alice"), _member(buyer, "inbox-amy"), _member(other, "inbox-bob")
    quote_url, order_url = f"/quotes/{uuid.uuid4()}/", f"/orders/{uuid.uuid4()}/"
    [quote_ready] = notify(users=[alice.user], kind=Notification.Kind.QUOTE_READY, subject="quote:1",
                           params={"product": "Customer match", "price_cents": 123_456}, url=quote_url)
    [job_failed] = notify(users=[alice.user], kind=Notification.Kind.JOB_FAILED, subject="order:1:run:1",
                          params={"product": "Customer match", "reason": "The provider's node refused the job."},
                          url=order_url)
    [bobs] = notify(users=[bob.user], kind=Notification.Kind.JOB_SUCCEEDED, subject="order:2:run:1",
                    params={"product": "Secret product of Bob"}, url=f"/orders/{uuid.uuid4()}/")
    return SimpleNamespace(alice=alice, amy=amy, bob=bob, quote_ready=quote_ready, job_failed=job_failed, bobs=bobs,
                           quote_url=quote_url, order_url=order_url)


def signed_in(member: SimpleNamespace, **options: Any) -> Client:
    client = Client(**options)
    assert client.login(username=member.user.username, password=PASSWORD)
    return client


def _badge(user: Any, path: str = "/") -> str:
    request = RequestFactory().get(path)
    request.user = user
    request.resolver_match = resolve(path)
    return BADGE.render(RequestContext(request, {}))


# -- the inbox page ------------------------------------------------------------------------------------


def test_it_lists_only_the_readers_own_notifications_with_title_body_time_and_link(people):
    page = signed_in(people.alice).get("/notifications/")
    html = page.content.decode()

    assert page.status_code == 200
    assert "Quote ready" in html and "Job failed" in html
    assert "The provider&#x27;s node refused the job." in html
    assert f'href="{people.quote_url}"' in html and f'href="{people.order_url}"' in html
    assert html.count("<time datetime=") == 2
    assert "Secret product of Bob" not in html
    assert 'action="/notifications/read-all/"' in html


def test_it_shows_unread_first_and_marks_one_read_with_a_post(people):
    alice = signed_in(people.alice)
    assert alice.get(f"/notifications/{people.job_failed.pk}/read/").status_code == 405  # a GET changes nothing

    response = alice.post(f"/notifications/{people.job_failed.pk}/read/", {"next": "/notifications/?page=1"})

    assert response.status_code == 302 and response["Location"] == "/notifications/?page=1"
    people.job_failed.refresh_from_db()
    assert people.job_failed.read_at is not None
    html = alice.get("/notifications/").content.decode()
    assert html.index("Quote ready") < html.index("Job failed")  # the unread one first
    assert f'action="/notifications/{people.job_failed.pk}/read/"' not in html  # read: no button left
    assert f'action="/notifications/{people.quote_ready.pk}/read/"' in html


def test_it_refuses_to_mark_another_members_notification_and_sends_nowhere_else(people):
    alice = signed_in(people.alice)
    assert alice.post(f"/notifications/{people.bobs.pk}/read/").status_code == 404
    assert alice.post(f"/notifications/{2**70}/read/").status_code == 404
    people.bobs.refresh_from_db()
    assert people.bobs.read_at is None
    away = alice.post(f"/notifications/{people.quote_ready.pk}/read/", {"next": "https://evil.example/"})
    assert away["Location"] == "/notifications/"


def test_it_marks_all_of_the_readers_own_read(people):
    response = signed_in(people.alice).post("/notifications/read-all/", follow=True)

    assert response.status_code == 200
    assert "Notifications marked as read: 2." in response.content.decode()
    assert not Notification.objects.filter(user=people.alice.user, read_at__isnull=True).exists()
    people.bobs.refresh_from_db()
    assert people.bobs.read_at is None


def test_it_says_what_to_expect_when_there_is_nothing_yet(people):
    html = signed_in(people.amy).get("/notifications/").content.decode()
    assert "No notifications yet." in html and 'href="/products/"' in html
    assert 'action="/notifications/read-all/"' not in html


def test_it_pages_the_inbox(people):
    notify(users=[people.amy.user], kind=Notification.Kind.QUOTE_READY, subject="quote:old",
           params={"product": "Oldest", "price_cents": 1}, url="/")
    Notification.objects.filter(user=people.amy.user).update(read_at="2024-01-01T00:00:00Z")
    for n in range(24):
        notify(users=[people.amy.user], kind=Notification.Kind.QUOTE_READY, subject=f"quote:{n}",
               params={"product": f"Product {n}", "price_cents": 100}, url="/")
    amy = signed_in(people.amy)
    first, second = amy.get("/notifications/").content.decode(), amy.get("/notifications/?page=2").content.decode()

    items = re.compile(r'<li class="notification[ "]')
    assert len(items.findall(first)) == 20 and len(items.findall(second)) == 5
    assert "Oldest" in second and "Oldest" not in first  # read ones after every unread one
    assert "Page 1 of 2" in first


def test_it_asks_an_anonymous_visitor_to_sign_in(people):
    assert Client().get("/notifications/")["Location"].startswith("/login/")
    assert Client().post("/notifications/read-all/")["Location"].startswith("/login/")


def test_it_renders_the_inbox_in_the_readers_language(people, monkeypatch):
    languages = []
    real = notifications.notification_text

    def recording(notification: Notification) -> tuple[str, str]:
        languages.append(translation.get_language())
        return real(notification)

    monkeypatch.setattr("frontend.views.notifications.notification_text", recording)
    page = signed_in(people.alice, HTTP_ACCEPT_LANGUAGE="zh-hans").get("/notifications/")

    assert page.status_code == 200
    assert '<html lang="zh-hans"' in page.content.decode()
    assert languages == ["zh-hans", "zh-hans"]
    assert page.content.decode().count("<time datetime=") == 2


# -- the nav link and its badge -----------------------------------------------------------------------------


def test_the_nav_link_counts_the_unread_notifications(people):
    html = _badge(people.alice.user)
    assert 'href="/notifications/"' in html
    assert re.search(r'class="notifications-count"[^>]*>2<', html)
    assert "(2 unread)" in html
    assert 'aria-current' not in html
    here = _badge(people.alice.user, "/notifications/")
    assert 'class="notifications-link active"' in here and 'aria-current="page"' in here

    signed_in(people.alice).post("/notifications/read-all/")
    assert "notifications-count" not in _badge(people.alice.user)
    assert 'href="/notifications/"' in _badge(people.alice.user)


def test_the_nav_link_caps_its_count_and_hides_from_anonymous_visitors(people):
    from django.contrib.auth.models import AnonymousUser

    for n in range(120):
        notify(users=[people.amy.user], kind=Notification.Kind.QUOTE_READY, subject=f"quote:{n}",
               params={"product": "P", "price_cents": 1}, url="/")
    assert re.search(r'class="notifications-count"[^>]*>99\+<', _badge(people.amy.user))
    assert _badge(AnonymousUser()).strip() == ""


# -- the REST API ------------------------------------------------------------------------------------------


def test_the_api_lists_the_callers_own_notifications_page_by_page(people):
    api = client_for(people.alice.token)
    body = api.get("/api/notifications/", {"limit": 1}).json()

    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]
    item = body["results"][0]
    assert set(item) == {"id", "kind", "title", "body", "url", "read", "read_at", "created_at"}
    everything = api.get("/api/notifications/").json()["results"]
    assert {n["id"] for n in everything} == {people.quote_ready.pk, people.job_failed.pk}
    assert {n["title"] for n in everything} == {"Quote ready", "Job failed"}
    assert "Secret product of Bob" not in api.get("/api/notifications/").content.decode()
    assert client_for(people.amy.token).get("/api/notifications/").json()["count"] == 0


def test_the_api_marks_one_read_and_answers_404_for_anothers(people):
    api = client_for(people.alice.token)
    read = api.post(f"/api/notifications/{people.quote_ready.pk}/read/")
    assert read.status_code == 200 and read.json()["read"] is True and read.json()["read_at"]
    assert api.post(f"/api/notifications/{people.quote_ready.pk}/read/").status_code == 200  # idempotent

    before = AuditEntry.objects.filter(action="access.denied").count()
    theirs = api.post(f"/api/notifications/{people.bobs.pk}/read/")
    assert theirs.status_code == 404 and theirs.json()["message"] == "Notification not found."
    assert api.post(f"/api/notifications/{2**70}/read/").status_code == 404
    assert AuditEntry.objects.filter(action="access.denied").count() == before + 2
    people.bobs.refresh_from_db()
    assert people.bobs.read_at is None
    assert api.get(f"/api/notifications/{people.quote_ready.pk}/read/").status_code == 405


def test_the_api_marks_all_read(people):
    response = client_for(people.alice.token).post("/api/notifications/read-all/")
    assert response.status_code == 200 and response.json() == {"marked": 2}
    assert client_for(people.alice.token).post("/api/notifications/read-all/").json() == {"marked": 0}
    people.bobs.refresh_from_db()
    assert people.bobs.read_at is None


def test_the_api_wants_a_signed_in_member(people):
    assert Client().get("/api/notifications/").status_code in {401, 403}
    assert Client().post(f"/api/notifications/{people.quote_ready.pk}/read/").status_code in {401, 403}
    people.quote_ready.refresh_from_db()
    assert people.quote_ready.read_at is None


def test_the_api_writes_title_and_body_in_the_callers_language(people, monkeypatch):
    languages = []
    real = notifications.notification_text

    def recording(notification: Notification) -> tuple[str, str]:
        languages.append(translation.get_language())
        return real(notification)

    monkeypatch.setattr("marketplace.apis_notifications.notification_text", recording)
    response = client_for(people.alice.token).get("/api/notifications/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200 and response["Content-Language"] == "zh-hans"
    assert set(languages) == {"zh-hans"} and len(languages) == 4  # title and body of each

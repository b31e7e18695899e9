"""The audit REST API: callers see only entries shared with their organisations."""
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from audit.models import AuditEntry
from audit.services import audit_batch_seal, audit_record

pytestmark = pytest.mark.django_db

# Which organisations each test user belongs to; the auditor sees everything.
MEMBERSHIPS = {"alice": ["acme"], "bob": ["globex"], "carol": ["acme", "initech"], "nobody": []}


def parties_of(user) -> list[str] | None:
    return MEMBERSHIPS.get(user.username)


@pytest.fixture(autouse=True)
def party_resolver(settings):
    settings.AUDIT_PARTY_RESOLVER = "tests.audit.test_audit_api.parties_of"


@pytest.fixture
def entries() -> dict[str, AuditEntry]:
    return {
        "acme": audit_record(actor="user:alice", action="order.placed", subject="order:1", parties=["acme"]),
        "both": audit_record(actor="user:bob", action="order.placed", subject="order:2",
                             parties=["acme", "globex"]),
        "globex": audit_record(actor="user:bob", action="job.started", subject="job:3", parties=["globex"]),
        "initech": audit_record(actor="svc", action="job.started", subject="job:4", parties=["initech"]),
    }


def client_for(username: str) -> APIClient:
    user = User.objects.create_user(username=username, password="pw-12345-long")
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def test_it_lists_only_entries_shared_with_the_callers_organisations(entries):
    assert ids(client_for("alice").get("/api/audit/entries/")) == [entries["both"].pk, entries["acme"].pk]
    assert ids(client_for("bob").get("/api/audit/entries/")) == [entries["globex"].pk, entries["both"].pk]
    assert set(ids(client_for("carol").get("/api/audit/entries/"))) == {
        entries["acme"].pk, entries["both"].pk, entries["initech"].pk}
    assert ids(client_for("nobody").get("/api/audit/entries/")) == []
    assert len(ids(client_for("auditor").get("/api/audit/entries/"))) == 4


def test_it_filters_by_subject_and_action_within_what_the_caller_sees(entries):
    bob = client_for("bob")
    assert ids(bob.get("/api/audit/entries/", {"action": "job.started"})) == [entries["globex"].pk]
    assert ids(bob.get("/api/audit/entries/", {"subject": "order:2"})) == [entries["both"].pk]
    assert ids(bob.get("/api/audit/entries/", {"subject": "job:4"})) == []


def test_it_paginates_and_caps_the_page_size(entries):
    auditor = client_for("auditor")
    page = auditor.get("/api/audit/entries/", {"limit": 2}).json()
    assert page["count"] == 4
    assert len(page["results"]) == 2
    assert page["next"]
    response = auditor.get("/api/audit/entries/", {"limit": 100000})
    assert response.status_code == 400
    assert "limit" in response.json()["extra"]["fields"]


def test_it_answers_404_for_an_entry_the_caller_may_not_see(entries):
    alice = client_for("alice")
    assert alice.get(f"/api/audit/entries/{entries['acme'].pk}/").json()["subject"] == "order:1"
    hidden = entries["globex"].pk
    for path in (f"/api/audit/entries/{hidden}/", f"/api/audit/entries/{hidden}/verify/",
                 "/api/audit/entries/999999999/", "/api/audit/entries/99999999999999999999999/"):
        response = alice.get(path)
        assert response.status_code == 404, path
        assert "order" not in response.content.decode() and "job" not in response.content.decode()


def test_it_refuses_callers_without_valid_credentials(entries):
    anonymous = APIClient()
    assert anonymous.get("/api/audit/entries/").status_code == 401
    assert anonymous.get(f"/api/audit/entries/{entries['acme'].pk}/verify/").status_code == 401
    assert anonymous.get("/api/audit/bundle/").status_code == 401
    assert anonymous.get("/api/audit/batches/").status_code == 200  # roots and transactions are public
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert forged.get("/api/audit/entries/").status_code == 401


def test_it_returns_the_verification_of_a_visible_entry(entries):
    response = client_for("alice").get(f"/api/audit/entries/{entries['acme'].pk}/verify/")
    assert response.status_code == 200
    body = response.json()
    assert (body["entry_id"], body["status"], body["problems"], body["batch_id"]) == (
        entries["acme"].pk, "pending", [], None)


def test_it_lists_batches(entries):
    batch = audit_batch_seal()
    body = client_for("bob").get("/api/audit/batches/").json()
    assert body["count"] == 1
    row = body["results"][0]
    assert (row["id"], row["root"], row["size"], row["anchor_status"]) == (batch.pk, batch.root, 4, "pending")


def test_it_documents_the_audit_operations_in_the_openapi_schema():
    response = client_for("auditor").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/audit/entries/", "/api/audit/entries/{entry_id}/",
                 "/api/audit/entries/{entry_id}/verify/", "/api/audit/batches/"):
        assert "get" in paths[path], path
    listed = paths["/api/audit/entries/"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"subject", "action", "limit", "offset"}

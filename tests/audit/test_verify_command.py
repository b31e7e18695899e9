"""`manage.py audit_verify`: one line per entry or problem; exit 0 verified, 1 tampered, 2 bad input."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.chain.outbox import outbox_process
from audit.services import audit_batch_seal, audit_record
from tests.audit.test_verify import batch_ids_past_other_tests

pytestmark = [pytest.mark.django_db, pytest.mark.chain]


@pytest.fixture
def anchored(ganache_url):
    batch_ids_past_other_tests()
    entries = [audit_record(actor="svc", action="order.placed", subject=f"order:{i}") for i in range(4)]
    batch = audit_batch_seal()
    outbox_process(outbox_id=batch.outbox_id)
    return entries, batch


def run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("audit_verify", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    return 0, out.getvalue()


def test_it_exits_0_and_prints_one_line_for_a_verified_entry(anchored):
    entries, batch = anchored
    code, out = run(str(entries[1].pk))
    assert code == 0
    assert out.splitlines() == [f"entry {entries[1].pk}: verified batch {batch.pk} leaf 1"]
    code, out = run("--all")
    assert code == 0
    assert out.splitlines() == [
        "log: verified: 4 entries, 1 batches (0 not yet anchored), 0 entries not yet sealed"
    ]


def test_it_exits_1_and_names_the_problem_for_a_tampered_entry(anchored):
    entries, _batch = anchored
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET actor = 'intruder' WHERE id = %s", [entries[2].pk])
    code, out = run(str(entries[2].pk))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"entry {entries[2].pk}: tampered")
    assert f"  entry {entries[2].pk}: stored fields do not match its hash" in lines
    code, out = run("--all")
    assert code == 1
    assert out.splitlines()[0].startswith("log: tampered")


@pytest.mark.parametrize("args", [(), ("12", "--all"), ("abc",), ("-5",)])
def test_it_exits_2_for_bad_input(args):
    with pytest.raises(CommandError) as error:
        call_command("audit_verify", *args)
    assert error.value.returncode == 2


def test_it_exits_2_with_one_clear_line_for_an_unknown_entry():
    with pytest.raises(CommandError, match=r"^entry 424242: no such entry in the log$") as error:
        call_command("audit_verify", "424242")
    assert error.value.returncode == 2

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marketplace.models import Dataset
from tests.marketplace.data import provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def test_it_imports_a_csv_from_the_command_line(make_party, tmp_path, capsys):
    party = make_party("prov-cli", provider=True)
    path = tmp_path / "customers.csv"
    path.write_bytes(provider_csv([f"P{n}" for n in range(25)]))
    call_command("dataset_import", str(path), org="prov-cli", name="Customers", id_column="customer_id")
    dataset = Dataset.objects.get(organisation=party.organisation)
    assert dataset.table.row_count == 25
    assert "25 rows" in capsys.readouterr().out


def test_it_fails_with_one_clear_line_on_a_bad_file(make_party, tmp_path):
    make_party("prov-cli2", provider=True)
    path = tmp_path / "bad.csv"
    path.write_bytes(b"name\nx\n")
    with pytest.raises(CommandError, match="id column 'customer_id' is not in the header"):
        call_command("dataset_import", str(path), org="prov-cli2", name="Bad", id_column="customer_id")
    with pytest.raises(CommandError, match="No organisation"):
        call_command("dataset_import", str(path), org="nobody", name="Bad", id_column="customer_id")
    assert not Dataset.objects.exists()

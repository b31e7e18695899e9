"""Every string the UI can show is in the Simplified Chinese catalogue, translated, and the compiled
catalogue is the one its source says.

`makemessages` (Django's own extraction, through xgettext) runs over the project into a temporary folder;
each message it finds must be in config/locale's catalogue with a translation that is neither empty nor
fuzzy and keeps the message's placeholders. A string added to a template, a view, a form or a script
without its translation fails here, naming it."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

LOCALE_DIR = settings.BASE_DIR / "config" / "locale"
CATALOGUE = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES"
# What `make messages` leaves out: other environments, packages, generated files and the tests' own strings.
IGNORED = [".venv*", "node_modules", "var", "staticfiles", "tests", "bench", "docs", "contracts"]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]")

pytestmark = pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext's xgettext is not installed")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    target = tmp_path_factory.mktemp("locale")
    with override_settings(LOCALE_PATHS=[target]):
        for domain in ("django", "djangojs"):
            call_command("makemessages", locale=["zh_Hans"], domain=domain, ignore_patterns=IGNORED,
                         verbosity=0, no_obsolete=True)
    return {domain: target / "zh_Hans" / "LC_MESSAGES" / f"{domain}.po" for domain in ("django", "djangojs")}


def _catalogue(path: Path):  # noqa: ANN202 - babel's Catalog
    with path.open("rb") as handle:
        return read_po(handle)


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_string_the_ui_shows_is_translated(extracted: dict[str, Path], domain: str) -> None:
    found = _catalogue(extracted[domain])
    committed = _catalogue(CATALOGUE / f"{domain}.po")
    missing, untranslated, broken = [], [], []
    for message in found:
        if not message.id:
            continue
        ours = committed.get(message.id, message.context)
        if ours is None:
            missing.append(message.id)
            continue
        strings = ours.string if isinstance(ours.string, tuple) else (ours.string,)
        if ours.fuzzy or not all(strings):
            untranslated.append(message.id)
            continue
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        if sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(strings[0])):
            broken.append(message.id)
    assert not missing, f"{len(missing)} strings are not in the catalogue (run `make messages`): {missing[:20]}"
    assert not untranslated, f"{len(untranslated)} strings have no translation: {untranslated[:20]}"
    assert not broken, f"translations that lose or add a placeholder: {broken[:20]}"
    assert len(found) > 50


def _key(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_the_compiled_catalogue_is_its_source(domain: str) -> None:
    source = _catalogue(CATALOGUE / f"{domain}.po")
    with (CATALOGUE / f"{domain}.mo").open("rb") as handle:
        compiled = read_mo(handle)
    expected = {(_key(m.id), m.context): _key(m.string) for m in source if m.id and not m.fuzzy and m.string}
    actual = {(_key(m.id), m.context.decode() if isinstance(m.context, bytes) else m.context): _key(m.string)
              for m in compiled if m.id}
    assert actual == expected, "config/locale's .mo is stale: run `make messages`"

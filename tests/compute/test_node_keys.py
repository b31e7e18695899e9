"""A node's keys are generated on the node and wrapped under its own secret: the right secret opens them,
the wrong one is refused with a clear message, and the node's command line refuses to run without it."""
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from compute.node.keys import NodeSecretError, keystore_create, keystore_open

MARKETPLACE_KEY = bytes(range(32))


def test_it_keeps_the_keys_across_a_restart_with_the_right_secret(tmp_path):
    created = keystore_create(home=tmp_path, slug="acme", secret="a-long-node-secret-1",
                              marketplace_public=MARKETPLACE_KEY)
    reopened = keystore_open(home=tmp_path, secret="a-long-node-secret-1")
    assert reopened == created
    assert reopened.marketplace_public == MARKETPLACE_KEY
    stored = (tmp_path / "node-keys.json").read_text()
    for secret in (created.vault_key, created.sealing_private, created.signing_private, created.chain_private):
        assert secret.hex() not in stored
    assert oct((tmp_path / "node-keys.json").stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize("secret,message", [
    ("another-long-secret", "wrong secret"), (None, "has no secret"), ("short", "at least 16"),
])
def test_it_refuses_to_open_the_keys_without_the_right_secret(tmp_path, secret, message):
    keystore_create(home=tmp_path, slug="acme", secret="a-long-node-secret-1", marketplace_public=MARKETPLACE_KEY)
    with pytest.raises(NodeSecretError, match=message):
        keystore_open(home=tmp_path, secret=secret)


def test_it_refuses_to_overwrite_existing_keys(tmp_path):
    keystore_create(home=tmp_path, slug="acme", secret="a-long-node-secret-1", marketplace_public=MARKETPLACE_KEY)
    with pytest.raises(NodeSecretError, match="exists already"):
        keystore_create(home=tmp_path, slug="acme", secret="a-long-node-secret-1", marketplace_public=MARKETPLACE_KEY)


def _node(*args, secret):
    env = {k: v for k, v in os.environ.items() if k not in {"NODE_SECRET", "NODE_SECRET_FILE"}}
    if secret:
        env["NODE_SECRET"] = secret
    return subprocess.run([sys.executable, "-m", "compute.node", *args], env=env, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)


def test_the_node_command_refuses_to_start_with_the_wrong_secret_in_one_line(tmp_path):
    home = tmp_path / "acme"
    init = _node("init", "--home", str(home), "--slug", "acme", "--marketplace-key", MARKETPLACE_KEY.hex(),
                 secret="the-right-node-secret")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["slug"] == "acme"
    for secret, message in (("a-wrong-node-secret", "wrong secret"), ("", "has no secret")):
        run = _node("run", "--home", str(home), secret=secret)
        assert run.returncode == 1
        assert run.stderr.strip().splitlines() == [run.stderr.strip()] and message in run.stderr
    listed = _node("tables", "--home", str(home), secret="the-right-node-secret")
    assert listed.returncode == 0 and listed.stdout == ""



def test_it_says_plainly_that_a_keystore_of_the_old_platform_wrapped_kind_cannot_be_opened(tmp_path):
    (tmp_path / "node-keys.json").write_text(json.dumps({"slug": "acme", "sealing_public": "00" * 32,
                                                         "vault_key": "00", "sealing_private": "00"}))
    with pytest.raises(NodeSecretError, match="not a keystore of this version"):
        keystore_open(home=tmp_path, secret="a-long-node-secret-1")

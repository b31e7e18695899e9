"""Creating a node: its directory, vault key, sealing key pair and funded chain account."""
from django.db import transaction

from audit.chain.accounts import chain_account_create
from audit.services import audit_record
from compute.models import Node
from compute.node_keys import node_secrets_create


@transaction.atomic
def node_create(*, slug: str, name: str) -> Node:
    """Set up an organisation's node: secrets in its own directory, a chain account funded on the dev chain."""
    node = Node(slug=slug, name=name)
    secrets = node_secrets_create(slug=slug, directory=node.directory)
    node.sealing_public_key = secrets.sealing_public.hex()
    node.chain_account = chain_account_create(label=f"node:{slug}")
    node.full_clean()
    node.save()
    audit_record(
        actor=f"node:{slug}",
        action="node.created",
        subject=f"node:{slug}",
        payload={"chain_account": node.chain_account.address, "sealing_public_key": node.sealing_public_key},
        parties=[slug],
    )
    return node

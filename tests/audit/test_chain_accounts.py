import pytest
from cryptography.exceptions import InvalidTag
from django.conf import settings
from eth_account import Account

from audit.chain.accounts import (
    DEV_FUNDING_WEI,
    chain_account_create,
    chain_account_operator,
    chain_account_signer,
    key_decrypt,
    key_encrypt,
)
from audit.chain.client import web3_client
from audit.models import ChainAccount
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures


def test_it_encrypts_a_key_so_that_only_the_same_secret_and_address_open_it():
    signer = Account.create()
    ciphertext = key_encrypt(private_key=bytes(signer.key), address=signer.address, secret="s1")

    assert bytes(signer.key) not in ciphertext
    assert key_decrypt(ciphertext=ciphertext, address=signer.address, secret="s1") == bytes(signer.key)
    with pytest.raises(InvalidTag):
        key_decrypt(ciphertext=ciphertext, address=signer.address, secret="s2")
    with pytest.raises(InvalidTag):
        key_decrypt(ciphertext=ciphertext, address=Account.create().address, secret="s1")


def test_it_uses_a_fresh_nonce_for_every_encryption():
    signer = Account.create()

    first = key_encrypt(private_key=bytes(signer.key), address=signer.address, secret="s")
    second = key_encrypt(private_key=bytes(signer.key), address=signer.address, secret="s")

    assert first != second


@pytest.mark.chain
@pytest.mark.django_db
def test_it_creates_a_funded_account_whose_key_is_stored_encrypted(provider):
    stored = ChainAccount.objects.get(pk=provider.pk)
    signer = chain_account_signer(stored)

    assert signer.address == stored.address == provider.address
    assert bytes(signer.key) not in bytes(stored.key_ciphertext)
    assert web3_client().eth.get_balance(provider.address) == DEV_FUNDING_WEI


@pytest.mark.chain
@pytest.mark.django_db
def test_it_refuses_to_open_a_key_moved_to_another_row(provider, consumer):
    consumer.key_ciphertext = provider.key_ciphertext

    with pytest.raises(InvalidTag):
        chain_account_signer(consumer)


@pytest.mark.django_db
def test_it_gets_or_creates_the_operator_from_the_configured_key():
    first = chain_account_operator()
    second = chain_account_operator()

    assert first.pk == second.pk
    assert first.address == Account.from_key(settings.CHAIN_OPERATOR_KEY).address
    assert chain_account_signer(first).key == Account.from_key(settings.CHAIN_OPERATOR_KEY).key


@pytest.mark.django_db
def test_it_creates_the_account_even_when_the_dev_chain_is_down(settings):
    settings.CHAIN_RPC_URL = "http://127.0.0.1:9"  # discard port: nothing listens

    account = chain_account_create(label="offline")

    assert ChainAccount.objects.filter(pk=account.pk).exists()

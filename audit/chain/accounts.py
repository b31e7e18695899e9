"""Chain accounts: keys generated and signed with here, AES-GCM encrypted at rest."""
from __future__ import annotations

import logging
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from eth_account import Account
from eth_account.signers.local import LocalAccount

from audit.chain.errors import ChainError
from audit.chain.rpc import dev_balance_set
from audit.models import ChainAccount

logger = logging.getLogger(__name__)

DEV_FUNDING_WEI = 100 * 10**18
NONCE_BYTES = 12


def key_encryption_key(secret: str) -> bytes:
    """The AES-256 key that wraps chain keys, derived from the deployment's key-encryption secret."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"dataxchange/chain-account", info=b"aes-gcm key v1"
    ).derive(secret.encode())


def key_encrypt(*, private_key: bytes, address: str, secret: str) -> bytes:
    """nonce ‖ AES-GCM ciphertext; the address is the AAD, so a key cannot be moved to another row."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key_encryption_key(secret)).encrypt(nonce, private_key, address.encode())


def key_decrypt(*, ciphertext: bytes, address: str, secret: str) -> bytes:
    nonce, body = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
    return AESGCM(key_encryption_key(secret)).decrypt(nonce, body, address.encode())


def _account_store(*, signer: LocalAccount, label: str) -> ChainAccount:
    ciphertext = key_encrypt(
        private_key=bytes(signer.key), address=signer.address, secret=settings.KEY_ENCRYPTION_SECRET
    )
    account = ChainAccount(address=signer.address, label=label, key_ciphertext=ciphertext)
    account.full_clean()
    account.save()
    return account


def chain_account_fund_dev(*, account: ChainAccount, wei: int = DEV_FUNDING_WEI) -> None:
    """Give `account` a balance on a dev chain (Ganache, Anvil or Hardhat)."""
    dev_balance_set(account.address, wei)


def chain_account_create(*, label: str) -> ChainAccount:
    """A new account with a random key, encrypted at rest; funded on the dev chain when configured."""
    account = _account_store(signer=Account.create(), label=label)
    if settings.CHAIN_DEV_FUNDING:
        try:
            chain_account_fund_dev(account=account)
        except ChainError as error:
            # Funding is a dev convenience: the account exists either way, and a send that meets an
            # empty balance funds it again (see transactions).
            logger.warning("dev funding of %s failed: %s", account.address, error)
    return account


def chain_account_operator() -> ChainAccount:
    """The platform operator's account (settings.CHAIN_OPERATOR_KEY): deploys and anchors."""
    signer: LocalAccount = Account.from_key(settings.CHAIN_OPERATOR_KEY)
    existing = ChainAccount.objects.filter(address=signer.address).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return _account_store(signer=signer, label="operator")
    except IntegrityError:  # created meanwhile by another process
        return ChainAccount.objects.get(address=signer.address)


def chain_account_signer(account: ChainAccount) -> LocalAccount:
    """The local signer of `account`, decrypted from its row."""
    private_key = key_decrypt(
        ciphertext=bytes(account.key_ciphertext), address=account.address, secret=settings.KEY_ENCRYPTION_SECRET
    )
    return Account.from_key(private_key)

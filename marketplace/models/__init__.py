"""Marketplace models: organisations and members, the catalog, trading (quotes, orders, grants, jobs)
and the money ledger."""
from marketplace.models.catalog import Dataset, Product, ProductDataset
from marketplace.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from marketplace.models.organisations import Member, Organisation
from marketplace.models.privacy import PrivacyBudget, PrivacyCharge
from marketplace.models.tokens import ApiToken
from marketplace.models.trading import Order, OrderGrant, OrderJob, Quote, QuoteMeasurement

__all__ = [
    "ApiToken", "Dataset", "LedgerAccount", "LedgerEntry", "LedgerTransaction", "Member", "Order", "OrderGrant",
    "OrderJob", "Organisation", "PrivacyBudget", "PrivacyCharge", "Product", "ProductDataset", "Quote",
    "QuoteMeasurement",
]

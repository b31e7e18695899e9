"""Marketplace models: organisations and members, the catalog, trading (quotes, orders, grants, jobs)
the money ledger, funds requests and notifications."""
from marketplace.models.catalog import Dataset, Product, ProductDataset
from marketplace.models.ledger import FundsRequest, LedgerAccount, LedgerEntry, LedgerTransaction
from marketplace.models.notifications import Notification
from marketplace.models.organisations import Member, Organisation
from marketplace.models.privacy import PrivacyBudget, PrivacyCharge
from marketplace.models.tokens import ApiToken
from marketplace.models.trading import Order, OrderGrant, OrderJob, Quote, QuoteMeasurement

__all__ = [
    "ApiToken", "Dataset", "FundsRequest", "LedgerAccount", "LedgerEntry", "LedgerTransaction", "Member",
    "Notification", "Order", "OrderGrant", "OrderJob", "Organisation", "PrivacyBudget", "PrivacyCharge", "Product",
    "ProductDataset", "Quote", "QuoteMeasurement",
]

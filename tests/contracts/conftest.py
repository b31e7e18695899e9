from tests.contracts.fixtures import chain, consumer, operator, provider, registered_asset  # noqa: F401

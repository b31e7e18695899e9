from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures

from tests.orders.support import clock, receiver  # noqa: F401 - fixtures

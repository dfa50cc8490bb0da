"""What the tests share: fakes, clients and the service process."""

"""Tools that are not the service: generators of test pictures."""

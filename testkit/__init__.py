"""Test and bench tooling (not the dev stack, never imported by production code): the test
environment (PostgreSQL, moto, settings), the handler loader, and a
PostgreSQL proxy that counts round trips and adds latency."""

"""Verified TLS to the proxy: the functions connect with ``sslmode=verify-full`` against the Amazon
roots bundled in the layer (RDS Proxy serves an ACM certificate), the migration runner too, and a
server that offers no TLS is refused rather than spoken to in plain text. The local stack keeps
plain loopback through ``DATABASE_URL``."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hibachi.db import ROOT_CAS, Database
from hibachi.errors import DatabaseUnavailable
from hibachi.migrate import iam_url
from hibachi.settings import Settings

# Amazon Root CA 1, as Amazon Trust Services publishes it (SHA-256 of the certificate)
AMAZON_ROOT_CA_1 = "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e"


def test_the_layer_carries_the_amazon_roots():
    certs = x509.load_pem_x509_certificates(ROOT_CAS.read_bytes())
    names = sorted(c.subject.rfc4514_string() for c in certs)
    assert names == [f"CN=Amazon Root CA {i},O=Amazon,C=US" for i in (1, 2, 3, 4)]
    assert AMAZON_ROOT_CA_1 in {c.fingerprint(hashes.SHA256()).hex() for c in certs}


def proxy_settings(**values) -> Settings:
    return Settings(db_host="127.0.0.1", db_iam_auth=False, db_password="x", **values)


def test_the_functions_verify_the_proxy_certificate_and_name():
    kwargs = Database(proxy_settings())._connect_kwargs()
    assert kwargs["sslmode"] == "verify-full" and kwargs["sslrootcert"] == str(ROOT_CAS)
    other = Database(proxy_settings(db_sslrootcert="/opt/other.pem"))._connect_kwargs()
    assert other["sslrootcert"] == "/opt/other.pem"


def test_the_migrations_verify_it_too():
    query = parse_qs(urlsplit(iam_url("proxy.example", 5432, "hibachi", "owner", "token")).query)
    assert query["sslmode"] == ["verify-full"] and query["sslrootcert"] == [str(ROOT_CAS)]


def test_a_server_without_tls_is_refused_not_spoken_to_in_plain_text(database_url):
    port = urlsplit(database_url).port  # the test PostgreSQL: loopback, no TLS
    db = Database(proxy_settings(db_port=port, db_user="postgres", db_name="postgres"))
    with pytest.raises(DatabaseUnavailable):
        db.connect()
    plain = Database(Settings(database_url=database_url))  # the local stack's way: plain loopback
    with plain.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() is not None

"""Shared test setup: ``tests/`` importable (``from tiny_models import ...``) and a no-network guard."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

TESTS = str(Path(__file__).parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection during the test (local sockets too)."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a test marked no_network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

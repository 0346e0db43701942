"""API keys, scopes and per-key quotas (OPTIM_AUTH=api_key); off by default."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from service.auth.guard import Authenticator, caller, require
from service.auth.keys import KeyLimits, KeyRecord
from service.auth.keystore import KeyStore
from service.auth.quotas import QuotaBook
from service.errors import StartupError
from service.settings import Settings, read_secret

MIN_BOOTSTRAP_KEY = 32  # characters of a bootstrap admin key
logger = logging.getLogger("service.auth")


def open_auth(settings: Settings, store: Any, call: Callable[..., Any]) -> Authenticator:
    """The app's authenticator: checks nothing with OPTIM_AUTH=none."""
    if settings.auth != "api_key":
        return Authenticator(False, None, None, settings.auth_cache_s, call)
    keys = KeyStore(store)
    replica = f"{os.uname().nodename}-{os.getpid()}-{os.urandom(3).hex()}"
    return Authenticator(True, keys, QuotaBook(keys, replica, settings.quota_sync_s),
                         settings.auth_cache_s, call)


def start_auth(auth: Authenticator, settings: Settings) -> None:
    """At start-up: the bootstrap admin key, and the usage sync."""
    if settings.bootstrap_admin_key_file is not None:
        path = settings.bootstrap_admin_key_file
        key = read_secret(path, "bootstrap_admin_key_file", StartupError)
        if len(key) < MIN_BOOTSTRAP_KEY or any(c.isspace() for c in key):
            raise StartupError(
                f"The bootstrap admin key in {path} must be at least {MIN_BOOTSTRAP_KEY} "
                "characters without spaces (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)")
        assert auth.keys is not None
        record, made = auth.keys.ensure("bootstrap-admin", {"admin"}, key)
        if made:
            logger.info("bootstrap admin key stored as %s", record.id)
    assert auth.quotas is not None
    auth.quotas.start()


__all__ = ["Authenticator", "KeyLimits", "KeyRecord", "KeyStore", "QuotaBook", "caller",
           "open_auth", "require", "start_auth"]

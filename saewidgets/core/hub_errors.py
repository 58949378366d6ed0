"""Hugging Face hub failures in the package's words: what was asked, what failed, the fix.

``hub_failure(error)`` reads the chain of exceptions that transformers, nnsight or SAELens
raised (they wrap the hub's own errors in ``OSError`` and ``RuntimeError``) and names what
went wrong; ``hub_error`` turns that into one ``ValueError`` for a model or an SAE.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Iterator

HUB = "https://huggingface.co"


@dataclass(frozen=True)
class HubFailure:
    """What went wrong talking to the hub: ``kind`` is one of ``unreachable``, ``offline``,
    ``not_found``, ``gated``, ``revision``, ``missing_file``, ``unauthorised``, ``forbidden``,
    ``rate_limited``, ``hub_down``; ``detail`` is the lowest-level message."""

    kind: str
    detail: str


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(flag.lower() in ("1", "true", "yes", "on") for flag in flags)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__  # type: ignore[assignment]


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, (socket.gaierror, socket.timeout, ConnectionError, TimeoutError)):
        return True
    # httpx / httpcore (hub >= 1.0) and requests (older hubs), without importing either.
    names = {cls.__name__ for cls in type(error).__mro__}
    module = type(error).__module__.split(".")[0]
    return bool(names & {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError", "ProxyError"}) or (
        module == "requests" and bool(names & {"ConnectionError", "Timeout"})
    )


def hub_failure(error: BaseException) -> HubFailure | None:
    """Classify a failed hub load, or None when nothing in ``error``'s chain is the hub's."""
    from huggingface_hub import errors as hub

    chain = list(_chain(error))
    detail = str(chain[-1]).splitlines()[0] if str(chain[-1]) else type(chain[-1]).__name__
    offline = hub_offline()
    for name, kind in (  # most specific first; by name, as older hubs lack some of them
        ("OfflineModeIsEnabled", "offline"),
        ("GatedRepoError", "gated"),
        ("RepositoryNotFoundError", "not_found"),
        ("RevisionNotFoundError", "revision"),
        ("RemoteEntryNotFoundError", "missing_file"),
    ):
        cls = getattr(hub, name, None)
        if cls is not None and any(isinstance(e, cls) for e in chain):
            return HubFailure(kind, detail)
    for e in chain:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(e, hub.HfHubHTTPError) and isinstance(status, int):
            code = {401: "unauthorised", 403: "forbidden", 429: "rate_limited"}.get(status)
            if code or status >= 500:
                return HubFailure(code or "hub_down", f"HTTP {status}")
    if any(_is_network_error(e) for e in chain):
        return HubFailure("offline" if offline else "unreachable", detail)
    local_miss = getattr(hub, "LocalEntryNotFoundError", ())
    if any(isinstance(e, local_miss) for e in chain) or (
        offline and any("offline" in str(e).lower() for e in chain)
    ):
        return HubFailure("offline" if offline else "unreachable", detail)
    text = " ".join(str(e) for e in chain)
    if "is not a valid model identifier" in text:
        return HubFailure("not_found", detail)
    if "does not appear to have a file named" in text:
        return HubFailure("missing_file", detail)
    return None


def cached_on_disk(repo_id: str, filename: str, revision: str | None = None) -> bool:
    """Whether ``filename`` of ``repo_id`` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot even name is not cached
        return False


def hub_error(
    lead: str, repo_id: str, failure: HubFailure, *, cached: bool, alternative: str, include: str | None = None
) -> ValueError:
    """One ``ValueError`` for a failed hub load from ``repo_id``: ``lead`` says what was asked
    (``"could not load model 'gpt2': ..."``), ``cached`` whether a copy sits in the local
    cache, ``alternative`` the way around the hub (``"give a local directory"``), ``include``
    the files to download when only part of the repository is needed (``"layer_12/*"``).
    """
    from huggingface_hub import constants

    url = f"{HUB}/{repo_id}"
    cache = constants.HF_HUB_CACHE
    command = f"hf download {repo_id}" + (f" --include '{include}'" if include else "")
    download = f"download it once where the hub is reachable ({command})"
    what, fix = {
        "unreachable": (
            f"the hub ({constants.ENDPOINT}) could not be reached ({failure.detail})"
            + ("" if cached else f" and {repo_id} is not in your cache ({cache})"),
            f"a copy is in your cache ({cache}): set HF_HUB_OFFLINE=1 to load it from there"
            if cached
            else f"check your network or proxy (HTTPS_PROXY, HF_ENDPOINT); to work offline, {download} "
            "and set HF_HUB_OFFLINE=1",
        ),
        "offline": (
            f"HF_HUB_OFFLINE=1 is set and {repo_id} is not in your cache ({cache})",
            f"unset HF_HUB_OFFLINE to download it, or {download}",
        ),
        "not_found": (
            f"the hub has no repository {repo_id!r} (or it is private)",
            f"check the id's spelling at {HUB}/models; for a private repository, log in: hf auth login",
        ),
        "gated": (
            f"{repo_id} is gated: its files need its licence accepted and a login",
            f"accept the licence at {url}, then log in: hf auth login (or set HF_TOKEN)",
        ),
        "revision": (
            f"{repo_id} has no such revision (branch, tag or commit)",
            f"check revision= against {url}/tree/main",
        ),
        "missing_file": (
            f"{repo_id} lacks a file it needs ({failure.detail})",
            f"check that {url} is the right repository",
        ),
        "unauthorised": (
            "the hub rejected your token (HTTP 401)",
            "log in again: hf auth login (or fix HF_TOKEN)",
        ),
        "forbidden": (
            f"your token may not read {repo_id} (HTTP 403)",
            f"accept the licence at {url} if it has one, and use a token with read access: hf auth login",
        ),
        "rate_limited": ("the hub is rate-limiting you (HTTP 429)", "wait a minute and retry, logged in: hf auth login"),
        "hub_down": (f"the hub answered with a server error ({failure.detail})", "retry later"),
    }[failure.kind]
    return ValueError(f"{lead}: {what}. Fix: {fix}; or {alternative}.")

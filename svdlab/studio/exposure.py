"""Where the studio may listen: loopback by default, any other address only with a token."""

from __future__ import annotations

import ipaddress

from svdlab.errors import SvdlabError

TOKEN_VARIABLE = "SVDLAB_TOKEN"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine only."""
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve on an address other machines can reach without a token."""
    if not is_loopback(host) and not token:
        raise SvdlabError(
            f"--host {host} lets other machines in: pass --token SECRET (or set {TOKEN_VARIABLE}), "
            "or serve on 127.0.0.1"
        )

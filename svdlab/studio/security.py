"""What every request must pass and every response carries: the token where one is set, bounded request
bodies, no cross-site or rebound requests, and a strict content security policy."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from svdlab.experiments.report import CSS as REPORT_CSS
from svdlab.experiments.report import SCRIPT as REPORT_SCRIPT
from svdlab.studio.exposure import is_loopback

COOKIE = "svdlab_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _inline_hash(text: str) -> str:
    """The CSP source that allows exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Scripts and styles only from the server's own files; the one inline script and style allowed are the
# static report's own (served from the runs folder), by hash.
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self' {_inline_hash(REPORT_SCRIPT)}; "
    f"style-src 'self' {_inline_hash(REPORT_CSS)}; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Guard:
    """The checks every request passes before it reaches a route, and the headers every response gets."""

    def __init__(self, token: str | None, max_body: int):
        self.token = token
        self.max_body = max_body

    async def __call__(self, request: Request, call_next) -> Response:
        """Check the request, then add the security headers to the response."""
        refusal = self._refusal(request)
        if refusal is None and self.token and not self._authorised(request):
            refusal = self._login(request) or _error(
                401, "this server needs its token: open /?token=TOKEN or send 'Authorization: Bearer TOKEN'"
            )
        response = refusal or await call_next(request)
        response.headers.update(HEADERS)
        return response

    def _refusal(self, request: Request) -> Response | None:
        """A 4xx for a request that must not go further: too big, rebound or cross-site."""
        if request.method not in SAFE_METHODS:
            length = request.headers.get("content-length")
            if length is None and request.headers.get("transfer-encoding"):
                return _error(411, "send a Content-Length with the request body")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                return _error(413, f"the request body is over {self.max_body} bytes; send a smaller image")
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host"):
                return _error(403, "cross-site requests are refused; use the studio's own page")
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if not self.token and not is_loopback(host):
            return _error(403, "this server answers only on its loopback address; open it as 127.0.0.1")
        return None

    def _authorised(self, request: Request) -> bool:
        given = request.cookies.get(COOKIE) or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _login(self, request: Request) -> Response | None:
        """Visiting /?token=TOKEN sets the token cookie and opens the page."""
        given = request.query_params.get("token", "")
        if request.url.path != "/" or not hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response

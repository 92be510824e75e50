"""The OpenID Connect relying party: discovery, the authorization request, the code exchange
and the ID token check, for single sign-on (`[oidc]`; the pages are `web/ui/oidc.py`).

The flow is the authorization code flow with PKCE (S256). `begin` draws a `state`, a `nonce`
and a code verifier and keeps them in a signed ten-minute cookie value (`ServerKey.sign`,
purpose `oidc`): nothing is stored server-side, and only the browser that started the flow can
finish it (the callback's `state` must equal the cookie's). `finish` exchanges the code (with
the verifier, and the client secret as HTTP Basic), then verifies the ID token: its signature
with a key of the provider's JWKS, `iss` (the discovery document's issuer), `aud` (this
client), `exp`/`iat` and `nonce` (Authlib's `CodeIDToken` rules over joserfc's JWT). The
userinfo endpoint, when there is one, adds the claims providers leave out of ID tokens
(e-mail, groups), provided it names the same `sub`.

HTTP goes through one aiohttp client session opened on first use, each call bounded by
`oidc.timeout_s`; the discovery document and the keys are cached for ten minutes (the keys
are fetched again at once when a token names an unknown key id). A provider that cannot be
reached or answers nonsense raises `ProviderError`; a callback that does not check out
raises `FlowError`. Both carry a message fit for the page, never a stack trace.
"""

from __future__ import annotations

import base64
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from pichub.config import OidcSettings
from pichub.sealing import ServerKey
from pichub.services.oidc import Identity

FLOW_S = 600  # how long a browser may spend at the provider
CACHE_S = 600  # discovery document and keys
LEEWAY_S = 60  # clock difference tolerated on exp/iat
_PURPOSE = "oidc"


class ProviderError(Exception):
    """The provider is unreachable or its answer is unusable (shown as a 502 page)."""


class FlowError(Exception):
    """The callback does not belong to a live flow of this browser (shown as a 400 page)."""


@dataclass(frozen=True)
class Finished:
    identity: Identity
    next: str


class OidcClient:
    """One provider, as configured in `[oidc]`."""

    def __init__(self, settings: OidcSettings, key: ServerKey) -> None:
        self.settings = settings
        self._key = key
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._fetched_at = 0.0

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def begin(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """The provider's authorization URL and the signed flow to keep in a cookie."""
        metadata = await self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 asks for 43-128
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri, "scope": self.settings.scopes, "state": state,
            "nonce": nonce, "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256"})
        endpoint = _string(metadata, "authorization_endpoint")
        flow = self._key.sign(_PURPOSE, {"state": state, "nonce": nonce, "verifier": verifier,
                                         "next": next_path}, FLOW_S)
        return endpoint + ("&" if "?" in endpoint else "?") + query, flow

    async def finish(self, flow_cookie: str | None, query: dict[str, str],
                     redirect_uri: str) -> Finished:
        """The verified identity of the callback `query`, for the flow in `flow_cookie`."""
        flow = self._key.verify(_PURPOSE, flow_cookie)
        if flow is None:
            raise FlowError("The sign-in took too long or was started in another browser.")
        if not secrets.compare_digest(str(flow["state"]), query.get("state", "")):
            raise FlowError("The sign-in answer does not belong to this browser's sign-in "
                            "(state mismatch).")
        if "error" in query:
            raise FlowError("The provider refused the sign-in: "
                            + (query.get("error_description") or query["error"])[:200])
        if not query.get("code"):
            raise FlowError("The provider's answer has no authorization code.")
        tokens = await self._exchange(query["code"], str(flow["verifier"]), redirect_uri)
        claims = await self._id_token(tokens, str(flow["nonce"]))
        claims = {**await self._userinfo(tokens, str(claims["sub"])), **claims}
        return Finished(self._identity(claims), str(flow.get("next", "")))

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (cached), checked to name the configured issuer."""
        if self._metadata is None or time.monotonic() - self._fetched_at > CACHE_S:
            metadata = await self._get_json(self.settings.metadata_url, "discovery document")
            issuer = _string(metadata, "issuer")
            if self.settings.issuer and issuer.rstrip("/") != self.settings.issuer:
                raise ProviderError(f"The provider calls itself {issuer!r}, not the "
                                    f"configured issuer {self.settings.issuer!r}.")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                _string(metadata, field)
            self._metadata, self._jwks, self._fetched_at = metadata, None, time.monotonic()
        return self._metadata

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier}
        headers = {"Accept": "application/json"}
        if self.settings.client_secret is not None:
            headers["Authorization"] = _basic(self.settings.client_id,
                                              self.settings.client_secret.get_secret_value())
        else:
            form["client_id"] = self.settings.client_id
        tokens = await self._request("POST", _string(metadata, "token_endpoint"),
                                     "token endpoint", data=form, headers=headers)
        if not isinstance(tokens.get("id_token"), str):
            raise ProviderError("The token endpoint answered without an ID token "
                                f"({_reason(tokens)}).")
        return tokens

    async def _id_token(self, tokens: dict[str, Any], nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[a for a in algorithms if a != "none"])
        try:
            try:
                token = jwt.decode(tokens["id_token"], await self._keys(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since we cached them
                token = jwt.decode(tokens["id_token"], await self._keys(refresh=True),
                                   registry=registry)
            claims = CodeIDToken(
                token.claims, token.header,
                {"iss": {"essential": True, "value": _string(metadata, "issuer")},
                 "aud": {"essential": True, "value": self.settings.client_id}},
                {"nonce": nonce, "client_id": self.settings.client_id,
                 "access_token": tokens.get("access_token")})
            claims.validate(leeway=LEEWAY_S)
        except (JoseError, ValueError, TypeError) as exc:
            raise FlowError(f"The ID token does not check out ({_jose_reason(exc)}).") from None
        return dict(claims)

    async def _keys(self, *, refresh: bool = False) -> KeySet:
        metadata = await self.metadata()
        if self._jwks is None or refresh:
            self._jwks = await self._get_json(_string(metadata, "jwks_uri"), "key set")
        try:
            return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise ProviderError("The provider's key set (jwks_uri) is not usable.") from None

    async def _userinfo(self, tokens: dict[str, Any], subject: str) -> dict[str, Any]:
        endpoint = (await self.metadata()).get("userinfo_endpoint")
        access = tokens.get("access_token")
        if not isinstance(endpoint, str) or not isinstance(access, str):
            return {}
        info = await self._request("GET", endpoint, "userinfo endpoint",
                                   headers={"Authorization": "Bearer " + access,
                                            "Accept": "application/json"})
        if info.get("sub") != subject:
            raise FlowError("The userinfo answer is about someone else (sub mismatch).")
        return info

    def _identity(self, claims: dict[str, Any]) -> Identity:
        groups = claims.get(self.settings.groups_claim) or []
        if isinstance(groups, str):
            groups = groups.replace(",", " ").split()
        verified = claims.get("email_verified")
        return Identity(
            issuer=str(claims["iss"]), subject=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            email_verified=verified is True or verified == "true",
            preferred_username=str(claims.get("preferred_username") or ""),
            groups=tuple(str(g) for g in groups) if isinstance(groups, list) else ())

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        return await self._request("GET", url, what, headers={"Accept": "application/json"})

    async def _request(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))
        try:
            async with self._http.request(method, url, allow_redirects=False, **kwargs) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise ProviderError(f"The provider's {what} could not be read "
                                f"({type(exc).__name__}).") from None
        if not isinstance(body, dict):
            raise ProviderError(f"The provider's {what} did not answer a JSON object.")
        if status != 200:
            raise ProviderError(f"The provider's {what} answered {status} ({_reason(body)}).")
        return body


def _string(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise ProviderError(f"The provider's discovery document has no {field}.")
    return value


def _basic(client_id: str, secret: str) -> str:
    """client_secret_basic: both parts form-encoded first (RFC 6749, section 2.3.1)."""
    pair = urllib.parse.quote_plus(client_id) + ":" + urllib.parse.quote_plus(secret)
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _reason(body: dict[str, Any]) -> str:
    return str(body.get("error_description") or body.get("error") or "no reason given")[:200]


def _jose_reason(exc: Exception) -> str:
    return str(getattr(exc, "description", "") or getattr(exc, "error", "") or exc)[:200]

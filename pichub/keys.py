"""Every `web.AppKey` and request key in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import jinja2
from aiohttp import web

from pichub.blobs import BlobStore
from pichub.config import Settings
from pichub.db.database import Database
from pichub.hosts import AllowedHosts
from pichub.imaging.pipeline import Pipeline
from pichub.ratelimit import Decision, RateLimiter
from pichub.services import Services
from pichub.services.accounts import Actor
from pichub.services.expiry import ExpirySweep
from pichub.services.twofactor import TwoFactor
from pichub.storage import Storage
from pichub.timeutil import Clock
from pichub.web.clientip import Network
from pichub.web.fetch import UrlFetcher
from pichub.web.observe import Metrics
from pichub.web.oidc import OidcClient
from pichub.web.ui.assets import Assets
from pichub.webhooks.worker import WebhookWorker

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
BLOBS = web.AppKey("blobs", BlobStore)  # the local file layer (STORAGE's `blobs`)
STORAGE = web.AppKey("storage", Storage)  # where files live for good: disk or bucket
UPLOAD_TMP = web.AppKey("upload_tmp", Path)
FETCHER = web.AppKey("fetcher", UrlFetcher)  # upload by URL, SSRF-guarded
PIPELINE = web.AppKey("pipeline", Pipeline)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", Sequence[Network])  # server.trusted_proxies
METRICS = web.AppKey("metrics", Metrics)
ALLOWED_HOSTS = web.AppKey("allowed_hosts", AllowedHosts)  # server.allowed_hosts, resolved
WEBHOOKS = web.AppKey("webhooks", WebhookWorker)
LIMITER = web.AppKey("limiter", RateLimiter)
SERVICES = web.AppKey("services", Services)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")  # time of expiry and links (tests set theirs)
EXPIRY = web.AppKey("expiry", ExpirySweep)  # the background job deleting expired images
TWO_FACTOR = web.AppKey("two_factor", TwoFactor)  # TOTP sign-in of the web UI
OIDC = web.AppKey("oidc", OidcClient)  # single sign-on (`[oidc]`)
JINJA = web.AppKey("ui_jinja", jinja2.Environment)  # the web UI's templates
ASSETS = web.AppKey("ui_assets", Assets)  # the web UI's static files

#: What /healthz asks besides the local disk, by name ("database", "redis", …): each returns
#: False or raises when its dependency is down (web/health.py runs them, with a timeout each).
DependencyCheck = Callable[[], Awaitable[bool]]
DEPENDENCIES: web.AppKey[dict[str, DependencyCheck]] = web.AppKey("dependencies")

# Request-scoped values, set by the middleware: the caller (or None when anonymous).
ACTOR: web.RequestKey[Actor | None] = web.RequestKey("actor")
RATE: web.RequestKey[Decision] = web.RequestKey("rate")  # the API rate-limit decision

"""Outgoing webhooks: the delivery machinery below the services.

- `signing`: Standard Webhooks secrets, signatures and headers.
- `ssrf`: refusal of loopback/private/link-local targets, at creation and at connect time.
- `worker`: the delivery loop that drains the `events` outbox into `deliveries` and POSTs them.

Endpoints are managed by `pichub.services.webhooks`; the SQL lives in `pichub.db.webhooks`
(endpoints) and `pichub.db.deliveries` (the queue).
"""

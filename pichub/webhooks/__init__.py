"""Outgoing webhooks (SPEC §7).

- `signing`: Standard Webhooks secrets, signatures and headers.
- `ssrf`: refusal of loopback/private/link-local targets, at creation and at connect time.
- `serialize`: the webhook and delivery objects of the API, and input validation.
- `worker`: the delivery loop that drains the `events` outbox into `deliveries` and POSTs them.

The SQL lives in `pichub.db.webhooks`.
"""

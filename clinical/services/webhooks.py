"""Signed webhooks: tell a client's system that a study's result is ready.

``study_ready_signal`` (sent on commit when every image of a study has a finished or failed
prediction; its receiver is in ``clinical.services.notifications``) -> ``webhook_schedule``:
one ``WebhookDelivery`` row per distinct result and URL -> the ``clinical.deliver_webhook``
task (``clinical.tasks``, ``default`` queue) runs ``webhook_attempt``, which POSTs the JSON
result with

    X-RadViewer-Timestamp: <unix seconds>
    X-RadViewer-Signature: sha256=<hex HMAC-SHA256(client webhook secret, "<timestamp>." + body)>
    X-RadViewer-Delivery:  <delivery id>   (the same on every retry: receivers dedupe on it)

Delivery is at least once. 2xx = delivered; 5xx, 408, 429, timeouts and connection errors are
retried with jittered exponential backoff (house_task: 1 s, 2 s, 4 s ... capped at 10 min,
``MAX_ATTEMPTS`` in all, about an hour); other answers (3xx - redirects are never followed -
and 4xx) fail at once. Every attempt is recorded on the row; the admin can redeliver.

Events about the models rather than a study (``model.canary_rolled_back``, when the canary
guard rolls a canary back) go the same way, signed the same, to every active client with the
``ml_alerts`` scope at its default callback URL (``ml_alert_schedule``); such rows have no study.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import requests
from django.db import IntegrityError, transaction
from django.utils import timezone

from clinical.models import ApiClient, Study, WebhookDelivery
from clinical.selectors.results import study_queryset, study_result
from clinical.services.callback_urls import CallbackUrlError, callback_url_validate
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.tasks import enqueue_on_commit

log = logging.getLogger(__name__)

DELIVER_TASK = "clinical.deliver_webhook"  # clinical.tasks.deliver_webhook, sent by name
MAX_ATTEMPTS = 15
TIMEOUT = (5.0, 15.0)  # connect, read (seconds)
USER_AGENT = "RadViewer-Webhook/1"


class WebhookRetryableError(Exception):
    """The receiver may succeed later (5xx, 408, 429, network): the task retries."""


def backoff_bound_s(attempts: int) -> int:
    """The longest wait before the next attempt after ``attempts`` attempts: house_task's
    retries use Celery's full-jitter backoff, a random time up to this bound (1, 2, 4 ... 600 s)."""
    return min(600, 2 ** max(attempts - 1, 0))


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _payload(study: Study, client: ApiClient) -> bytes:
    event = "study.failed" if study.status == Study.Status.FAILED else "study.ready"
    body = {"event": event, "study": study_result(study, client=client)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def webhook_schedule(*, study_id: int) -> WebhookDelivery | None:
    """Create the delivery for a study's current result (once per result and URL) and queue it."""
    row = Study.objects.filter(pk=study_id).values("api_client_id", "callback_url").first()
    if row is None or row["api_client_id"] is None:
        return None  # uploaded by a person: nobody to call
    client = ApiClient.objects.filter(pk=row["api_client_id"], active=True).first()
    url = (row["callback_url"] or (client.default_callback_url if client else "")).strip()
    if client is None or not url:
        return None
    study = study_queryset(include_patient=False).get(pk=study_id)
    body = _payload(study, client)
    digest = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            delivery, created = WebhookDelivery.objects.get_or_create(
                study=study, url=url, payload_sha256=digest,
                defaults={"client": client, "payload": body.decode(), "event": json.loads(body)["event"]},
            )
            if created:
                enqueue_on_commit(DELIVER_TASK, delivery_id=delivery.pk)
    except IntegrityError:  # the same signal handled twice at once
        return WebhookDelivery.objects.filter(study=study, url=url, payload_sha256=digest).first()
    return delivery


def ml_alert_schedule(*, event: str, body: dict[str, Any]) -> list[WebhookDelivery]:
    """One delivery of ``{"event": event, **body}`` per active ``ml_alerts`` client with a
    default callback URL, queued on commit."""
    payload = json.dumps({"event": event, **body}, sort_keys=True, separators=(",", ":"), default=str).encode()
    digest = hashlib.sha256(payload).hexdigest()
    deliveries = []
    for client in ApiClient.objects.filter(active=True).exclude(default_callback_url="").order_by("pk"):
        if not client.has_scope(ApiClient.Scope.ML_ALERTS):
            continue
        delivery = WebhookDelivery.objects.create(
            client=client, study=None, url=client.default_callback_url.strip(), payload=payload.decode(),
            payload_sha256=digest, event=event)
        enqueue_on_commit(DELIVER_TASK, delivery_id=delivery.pk)
        deliveries.append(delivery)
    return deliveries


def _finish(delivery: WebhookDelivery, *, status: str, code: int | None, error: str) -> None:
    now = timezone.now()
    delivery.status, delivery.response_code, delivery.error = status, code, error[:2000]
    delivery.next_attempt_at = None
    if status == WebhookDelivery.Status.DELIVERED:
        delivery.delivered_at = now
    delivery.save(update_fields=["status", "response_code", "error", "next_attempt_at", "delivered_at"])
    subject: dict[str, Any] = ({"obj": delivery.study} if delivery.study_id else
                               {"object_type": "clinical.webhookdelivery", "object_id": delivery.pk})
    audit_event_create(
        actor=None, actor_label=delivery.client.actor_label, action=AuditAction(f"webhook.{status}"),
        **subject,
        details={"delivery": delivery.pk, "url": delivery.url, "attempts": delivery.attempts, "response_code": code,
                 "error": error[:500]},
    )


def _retry_or_fail(delivery: WebhookDelivery, *, code: int | None, error: str) -> None:
    if delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery, status=WebhookDelivery.Status.FAILED, code=code,
                error=f"gave up after {delivery.attempts} attempts: {error}")
        return
    bound = backoff_bound_s(delivery.attempts)
    delivery.status, delivery.response_code, delivery.error = WebhookDelivery.Status.RETRYING, code, error[:2000]
    delivery.next_attempt_at = timezone.now() + timedelta(seconds=bound)
    delivery.save(update_fields=["status", "response_code", "error", "next_attempt_at"])
    raise WebhookRetryableError(f"delivery {delivery.pk} attempt {delivery.attempts}: {error}")


def webhook_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """One delivery attempt; raises WebhookRetryableError when a later attempt may succeed."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(of=("self",)).select_related("client", "study")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status in (WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED):
            return delivery
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    client = delivery.client
    if not client.active:
        _finish(delivery, status=WebhookDelivery.Status.FAILED, code=None, error="the API client is revoked")
        return delivery
    try:
        callback_url_validate(delivery.url, client=client)
    except CallbackUrlError as exc:
        _finish(delivery, status=WebhookDelivery.Status.FAILED, code=None, error=str(exc))
        return delivery
    body = delivery.payload.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-RadViewer-Event": delivery.event,
        "X-RadViewer-Delivery": str(delivery.pk),
        "X-RadViewer-Timestamp": str(timestamp),
        "X-RadViewer-Signature": sign(client.webhook_secret, timestamp, body),
    }
    WebhookDelivery.objects.filter(pk=delivery.pk).update(signature_timestamp=timestamp)
    delivery.signature_timestamp = timestamp
    try:
        response = requests.post(delivery.url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        _retry_or_fail(delivery, code=None, error=f"{type(exc).__name__}: {exc}")
        return delivery
    code = response.status_code
    if 200 <= code < 300:
        _finish(delivery, status=WebhookDelivery.Status.DELIVERED, code=code, error="")
    elif code >= 500 or code in (408, 429):
        _retry_or_fail(delivery, code=code, error=f"HTTP {code}: {response.text[:300]}")
    else:
        _finish(delivery, status=WebhookDelivery.Status.FAILED, code=code,
                error=f"HTTP {code} (not retried: redirects are not followed, 4xx means the request is refused)"
                      f": {response.text[:300]}")
    return delivery


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery, actor: Any = None) -> WebhookDelivery:
    """Operator action: try a failed delivery again from attempt one."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status == WebhookDelivery.Status.FAILED:
        delivery.status, delivery.attempts, delivery.next_attempt_at = WebhookDelivery.Status.PENDING, 0, None
        delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
        subject: dict[str, Any] = ({"obj": delivery.study} if delivery.study_id else
                                   {"object_type": "clinical.webhookdelivery", "object_id": delivery.pk})
        audit_event_create(actor=actor, action=AuditAction.WEBHOOK_REDELIVERY_REQUESTED, **subject,
                           details={"delivery": delivery.pk})
        enqueue_on_commit(DELIVER_TASK, delivery_id=delivery.pk)
    return delivery

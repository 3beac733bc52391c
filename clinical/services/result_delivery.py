"""Push a study's result back to the client's PACS: the DICOM SR (``clinical.api.sr``), sent to
each enabled ``ResultDestination`` of the client that sent the study, over DICOMweb STOW-RS or
DICOM C-STORE (pynetdicom).

Triggers: triage done (``study_ready_signal``, receiver in ``clinical.services.notifications``),
sign-off and amendment (``clinical.services.reviews``). ``result_deliveries_schedule`` makes one
``ResultDelivery`` row per destination and event (a trigger firing twice for the same event does
not send twice) and queues ``clinical.deliver_result``, which calls ``result_delivery_attempt``
with the SR renderer (the SR is built by the API layer; this service only sends bytes).

The SR is built at each attempt, from the result as it is then: a study amended before an
earlier delivery got through gets the amended SR (its SOP Instance UID is derived from the
content, so the PACS never files one SR twice). Retries and back-off are the webhooks' (house
task, full-jitter exponential, ``MAX_ATTEMPTS``, about an hour): connection errors, timeouts,
HTTP 5xx/408/429, a rejected or aborted association and DIMSE "out of resources" (0xA7xx) are
retried; HTTP 4xx/3xx and other DIMSE failures fail at once. Every attempt is on the row;
the admin lists the log and redelivers failed ones.
"""

from __future__ import annotations

import base64
import io
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pydicom
import requests
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clinical.models import ApiClient, Image, Prediction, ResultDelivery, ResultDestination, Study
from clinical.services.webhooks import MAX_ATTEMPTS, backoff_bound_s
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create
from radviewer.lib.sealed import SealError, seal, unseal
from radviewer.lib.tasks import enqueue_on_commit

log = logging.getLogger(__name__)

DELIVER_TASK = "clinical.deliver_result"  # clinical.tasks.deliver_result, sent by name
SECRET_PURPOSE = "clinical.result_destination.secret"  # noqa: S105 (a key-derivation label)
HTTP_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
DIMSE_TIMEOUT = 30.0
USER_AGENT = "RadViewer-ResultDelivery/1"
AE_TITLE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.")

# The SR renderer the task passes in: (study, client) -> Part 10 bytes, or SrUnavailable-like
# exception whose str() says why no SR can be made.
RenderSr = Callable[[Study, ApiClient], bytes]


class ResultDeliveryRetryableError(Exception):
    """The destination may take the SR later: the task retries with back-off."""


class _Permanent(Exception):
    """The destination refused the SR; retrying would not help."""


class _Transient(Exception):
    """The destination is down or busy; a later attempt may succeed."""


# --- destinations ---------------------------------------------------------------------------


def _ae_title_check(value: str, field: str, errors: dict[str, str]) -> None:
    if not value.strip() or len(value) > 16 or not set(value) <= AE_TITLE_CHARS or value != value.strip():
        errors[field] = ("an AE title is 1-16 characters: letters, digits, space, '_', '-', '.'; "
                         "no leading or trailing space")


def result_destination_check(*, destination: ResultDestination, secret: str | None = None) -> None:
    """Raise ValidationError (by field) unless ``destination`` can be used as configured."""
    errors: dict[str, str] = {}
    kind = destination.kind
    if kind not in ResultDestination.Kind.values:
        errors["kind"] = f"choose one of: {', '.join(ResultDestination.Kind.values)}"
    has_secret = bool(secret) if secret is not None else destination.has_secret
    if kind == ResultDestination.Kind.DICOMWEB:
        if not destination.url.startswith(("http://", "https://")):
            errors["url"] = "the DICOMweb root URL (http:// or https://), e.g. https://pacs.example.org/dicom-web/"
        if destination.auth == ResultDestination.Auth.BASIC and not destination.username:
            errors["username"] = "HTTP Basic needs a user name"
        if destination.auth in (ResultDestination.Auth.BASIC, ResultDestination.Auth.BEARER) and not has_secret:
            errors["secret"] = "enter the password or token"  # noqa: S105 (a message)
    elif kind == ResultDestination.Kind.DIMSE:
        if not destination.host.strip():
            errors["host"] = "the C-STORE peer's host name or address"
        if not destination.port or not 1 <= destination.port <= 65535:
            errors["port"] = "the C-STORE peer's port (1-65535)"
        _ae_title_check(destination.called_ae, "called_ae", errors)
        _ae_title_check(destination.calling_ae, "calling_ae", errors)
    if errors:
        raise ValidationError(errors)


def result_destination_save(*, destination: ResultDestination, secret: str | None = None,
                            actor: Any = None, request: Any = None) -> ResultDestination:
    """Validate and save a destination; ``secret`` (password or bearer token) replaces the sealed
    one when given, ``""`` clears it, ``None`` keeps it. Raises ValidationError, saving nothing."""
    result_destination_check(destination=destination, secret=secret)
    with transaction.atomic():
        if secret is not None:
            destination.secret_sealed = seal(secret, purpose=SECRET_PURPOSE)
        created = destination.pk is None
        destination.full_clean(exclude=["secret_sealed"])
        destination.save()
        audit_event_create(
            actor=actor, action=AuditAction.RESULT_DESTINATION_SAVED, obj=destination, request=request,
            details={"client": destination.client.name, "name": destination.name, "kind": destination.kind,
                     "target": destination.target, "enabled": destination.enabled, "created": created,
                     "secret_changed": secret is not None},  # never the secret itself
        )
    return destination


# --- scheduling -----------------------------------------------------------------------------


def _triage_event_key(study_id: int) -> str | None:
    """The latest prediction of each image: a new triage (a retry) is a new event."""
    latest: dict[int, int] = {}
    rows = (Prediction.objects.filter(image__study_id=study_id, status=Prediction.Status.SUCCEEDED)
            .order_by("image_id", "-created_at", "-id").values_list("image_id", "id"))
    for image_id, prediction_id in rows:
        latest.setdefault(image_id, prediction_id)
    if not latest:
        return None
    return "predictions:" + ",".join(str(latest[k]) for k in sorted(latest))[:180]


def result_deliveries_schedule(*, study_id: int, trigger: str, event_key: str | None = None) -> list[ResultDelivery]:
    """One delivery per enabled destination of the study's client for this event, queued on commit."""
    if trigger not in ResultDelivery.Trigger.values:
        raise ValueError(f"unknown trigger {trigger!r}")
    study = Study.objects.filter(pk=study_id).select_related("api_client").first()
    if study is None or study.api_client is None or not study.api_client.active:
        return []
    if not study.images.filter(format=Image.Format.DICOM).exists():
        return []  # a DICOM SR refers to DICOM instances: nothing to send for PNG/JPEG studies
    destinations = list(study.api_client.result_destinations.filter(enabled=True))
    if not destinations:
        return []
    if trigger == ResultDelivery.Trigger.TRIAGE_DONE:
        event_key = _triage_event_key(study_id)
        if event_key is None:
            return []  # triage failed for every image: there is no result to send
    if not event_key:
        raise ValueError("event_key is required for sign-off and amendment deliveries")
    deliveries = []
    for destination in destinations:
        try:
            with transaction.atomic():
                delivery, created = ResultDelivery.objects.get_or_create(
                    destination=destination, study=study, trigger=trigger, event_key=event_key)
                if created:
                    enqueue_on_commit(DELIVER_TASK, delivery_id=delivery.pk)
        except IntegrityError:  # the same trigger handled twice at once
            delivery = ResultDelivery.objects.get(destination=destination, study=study, trigger=trigger,
                                                  event_key=event_key)
        deliveries.append(delivery)
    return deliveries


# --- attempts -------------------------------------------------------------------------------


def _finish(delivery: ResultDelivery, *, status: str, response: str, error: str) -> None:
    delivery.status, delivery.response, delivery.last_error = status, response[:200], error[:2000]
    delivery.next_attempt_at = None
    if status == ResultDelivery.Status.DELIVERED:
        delivery.delivered_at = timezone.now()
    delivery.save(update_fields=["status", "response", "last_error", "next_attempt_at", "delivered_at",
                                 "sop_instance_uid"])
    destination = delivery.destination
    audit_event_create(
        actor=None, actor_label=destination.client.actor_label,
        action=AuditAction.RESULT_DELIVERED if status == ResultDelivery.Status.DELIVERED
        else AuditAction.RESULT_DELIVERY_FAILED,
        obj=delivery.study,
        details={"delivery": delivery.pk, "destination": destination.name, "target": destination.target,
                 "trigger": delivery.trigger, "sop_instance_uid": delivery.sop_instance_uid,
                 "attempts": delivery.attempts, "response": response[:200], "error": error[:500]},
    )


def _retry_or_fail(delivery: ResultDelivery, *, response: str, error: str) -> None:
    if delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery, status=ResultDelivery.Status.FAILED, response=response,
                error=f"gave up after {delivery.attempts} attempts: {error}")
        return
    delivery.status = ResultDelivery.Status.RETRYING
    delivery.response, delivery.last_error = response[:200], error[:2000]
    delivery.next_attempt_at = timezone.now() + timedelta(seconds=backoff_bound_s(delivery.attempts))
    delivery.save(update_fields=["status", "response", "last_error", "next_attempt_at", "sop_instance_uid"])
    raise ResultDeliveryRetryableError(f"result delivery {delivery.pk} attempt {delivery.attempts}: {error}")


def result_delivery_attempt(*, delivery_id: int, render_sr: RenderSr) -> ResultDelivery | None:
    """One attempt; raises ResultDeliveryRetryableError when a later attempt may succeed."""
    with transaction.atomic():
        delivery = (ResultDelivery.objects.select_for_update()
                    .select_related("destination__client", "study").filter(pk=delivery_id).first())
        if delivery is None or delivery.status in (ResultDelivery.Status.DELIVERED, ResultDelivery.Status.FAILED):
            return delivery
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    destination, client = delivery.destination, delivery.destination.client
    if not client.active:
        _finish(delivery, status=ResultDelivery.Status.FAILED, response="", error="the API client is revoked")
        return delivery
    if not destination.enabled:
        _finish(delivery, status=ResultDelivery.Status.FAILED, response="", error="the destination is disabled")
        return delivery
    try:
        sr = render_sr(delivery.study, client)
    except Exception as exc:  # no SR can be made (no DICOM source, no result): nothing to retry
        log.warning("no SR for result delivery %s: %s", delivery.pk, exc)
        _finish(delivery, status=ResultDelivery.Status.FAILED, response="", error=f"no SR to send: {exc}")
        return delivery
    dataset = pydicom.dcmread(io.BytesIO(sr))
    delivery.sop_instance_uid = str(dataset.SOPInstanceUID)
    try:
        if destination.kind == ResultDestination.Kind.DIMSE:
            response = _c_store(destination, dataset)
        else:
            response = _stow(destination, sr)
    except _Transient as exc:
        _retry_or_fail(delivery, response=getattr(exc, "response", ""), error=str(exc))
        return delivery
    except (_Permanent, SealError) as exc:
        _finish(delivery, status=ResultDelivery.Status.FAILED, response=getattr(exc, "response", ""),
                error=f"{exc} (not retried)")
        return delivery
    _finish(delivery, status=ResultDelivery.Status.DELIVERED, response=response, error="")
    return delivery


def _with_response(exc: Exception, response: str) -> Exception:
    exc.response = response  # type: ignore[attr-defined]
    return exc


def _stow(destination: ResultDestination, sr: bytes) -> str:
    """STOW-RS of one instance to ``<url>/studies`` (PS3.18 10.5); the answer line on success."""
    boundary = f"radviewer-{uuid.uuid4().hex}"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + sr
            + f"\r\n--{boundary}--\r\n".encode())
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
               "Accept": "application/dicom+json", "User-Agent": USER_AGENT}
    secret = unseal(destination.secret_sealed, purpose=SECRET_PURPOSE)
    if destination.auth == ResultDestination.Auth.BASIC:  # UTF-8, as RFC 7617 recommends (requests: latin-1)
        credentials = base64.b64encode(f"{destination.username}:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    elif destination.auth == ResultDestination.Auth.BEARER:
        headers["Authorization"] = f"Bearer {secret}"
    url = destination.url.rstrip("/") + "/studies"
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=HTTP_TIMEOUT,
                               allow_redirects=False)
    except requests.RequestException as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from None
    code, text = answer.status_code, answer.text[:300]
    line = f"HTTP {code}"
    if code >= 500 or code in (408, 429):
        raise _with_response(_Transient(f"HTTP {code}: {text}"), line)
    if code not in (200, 202):
        raise _with_response(_Permanent(f"HTTP {code} (redirects are not followed, 4xx means refused): {text}"), line)
    failed = _stow_failures(answer)
    if code == 202 or failed:
        raise _with_response(_Permanent(f"HTTP {code}: the destination refused the SR ({failed or text})"), line)
    return line


def _stow_failures(answer: requests.Response) -> str:
    """The Failure Reasons (0008,1197) of a Store Instances Response, if it is DICOM JSON."""
    try:
        items = (answer.json().get("00081198") or {}).get("Value") or []
    except (ValueError, AttributeError):
        return ""
    reasons = [f"0x{int((i.get('00081197') or {}).get('Value', [0])[0]):04X}" for i in items if isinstance(i, dict)]
    return f"failure reason {', '.join(reasons)}" if reasons else ""


def _c_store(destination: ResultDestination, dataset: pydicom.Dataset) -> str:
    """C-STORE of the SR to the peer; the DIMSE status on success."""
    try:
        from pynetdicom import AE
    except ImportError:  # the dependency is in pyproject.toml; a partial install must say so
        raise _Permanent("pynetdicom is not installed; C-STORE destinations need it") from None
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ae = AE(ae_title=destination.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = DIMSE_TIMEOUT
    ae.connection_timeout = 10
    syntaxes = list(dict.fromkeys([dataset.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian,
                                   ImplicitVRLittleEndian]))
    ae.add_requested_context(dataset.SOPClassUID, syntaxes)
    assoc = ae.associate(destination.host, int(destination.port), ae_title=destination.called_ae)
    if assoc.is_rejected:
        result = assoc.acceptor.primitive.result_str if assoc.acceptor.primitive else "rejected"
        raise _with_response(_Transient(f"association rejected by {destination.target} ({result})"),
                             "A-ASSOCIATE-RJ")
    if not assoc.is_established:
        raise _Transient(f"no association with {destination.target} (connection refused, timed out or aborted)")
    try:
        if not any(cx.abstract_syntax == dataset.SOPClassUID for cx in assoc.accepted_contexts):
            raise _with_response(_Permanent(f"{destination.target} does not accept the SR's SOP class "
                                            f"{dataset.SOPClassUID}"), "no presentation context")
        status = assoc.send_c_store(dataset)
    finally:
        if assoc.is_established:
            assoc.release()
    if not status or "Status" not in status:
        raise _Transient(f"no C-STORE response from {destination.target} (timed out or aborted)")
    code = int(status.Status)
    line = f"C-STORE 0x{code:04X}"
    if code == 0x0000 or code in (0xB000, 0xB006, 0xB007):  # success, or stored with a warning
        return line
    if 0xA700 <= code <= 0xA7FF:  # out of resources: the peer may have room later
        raise _with_response(_Transient(f"{line}: out of resources"), line)
    raise _with_response(_Permanent(f"{line}: the peer refused the SR"), line)


@transaction.atomic
def result_redeliver(*, delivery: ResultDelivery, actor: Any = None) -> ResultDelivery:
    """Operator action: try a failed delivery again from attempt one."""
    delivery = ResultDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status == ResultDelivery.Status.FAILED:
        delivery.status, delivery.attempts, delivery.next_attempt_at = ResultDelivery.Status.PENDING, 0, None
        delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
        audit_event_create(actor=actor, action=AuditAction.RESULT_REDELIVERY_REQUESTED, obj=delivery.study,
                           details={"delivery": delivery.pk, "destination": delivery.destination.name})
        enqueue_on_commit(DELIVER_TASK, delivery_id=delivery.pk)
    return delivery

"""Side effects when a study's triage result is ready.

``study_ready`` is a signal so that delivery mechanisms (the PACS webhooks, the SR pushed to
result destinations) subscribe to it
without the prediction code knowing about them. Their receivers are here, beside the
signal, so whatever imports the signal has them connected.
"""

from __future__ import annotations

import logging
from typing import Any

import django.dispatch
from django.dispatch import receiver

from clinical.models import ResultDelivery
from clinical.services.result_delivery import result_deliveries_schedule
from clinical.services.webhooks import webhook_schedule
from mlcore.services.operating_points import operating_points_applied

log = logging.getLogger(__name__)

study_ready_signal = django.dispatch.Signal()  # kwargs: study_id


def study_ready(*, study_id: int) -> None:
    """Called on commit when every image of a study has a finished (or failed) prediction."""
    study_ready_signal.send(sender="clinical", study_id=study_id)


@receiver(study_ready_signal, dispatch_uid="clinical.services.notifications.webhook_on_study_ready")
def webhook_on_study_ready(sender: Any, *, study_id: int, **_: Any) -> None:
    """Schedule the client's webhook. Runs after the prediction's commit: a webhook problem
    must not fail the triage task."""
    try:
        webhook_schedule(study_id=study_id)
    except Exception:
        log.exception("could not schedule the webhook of study %s", study_id)


@receiver(study_ready_signal, dispatch_uid="clinical.services.notifications.result_on_study_ready")
def result_on_study_ready(sender: Any, *, study_id: int, **_: Any) -> None:
    """Push the SR to the client's result destinations; like the webhook, never fails triage."""
    try:
        result_deliveries_schedule(study_id=study_id, trigger=ResultDelivery.Trigger.TRIAGE_DONE)
    except Exception:
        log.exception("could not schedule the result deliveries of study %s", study_id)


@receiver(operating_points_applied, dispatch_uid="clinical.services.notifications.rerank_on_operating_points")
def rerank_on_operating_points(sender: Any, *, name: str, version: str, **_: Any) -> None:
    """A promotion applied new urgent thresholds to ``version``: re-rank the open studies its
    predictions triaged (new predictions use them anyway)."""
    from clinical.services.predictions import triage_refresh_for_version  # it imports this module

    try:
        triage_refresh_for_version(model_name=name, model_version=version)
    except Exception:
        log.exception("could not re-rank the worklist for %s v%s", name, version)

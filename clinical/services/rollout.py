"""The canary guard's clinical half: the canary's and production's prediction failures and
latencies (clinical tables) for ``mlcore.services.rollout_guard.guard_run``, and the signed
webhook to the ML-alert clients when it rolls a canary back."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from clinical.selectors.predictions import arm_operations
from clinical.services.webhooks import ml_alert_schedule
from mlcore.selectors.rollout import canary_window, guard_alert_payload
from mlcore.services.rollout_guard import guard_run

ALERT_EVENT = "model.canary_rolled_back"


def rollout_guard_check(*, name: str | None = None) -> Any:
    """One guard run (beat, every minute); returns the recorded run."""
    name = name or settings.MLFLOW_REGISTERED_MODEL
    window = canary_window(name=name)
    ops = None
    if window is not None and window.production_version:
        ops = arm_operations(model_name=name, since=window.since,
                             versions={"canary": window.canary_version, "production": window.production_version})
    with transaction.atomic():
        run = guard_run(name=name, ops=ops)
        # Told once per removal: a run that could not remove the alias retries next minute.
        if run.decision == "rollback" and run.change_record_id:
            ml_alert_schedule(event=ALERT_EVENT, body=guard_alert_payload(run_id=run.pk))
    return run

"""Side effects when a study's triage result is ready.

``study_ready`` is a signal so that delivery mechanisms (the PACS webhooks) subscribe to it
without the prediction code knowing about them.
"""

from __future__ import annotations

import django.dispatch

study_ready_signal = django.dispatch.Signal()  # kwargs: study_id


def study_ready(*, study_id: int) -> None:
    """Called on commit when every image of a study has a finished (or failed) prediction."""
    study_ready_signal.send(sender="clinical", study_id=study_id)

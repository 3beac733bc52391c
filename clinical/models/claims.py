"""Reading claims (issue 14 item 9): a study opened for reading is claimed by its reader, so
other readers see "being read by X" instead of reading it twice.

One row per claimed study. The claim is live while ``last_seen_at`` is within
``RADVIEWER_CLAIM_TIMEOUT_MINUTES`` (the page's heartbeat moves it while its reader is active);
an expired row is taken over by the next reader who opens the study. Released claims (the
reader's "release" button, sign-off) are deleted; the audit log keeps their history.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class StudyClaim(models.Model):
    study = models.OneToOneField("clinical.Study", on_delete=models.CASCADE, related_name="claim")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    claimed_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["reader", "last_seen_at"], name="studyclaim_reader_seen_idx")]

    def __str__(self) -> str:
        return f"Claim of study {self.study_id} by {self.reader_id}"

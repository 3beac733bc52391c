"""Reading claims as readers see them: who is reading a study, for one study page or a whole
worklist page in one query (issue 14 item 9).

A claim is live while its ``last_seen_at`` is within ``CLAIM_TIMEOUT_MINUTES`` and its study is
not signed off; an expired row still names its last reader (the "Mine" list keeps it) but no
longer keeps anyone else out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from clinical.models import Review, Study, StudyClaim


def claim_timeout() -> timedelta:
    return timedelta(minutes=settings.CLAIM_TIMEOUT_MINUTES)


def claim_heartbeat_seconds() -> int:
    """How often an open study page reports its reader as active: every minute, or often
    enough that a short timeout cannot lapse between two beats."""
    return max(5, min(60, settings.CLAIM_TIMEOUT_MINUTES * 60 // 3))


def claim_cutoff(now: datetime | None = None) -> datetime:
    """Claims last seen before this have expired."""
    return (now or timezone.now()) - claim_timeout()


def claim_is_live(claim: StudyClaim | None, *, now: datetime | None = None) -> bool:
    return claim is not None and claim.last_seen_at >= claim_cutoff(now)


def active_claims(*, study_ids: Iterable[int], now: datetime | None = None) -> dict[int, StudyClaim]:
    """The live claims of these studies, by study id, with their readers: one query whatever
    the number of studies (the worklist page's badge)."""
    ids = list(study_ids)
    if not ids:
        return {}
    claims = (
        StudyClaim.objects.filter(study_id__in=ids, last_seen_at__gte=claim_cutoff(now))
        .exclude(study__status=Study.Status.SIGNED_OFF)
        .select_related("reader")
    )
    return {claim.study_id: claim for claim in claims}


@dataclass(frozen=True)
class ClaimState:
    """What the study page's claim banner shows to ``user``."""

    claim: StudyClaim | None  # the live claim, if any
    mine: bool  # the live claim is the user's
    can_claim: bool  # the user may read it (review permission) and it is not signed off
    released: bool = False  # the user just released it: the page stops its heartbeat

    @property
    def other_reader(self) -> str:
        return self.claim.reader.get_username() if self.claim is not None and not self.mine else ""


def user_can_claim(user: Any, study: Study) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and user.has_perm("accounts.review_studies")
        and study.status != Study.Status.SIGNED_OFF
    )


def study_claim_state(*, study: Study, user: Any, now: datetime | None = None) -> ClaimState:
    claim = StudyClaim.objects.select_related("reader").filter(study=study).first()
    live = claim if claim_is_live(claim, now=now) and study.status != Study.Status.SIGNED_OFF else None
    return ClaimState(
        claim=live, mine=live is not None and live.reader_id == user.pk, can_claim=user_can_claim(user, study)
    )


def claimed_by_others(*, reader_id: int | None, now: datetime | None = None) -> Exists:
    """For a Study queryset: a live claim by another reader (the ``n`` shortcut skips these)."""
    others = StudyClaim.objects.filter(study=OuterRef("pk"), last_seen_at__gte=claim_cutoff(now))
    if reader_id is not None:
        others = others.exclude(reader_id=reader_id)
    return Exists(others)


def mine_condition(*, reader_id: int) -> Q:
    """For a Study queryset: claimed by the reader (even if the claim lapsed while nobody else
    took it) or read by them (any review of theirs). The caller keeps signed-off studies out."""
    claimed = StudyClaim.objects.filter(study=OuterRef("pk"), reader_id=reader_id)
    reviewed = Review.objects.filter(image__study=OuterRef("pk"), reader_id=reader_id)
    return Q(Exists(claimed)) | Q(Exists(reviewed))

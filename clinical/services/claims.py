"""Reading claims (issue 14 item 9): opening a study for reading claims it, the page's
heartbeat keeps the claim while its reader is active, and it ends on release or sign-off.

Audited: a new claim (``study.claimed``), a deliberate take-over of another reader's live
claim (``study.claim_taken_over``) and a release (``study.claim_released``). Re-opening or
heartbeating a claim one already holds only moves ``last_seen_at`` (no audit row per page
load). Each write locks the study row first, as the other study services do, then writes
the audit row last (radviewer.audit: row locks before the audit lock).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from clinical.models import Study, StudyClaim
from clinical.selectors.claims import ClaimState, claim_is_live, study_claim_state, user_can_claim
from radviewer.audit.actions import AuditAction
from radviewer.audit.services import audit_event_create


def _state(study: Study, claim: StudyClaim | None, user: Any, *, released: bool = False) -> ClaimState:
    return ClaimState(
        claim=claim,
        mine=claim is not None and claim.reader_id == user.pk,
        can_claim=user_can_claim(user, study),
        released=released,
    )


def _locked(study: Study) -> tuple[Study, StudyClaim | None]:
    study = Study.objects.select_for_update().get(pk=study.pk)
    claim = StudyClaim.objects.select_for_update(of=("self",)).select_related("reader").filter(study=study).first()
    return study, claim


def study_claim(*, study: Study, reader: Any, request: Any = None, now: datetime | None = None) -> ClaimState:
    """Claim ``study`` for ``reader`` on opening its page (and on each heartbeat).

    The reader's own live claim is extended silently; a free study or an expired claim (the
    reader's own or another's) becomes a new claim, audited; another reader's live claim is
    left alone and returned, for the page's "being read by X" banner. Users who cannot
    review and signed-off studies claim nothing.
    """
    now = now or timezone.now()
    if not user_can_claim(reader, study):
        return study_claim_state(study=study, user=reader, now=now)
    with transaction.atomic():
        study, claim = _locked(study)
        if not user_can_claim(reader, study):  # signed off meanwhile
            return _state(study, None, reader)
        live = claim_is_live(claim, now=now)
        if claim is not None and live and claim.reader_id != reader.pk:
            return _state(study, claim, reader)
        if claim is not None and live:  # the reader's own: extend, no audit row
            claim.last_seen_at = now
            claim.save(update_fields=["last_seen_at"])
            return _state(study, claim, reader)
        previous = claim.reader.get_username() if claim is not None else ""
        claim = _claim_write(study, claim, reader, now)
        _audit_claimed(study, reader, previous, request)
    return _state(study, claim, reader)


def study_claim_take_over(*, study: Study, reader: Any, request: Any = None, now: datetime | None = None) -> ClaimState:
    """The "take over" button: claim ``study`` even from another reader's live claim (audited,
    naming the reader it was taken from). On a free study it is an ordinary claim."""
    now = now or timezone.now()
    if not user_can_claim(reader, study):
        raise PermissionDenied("only a reader who may review can claim a study that is not signed off")
    with transaction.atomic():
        study, claim = _locked(study)
        if not user_can_claim(reader, study):
            raise PermissionDenied("this study is signed off; there is nothing to claim")
        if claim is not None and claim.reader_id == reader.pk and claim_is_live(claim, now=now):
            claim.last_seen_at = now
            claim.save(update_fields=["last_seen_at"])
            return _state(study, claim, reader)
        other_live = claim is not None and claim_is_live(claim, now=now)
        previous = claim.reader.get_username() if claim is not None else ""
        since = claim.claimed_at if claim is not None else None
        claim = _claim_write(study, claim, reader, now)
        if other_live:
            audit_event_create(
                actor=reader,
                action=AuditAction.STUDY_CLAIM_TAKEN_OVER,
                obj=study,
                request=request,
                details={"uid": study.uid, "from": previous, "claimed_since": since.isoformat()},
            )
        else:
            _audit_claimed(study, reader, previous, request)
    return _state(study, claim, reader)


def study_claim_release(*, study: Study, reader: Any, request: Any = None) -> ClaimState:
    """The "release" button: end the reader's own claim (live or lapsed) so others see the
    study as free. Another reader's claim is not touched (nothing to release)."""
    with transaction.atomic():
        study, claim = _locked(study)
        if claim is None or claim.reader_id != reader.pk:
            return _state(study, claim if claim_is_live(claim) else None, reader, released=True)
        claimed_at = claim.claimed_at
        claim.delete()
        audit_event_create(
            actor=reader,
            action=AuditAction.STUDY_CLAIM_RELEASED,
            obj=study,
            request=request,
            details={"uid": study.uid, "reason": "released", "claimed_since": claimed_at.isoformat()},
        )
    return _state(study, None, reader, released=True)


def study_claim_end_at_sign_off(*, study: Study, user: Any, request: Any = None) -> None:
    """Sign-off ends the study's claim, whoever held it. Call inside the sign-off transaction,
    with the study row already locked and before its own audit row."""
    claim = StudyClaim.objects.select_for_update(of=("self",)).select_related("reader").filter(study=study).first()
    if claim is None:
        return
    holder, claimed_at = claim.reader.get_username(), claim.claimed_at
    claim.delete()
    audit_event_create(
        actor=user,
        action=AuditAction.STUDY_CLAIM_RELEASED,
        obj=study,
        request=request,
        details={"uid": study.uid, "reason": "signed_off", "reader": holder, "claimed_since": claimed_at.isoformat()},
    )


def _audit_claimed(study: Study, reader: Any, previous: str, request: Any) -> None:
    """``study.claimed``, naming the reader whose lapsed claim it replaced, if any."""
    audit_event_create(
        actor=reader,
        action=AuditAction.STUDY_CLAIMED,
        obj=study,
        request=request,
        details={"uid": study.uid, **({"expired_claim_of": previous} if previous else {})},
    )


def _claim_write(study: Study, claim: StudyClaim | None, reader: Any, now: datetime) -> StudyClaim:
    if claim is None:
        return StudyClaim.objects.create(study=study, reader=reader, claimed_at=now, last_seen_at=now)
    claim.reader, claim.claimed_at, claim.last_seen_at = reader, now, now
    claim.save(update_fields=["reader", "claimed_at", "last_seen_at"])
    return claim

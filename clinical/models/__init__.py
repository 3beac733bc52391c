"""Clinical models, split by subdomain: ``domain`` (studies, images, predictions, reviews),
``api`` (integration clients, their webhook deliveries and result destinations), ``claims``
(which reader is reading a study)."""

from clinical.models.api import ApiClient, ResultDelivery, ResultDestination, WebhookDelivery
from clinical.models.claims import StudyClaim
from clinical.models.domain import Image, OriginalIdentifiers, Prediction, Review, Study, new_uid

__all__ = [
    "ApiClient",
    "Image",
    "OriginalIdentifiers",
    "Prediction",
    "ResultDelivery",
    "ResultDestination",
    "Review",
    "Study",
    "StudyClaim",
    "WebhookDelivery",
    "new_uid",
]

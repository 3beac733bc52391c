"""Clinical models, split by subdomain: ``domain`` (studies, images, predictions, reviews),
``api`` (integration clients, their webhook deliveries and result destinations)."""

from clinical.models.api import ApiClient, ResultDelivery, ResultDestination, WebhookDelivery
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
    "WebhookDelivery",
    "new_uid",
]

"""Clinical models, split by subdomain: ``domain`` (studies, images, predictions, reviews),
``api`` (integration clients and their webhook deliveries)."""

from clinical.models.api import ApiClient, WebhookDelivery
from clinical.models.domain import Image, OriginalIdentifiers, Prediction, Review, Study, new_uid

__all__ = [
    "ApiClient",
    "Image",
    "OriginalIdentifiers",
    "Prediction",
    "Review",
    "Study",
    "WebhookDelivery",
    "new_uid",
]

"""Clinical models, split by subdomain: ``domain`` (studies, images, predictions, reviews)."""

from clinical.models.domain import Image, OriginalIdentifiers, Prediction, Review, Study, new_uid

__all__ = ["Image", "OriginalIdentifiers", "Prediction", "Review", "Study", "new_uid"]

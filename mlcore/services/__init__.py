"""mlcore services: what the clinical side and the admin pages call."""

"""The PACS/RIS integration surface, adapters only: REST views (``views``), DICOMweb
(``dicomweb``), the result renderers (``fhir``, ``sr``, ``renderers``), serializers, and the
client plumbing (``authentication``, ``permissions``, ``throttling``, ``multipart``, ``errors``).
Writes are in ``clinical.services`` (``submission``, ``api_clients``, ``webhooks``), reads in
``clinical.selectors`` (``studies``, ``results``). See docs/integration.md."""

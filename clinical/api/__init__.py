"""The PACS/RIS integration surface: REST (``views``), DICOMweb (``dicomweb``), result
formats (``representation``, ``fhir``, ``sr``), webhooks, and the client plumbing
(``authentication``, ``permissions``, ``throttling``, ``clients``). See docs/integration.md."""

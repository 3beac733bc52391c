"""Reader pages: thin function views (parse input, access function, service, render).

One URL serves the full page or, for htmx requests, a template partial
(``"template.html#partial"``). Study views go through ``clinical.access`` so a study the
user may not see is a 404 and every page view is audited.
"""

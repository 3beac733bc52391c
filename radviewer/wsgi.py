import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radviewer.settings.base")
django_application = get_wsgi_application()

from radviewer.lib.wsgi import ChunkedBodyMiddleware  # noqa: E402 (needs the settings above)

# Chunked bodies (Orthanc's DICOMweb client by default) get a Content-Length: radviewer.lib.wsgi.
application = ChunkedBodyMiddleware(django_application)

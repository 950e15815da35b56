"""The edge: nginx in front of the Django server and the Flutter web build (``Edge``), its
configuration rendered from the stack's settings (``config``), its nginx files (``nginx/``),
bot lists (``lists/``) and maintenance page (``pages/``)."""

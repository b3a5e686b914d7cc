# The pre-fork test app for Apache mod_wsgi (tests/test_servers.py): WSGIScriptAlias points here.
from tests.apps.prefork_app import app as application  # noqa: F401

"""Minimal Django settings for the framework tests (no database, no apps)."""

SECRET_KEY = "test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.apps.djangosite.urls"
INSTALLED_APPS: list = []
MIDDLEWARE: list = []
USE_TZ = True
LOGGING_CONFIG = None

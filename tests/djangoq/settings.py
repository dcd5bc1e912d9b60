"""
A minimal Django settings module for the Django Q interoperability tests:
SQLite for Django's database, Django Q on a Redis the tests started.  The
tests set the environment variables read here.
"""

import os

SECRET_KEY = os.environ.get("TXQ_DJANGOQ_SECRET", "interop-test-secret")
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_q"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TXQ_DJANGOQ_DB", ":memory:"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
Q_CLUSTER = {
    "name": os.environ.get("TXQ_DJANGOQ_NAME", "interop"),
    "workers": 1,
    "recycle": 50,
    "timeout": 10,
    "retry": 20,
    "queue_limit": 4,
    "scheduler": False,
    "catch_up": False,
    "guard_cycle": 0.2,
    # Django Q reads it when Q_CLUSTER_NAME names another cluster
    "ALT_CLUSTERS": {},
    "redis": {
        "host": "127.0.0.1",
        "port": int(os.environ.get("TXQ_DJANGOQ_REDIS_PORT", "6379")),
        "db": 0,
    },
}
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django-q": {"handlers": ["console"], "level": "INFO"}},
}

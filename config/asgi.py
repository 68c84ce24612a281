"""The ASGI application, served by uvicorn for the paths that wait (README "Serving": the sync
API requests and the live cards' events). Pages are served by gunicorn (config.wsgi).

Django runs each request's database work in a thread of its own under ASGI; a pool per process
(DATABASE_POOL_SIZE, config/settings.py) bounds the connections however many requests wait.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_POOL_SIZE", "20")
application = get_asgi_application()

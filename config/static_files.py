"""WhiteNoise, async-capable (issue #17).

WhiteNoise's middleware is sync only, and under the ASGI server one sync middleware makes
Django run every request below it in a thread that is held for the whole request — a waiting
API request or a card stream would each hold one. This wrapper hands only STATIC_URL requests to
WhiteNoise (in a thread: reading a file) and passes every other request straight on, awaiting
it; under WSGI it is WhiteNoise itself.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        # WhiteNoise calls get_response only for a static path it has no file for (a 404).
        self.whitenoise = WhiteNoiseMiddleware(
            async_to_sync(get_response) if self.is_async else get_response
        )
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return self.whitenoise(request)

    async def _acall(self, request):
        if request.path_info.startswith(settings.STATIC_URL):
            return await sync_to_async(self.whitenoise, thread_sensitive=False)(request)
        return await self.get_response(request)

"""Declares compile but has no compile(), and its devices() returns plain dicts."""


class Plugin:
    def devices(self):
        return [{"id": "cpu"}]

    def profile(self, request):
        yield from ()

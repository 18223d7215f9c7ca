from mbexplorer.devices import Device, Log


class Plugin:
    def devices(self):
        return [Device("cpu", "host", "cpu")]

    def profile(self, request):
        yield Log("about to fail")
        raise RuntimeError("boom from the raiser plugin")

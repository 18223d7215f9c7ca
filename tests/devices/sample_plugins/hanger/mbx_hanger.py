import os
import time

from mbexplorer.devices import Device, Log


class Plugin:
    def devices(self):
        if os.environ.get("HANGER_DEVICES_HANG"):
            time.sleep(3600)
        return [Device("cpu", "host", "cpu")]

    def profile(self, request):
        yield Log("hanging now")
        time.sleep(3600)

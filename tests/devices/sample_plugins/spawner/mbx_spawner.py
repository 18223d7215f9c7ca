"""Starts a long tool (a grandchild of the host) and waits on it, as a vendor benchmark does."""

import subprocess
import sys

from mbexplorer.devices import Device, Log


class Plugin:
    def devices(self):
        return [Device("cpu", "host", "cpu")]

    def profile(self, request):
        # a tool that ignores SIGTERM: only the group's SIGKILL ends it
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        tool = subprocess.Popen([sys.executable, "-c", code])
        yield Log(f"grandchild pid {tool.pid}")
        tool.wait()

"""The CLI tests' runner: ``main()`` in this process, as the console script calls it (``sys.exit(main())``),
with file descriptors 1 and 2 captured, so that what C libraries write is seen too."""

from dataclasses import dataclass

import pytest

from mbexplorer import cli


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def mbx(capfd):
    def run(*args) -> Run:
        capfd.readouterr()  # what the test itself printed is not the command's
        try:
            rc = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, usage errors (status 2)
            rc = exc.code
        out, err = capfd.readouterr()
        return Run(rc, out, err)

    return run

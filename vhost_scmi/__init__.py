# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
"""vhost-user backend daemon providing a VirtIO SCMI device backed by host sensors."""

try:
    from vhost_scmi._version import __version__
except ImportError:  # only from an unbuilt source tree
    # `python -m vhost_scmi...` in the checkout puts the source tree first on sys.path,
    # and it lacks what the build makes (_version.py, the compiled modules).
    import sys

    _argv = sys.orig_argv
    _module = _argv[_argv.index("-m") + 1] if "-m" in _argv[:-1] else "..."
    _message = (f"{__path__[0]} is the source tree, not the installed package: run "
                f"`python -P -m {_module}` (-P keeps the current directory off sys.path), "
                "or run it from outside the checkout")
    if sys.argv[:1] == ["-m"]:  # being located by `python -m`: one line, no traceback
        sys.stderr.write(f"vhost_scmi: {_message}\n")
        raise SystemExit(2) from None
    raise ImportError(_message) from None

__all__ = ["__version__"]

"""The ``kfaas`` command and the ``kfaas dev`` composition: the wiring above every component.

It lives outside the core (``kfaas/``) because it imports the gateway, the pollers, the runtime and
the operator to compose them; the core must import none of them.
"""

from kfaas.cli.command import BOUND_HELP, main

__all__ = ["BOUND_HELP", "main"]

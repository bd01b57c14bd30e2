"""Handlers of the resource-bound tests: a slow one to pile work up, and an echo."""

import time


def slow(event, context):
    # The payload may be megabytes of anything; the handler only waits.
    time.sleep(float(event.get("seconds", 2)) if isinstance(event, dict) else 2)
    return {"slept": True}


def echo(event, context):
    return event

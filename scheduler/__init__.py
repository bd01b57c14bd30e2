"""The scheduler (ADR 026): fires each enabled Schedule's ticks as asynchronous invocations.

One engine (``engine.ScheduleEngine``) serves the ``kfaas scheduler`` process and ``kfaas dev``:
it lists Schedules from an object store, claims each due tick in the Schedule's status (a
resourceVersion precondition makes exactly one replica win), delivers it through a ``Delivery``
and retries or dead-letters it as the schedule's retry policy says.
"""

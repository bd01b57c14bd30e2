"""The gateway: Lambda Invoke API, HTTP triggers, routing, throttling and the async queue."""

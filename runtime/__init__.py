"""The in-pod runtime server: Lambda Runtime API, worker processes, bootstrap, timeouts, logs."""

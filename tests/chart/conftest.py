"""The chart tests use Helm, built through the Go module proxy (chart/fixtures.py)."""

from chart.fixtures import helm, pytest_collection_finish

__all__ = ["helm", "pytest_collection_finish"]

"""The operator tests install the chart, so they use Helm too (chart/fixtures.py)."""

from chart.fixtures import helm, pytest_collection_finish

__all__ = ["helm", "pytest_collection_finish"]

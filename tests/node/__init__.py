"""The product tested on the real node (issue 9)."""

"""Metrics (UAR, WAR, confusion matrices) and report writers."""

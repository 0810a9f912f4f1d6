"""Widgets shared by the pages: error banner, busy indicator, config form, token chips."""

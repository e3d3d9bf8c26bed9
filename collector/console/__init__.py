"""The console: the web application for the people who act on ratings (issue 17)."""

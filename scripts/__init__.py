"""Scripts of the toolkit (demo, set-up, paper recipes); a package so recipes can be run with -m."""

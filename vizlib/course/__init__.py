"""Tools that manage the course rather than teach it: fetch the notebooks, build, release, train."""
